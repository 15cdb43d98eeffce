/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the daemon's front door: the command line (cli.c), the
 * logger (log.c) and the HTTP module (http/, with a fake collect callback
 * and a raw-socket client on loopback; the real exposition is tested
 * elsewhere).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "util/duration.h"
#include "config.h"
#include "http/http.h"
#include "log/log.h"
#include "macro.h"
#include "expo/outbuf.h"

/* ---- capturing stdout/stderr ---------------------------------------------------------- */

struct capture {
	int fd;
	int saved;
	int memfd;
};

static void capture_start(struct capture *c, int fd)
{
	fflush(stdout);
	fflush(stderr);
	c->fd = fd;
	c->memfd = memfd_create("capture", MFD_CLOEXEC);
	assert_true(c->memfd >= 0);
	/*
	 * A memfd has no atomic file position (unlike a file opened by path),
	 * so concurrent writers would overwrite each other; O_APPEND restores
	 * what a real stderr (pipe, socket, file) gives.
	 */
	assert_int_equal(fcntl(c->memfd, F_SETFL, O_APPEND), 0);
	c->saved = dup(fd);
	assert_true(c->saved >= 0);
	assert_true(dup2(c->memfd, fd) >= 0);
}

/* Restores the fd and returns what was written to it (malloc'd, NUL-terminated). */
static char *capture_stop(struct capture *c)
{
	off_t n;
	char *s;

	fflush(stdout);
	fflush(stderr);
	assert_true(dup2(c->saved, c->fd) >= 0);
	close(c->saved);
	n = lseek(c->memfd, 0, SEEK_END);
	assert_true(n >= 0);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(pread(c->memfd, s, (size_t)n, 0), n);
	close(c->memfd);
	return s;
}

static size_t count_char(const char *s, char ch)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == ch;
	return n;
}

/* ---- command line ---------------------------------------------------------------------- */

struct parsed {
	int r;
	struct options o;
	char *out;
	char *err;
};

#define MAX_ARGS 32

/* Runs cli_parse() on "kvmstats_exporter" + args (NULL-terminated), capturing its output. */
static void parse_args(struct parsed *p, const char *const *args)
{
	char *argv[MAX_ARGS + 2];
	struct capture out, err;
	int argc = 0;

	argv[argc++] = (char *)"kvmstats_exporter";
	for (; *args; args++) {
		assert_true(argc <= MAX_ARGS);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;

	capture_start(&out, STDOUT_FILENO);
	capture_start(&err, STDERR_FILENO);
	p->r = cli_parse(argc, argv, &p->o);
	p->err = capture_stop(&err);
	p->out = capture_stop(&out);
}

#define PARSE(p, ...) parse_args((p), (const char *const[]){ __VA_ARGS__, NULL })

static void parsed_release(struct parsed *p)
{
	options_release(&p->o);
	free(p->out);
	free(p->err);
}

static void test_defaults(void **state)
{
	struct parsed p;

	parse_args(&p, (const char *const[]){ NULL });
	assert_int_equal(p.r, CLI_RUN);
	assert_string_equal(p.out, "");
	assert_string_equal(p.err, "");
	assert_int_equal(p.o.n_listen, 1);
	assert_string_equal(p.o.listen[0], ":9977");
	assert_string_equal(p.o.telemetry_path, "/metrics");
	assert_false(p.o.once);
	assert_int_equal(p.o.n_stats_files, 0);
	assert_null(p.o.stats_files);
	assert_false(p.o.per_vcpu);
	assert_true(p.o.procfs);
	assert_int_equal(p.o.rescan_usec, 5000000);
	assert_false(p.o.canary);
	assert_int_equal(p.o.log_level, LOG_LEVEL_INFO);
	assert_string_equal(p.o.handoff_socket, "/run/kvmstats_exporter/handoff.sock");
	assert_string_equal(p.o.handoff_socket, CLI_DEFAULT_HANDOFF_SOCKET);
	/* Root, and the exporter's own user when that is not root. */
	assert_int_equal(p.o.n_handoff_allow_uids, geteuid() == 0 ? 1 : 2);
	assert_int_equal(p.o.handoff_allow_uids[0], 0);
	if (geteuid() != 0)
		assert_int_equal(p.o.handoff_allow_uids[1], geteuid());
	assert_int_equal(p.o.n_handoff_allow_gids, 0);
	assert_int_equal(p.o.handoff_max_connections, 256);
	assert_null(p.o.stats_include);
	assert_null(p.o.stats_exclude);
	parsed_release(&p);

	/* Released options are empty and may be released again. */
	assert_null(p.o.listen);
	assert_int_equal(p.o.n_listen, 0);
	options_release(&p.o);
	options_release(NULL);
}

static void test_every_flag_equals_form(void **state)
{
	struct parsed p;

	PARSE(&p, "--web.listen-address=127.0.0.1:9100", "--web.telemetry-path=/kvm/metrics",
	      "--once", "--kvm.stats-file=/tmp/vm.bin", "--kvm.per-vcpu", "--no-kvm.procfs",
	      "--kvm.rescan-interval=1m30s", "--kvm.canary", "--log.level=debug",
	      "--kvm.stats-include=kvm_vcpu_.*", "--kvm.stats-exclude=kvm_vcpu_halt_.*_seconds");
	assert_string_equal(p.err, "");
	assert_string_equal(p.o.stats_include, "kvm_vcpu_.*");
	assert_string_equal(p.o.stats_exclude, "kvm_vcpu_halt_.*_seconds");
	assert_int_equal(p.r, CLI_RUN);
	assert_int_equal(p.o.n_listen, 1);
	assert_string_equal(p.o.listen[0], "127.0.0.1:9100");
	assert_string_equal(p.o.telemetry_path, "/kvm/metrics");
	assert_true(p.o.once);
	assert_int_equal(p.o.n_stats_files, 1);
	assert_string_equal(p.o.stats_files[0], "/tmp/vm.bin");
	assert_true(p.o.per_vcpu);
	assert_false(p.o.procfs);
	assert_int_equal(p.o.rescan_usec, 90000000);
	assert_true(p.o.canary);
	assert_int_equal(p.o.log_level, LOG_LEVEL_DEBUG);
	parsed_release(&p);
}

static void test_every_flag_separate_form(void **state)
{
	struct parsed p;

	PARSE(&p, "--web.listen-address", "[::1]:9100", "--web.telemetry-path", "/m",
	      "--kvm.stats-file", "vcpu.bin", "--kvm.rescan-interval", "250ms", "--log.level",
	      "error");
	assert_string_equal(p.err, "");
	assert_int_equal(p.r, CLI_RUN);
	assert_string_equal(p.o.listen[0], "[::1]:9100");
	assert_string_equal(p.o.telemetry_path, "/m");
	assert_string_equal(p.o.stats_files[0], "vcpu.bin");
	assert_int_equal(p.o.rescan_usec, 250000);
	assert_int_equal(p.o.log_level, LOG_LEVEL_ERROR);
	/* A lone "-" is a value, not a flag. */
	parsed_release(&p);
	PARSE(&p, "--kvm.stats-file", "-");
	assert_int_equal(p.r, CLI_RUN);
	assert_string_equal(p.o.stats_files[0], "-");
	parsed_release(&p);
}

static void test_boolean_forms(void **state)
{
	static const struct {
		const char *arg;
		size_t offset;
		bool expect;
	} cases[] = {
		{ "--once", offsetof(struct options, once), true },
		{ "--no-once", offsetof(struct options, once), false },
		{ "--once=true", offsetof(struct options, once), true },
		{ "--once=false", offsetof(struct options, once), false },
		{ "--once=1", offsetof(struct options, once), true },
		{ "--once=0", offsetof(struct options, once), false },
		{ "--once=TRUE", offsetof(struct options, once), true },
		{ "--once=f", offsetof(struct options, once), false },
		{ "--kvm.procfs", offsetof(struct options, procfs), true },
		{ "--no-kvm.procfs", offsetof(struct options, procfs), false },
		{ "--kvm.procfs=false", offsetof(struct options, procfs), false },
		{ "--kvm.procfs=true", offsetof(struct options, procfs), true },
		{ "--kvm.per-vcpu", offsetof(struct options, per_vcpu), true },
		{ "--no-kvm.per-vcpu", offsetof(struct options, per_vcpu), false },
		{ "--kvm.per-vcpu=false", offsetof(struct options, per_vcpu), false },
		{ "--kvm.canary", offsetof(struct options, canary), true },
		{ "--no-kvm.canary", offsetof(struct options, canary), false },
		{ "--kvm.canary=true", offsetof(struct options, canary), true },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct parsed p;

		PARSE(&p, cases[i].arg);
		if (p.r != CLI_RUN)
			fail_msg("%s: %s", cases[i].arg, p.err);
		assert_string_equal(p.err, "");
		if (*(bool *)((char *)&p.o + cases[i].offset) != cases[i].expect)
			fail_msg("%s: expected %d", cases[i].arg, cases[i].expect);
		parsed_release(&p);
	}
}

static void test_repeatable(void **state)
{
	struct parsed p;

	PARSE(&p, "--web.listen-address=127.0.0.1:1", "--kvm.stats-file=a", "--web.listen-address",
	      "[::1]:2", "--kvm.stats-file", "b", "--web.listen-address=localhost:3",
	      "--kvm.stats-file=c");
	assert_int_equal(p.r, CLI_RUN);
	/* Given addresses replace the default; order is kept. */
	assert_int_equal(p.o.n_listen, 3);
	assert_string_equal(p.o.listen[0], "127.0.0.1:1");
	assert_string_equal(p.o.listen[1], "[::1]:2");
	assert_string_equal(p.o.listen[2], "localhost:3");
	assert_int_equal(p.o.n_stats_files, 3);
	assert_string_equal(p.o.stats_files[0], "a");
	assert_string_equal(p.o.stats_files[1], "b");
	assert_string_equal(p.o.stats_files[2], "c");
	parsed_release(&p);
}

#define BIT(c) (1u << (c))

/* --collector.NAME: which collectors run, and the --kvm and --web options they agree with. */
static void test_collectors(void **state)
{
	struct parsed p;

	(void)state;
	parse_args(&p, (const char *const[]){ NULL });
	assert_int_equal(p.o.collectors, CLI_DEFAULT_COLLECTORS);
	assert_false(p.o.collectors & BIT(COLLECTOR_CANARY));
	parsed_release(&p);

	/* The --kvm.* flags still work and turn their collector off or on. */
	PARSE(&p, "--no-kvm.procfs", "--kvm.canary", "--web.disable-exporter-metrics");
	assert_int_equal(p.r, CLI_RUN);
	assert_int_equal(p.o.collectors, (CLI_DEFAULT_COLLECTORS & ~BIT(COLLECTOR_PROCFS) &
					  ~BIT(COLLECTOR_EXPORTER)) |
						 BIT(COLLECTOR_CANARY));
	assert_true(p.o.canary);
	parsed_release(&p);

	/* --no-collector.X stands for the source's own switch. */
	PARSE(&p, "--no-collector.procfs", "--no-collector.handoff", "--no-collector.exporter");
	assert_false(p.o.procfs);
	assert_string_equal(p.o.handoff_socket, "");
	assert_true(p.o.disable_exporter_metrics);
	assert_int_equal(p.o.collectors, BIT(COLLECTOR_FILE) | BIT(COLLECTOR_VHOST));
	parsed_release(&p);

	/* Only what is named, after --collector.disable-defaults. */
	PARSE(&p, "--collector.disable-defaults", "--collector.file", "--collector.canary=false",
	      "--collector.procfs=true");
	assert_string_equal(p.err, "");
	assert_int_equal(p.o.collectors, BIT(COLLECTOR_FILE) | BIT(COLLECTOR_PROCFS));
	assert_true(p.o.procfs);
	assert_false(p.o.canary);
	assert_string_equal(p.o.handoff_socket, "");
	assert_true(p.o.disable_exporter_metrics);
	parsed_release(&p);

	/* Off in either place is off; the canary's collector flag turns it on. */
	PARSE(&p, "--collector.procfs", "--no-kvm.procfs", "--collector.canary");
	assert_false(p.o.procfs);
	assert_true(p.o.canary);
	parsed_release(&p);
	PARSE(&p, "--kvm.canary", "--no-collector.canary");
	assert_false(p.o.canary);
	parsed_release(&p);

	PARSE(&p, "--collector.bogus");
	assert_int_equal(p.r, -EINVAL);
	assert_non_null(strstr(p.err, "unknown flag \"--collector.bogus\""));
	parsed_release(&p);
	PARSE(&p, "--collector.vhost=maybe");
	assert_int_equal(p.r, -EINVAL);
	assert_non_null(strstr(p.err, "expected true or false"));
	parsed_release(&p);
}

static void test_errors(void **state)
{
	static const struct {
		const char *args[4];
		const char *expect; /* in the message */
	} cases[] = {
		{ { "--bogus" }, "unknown flag \"--bogus\"" },
		{ { "--kvm.stats-include=kvm_(vcpu" },
		  "invalid value \"kvm_(vcpu\" for --kvm.stats-include: " },
		{ { "--kvm.stats-exclude", "*x" },
		  "invalid value \"*x\" for --kvm.stats-exclude: " },
		{ { "--bogus=1" }, "unknown flag \"--bogus=1\"" },
		{ { "-x" }, "unknown flag \"-x\"" },
		{ { "--no-" }, "unknown flag \"--no-\"" },
		{ { "--no-bogus" }, "unknown flag \"--no-bogus\"" },
		{ { "foo" }, "unexpected argument \"foo\"" },
		{ { "-" }, "unexpected argument \"-\"" },
		{ { "--", "foo" }, "unexpected argument \"foo\"" },
		{ { "--once", "true" }, "unexpected argument \"true\"" },
		{ { "--web.telemetry-path" }, "flag --web.telemetry-path needs a value" },
		{ { "--web.listen-address", "--once" }, "flag --web.listen-address needs a value" },
		{ { "--kvm.stats-file" }, "flag --kvm.stats-file needs a value" },
		{ { "--web.telemetry-path=metrics" },
		  "invalid value \"metrics\" for --web.telemetry-path: must start with \"/\"" },
		{ { "--web.telemetry-path=/" }, "invalid value \"/\" for --web.telemetry-path" },
		{ { "--web.telemetry-path=" }, "invalid value \"\" for --web.telemetry-path" },
		{ { "--web.telemetry-path=/-/healthy" },
		  "invalid value \"/-/healthy\" for --web.telemetry-path" },
		{ { "--web.telemetry-path=/a b" },
		  "invalid value \"/a b\" for --web.telemetry-path" },
		{ { "--web.telemetry-path=/m?x=1" },
		  "invalid value \"/m?x=1\" for --web.telemetry-path" },
		{ { "--web.listen-address=abc" },
		  "invalid value \"abc\" for --web.listen-address" },
		{ { "--web.listen-address=:99999" },
		  "invalid value \":99999\" for --web.listen-address" },
		{ { "--web.listen-address=" }, "invalid value \"\" for --web.listen-address" },
		{ { "--web.listen-address", "[::1" },
		  "invalid value \"[::1\" for --web.listen-address" },
		{ { "--kvm.stats-file=" },
		  "invalid value \"\" for --kvm.stats-file: must not be empty" },
		{ { "--kvm.rescan-interval=5" }, "invalid value \"5\" for --kvm.rescan-interval" },
		{ { "--kvm.rescan-interval=abc" },
		  "invalid value \"abc\" for --kvm.rescan-interval" },
		{ { "--kvm.rescan-interval=-5s" },
		  "invalid value \"-5s\" for --kvm.rescan-interval" },
		{ { "--kvm.rescan-interval=99ms" },
		  "invalid value \"99ms\" for --kvm.rescan-interval: must be from 100ms to 1h" },
		{ { "--kvm.rescan-interval=1h1us" },
		  "invalid value \"1h1us\" for --kvm.rescan-interval: must be from 100ms to 1h" },
		{ { "--kvm.rescan-interval=0" }, "invalid value \"0\" for --kvm.rescan-interval" },
		{ { "--kvm.rescan-interval=99999999999999999999s" },
		  "for --kvm.rescan-interval: out of range" },
		{ { "--log.level=verbose" },
		  "invalid value \"verbose\" for --log.level: expected debug, info, warn or "
		  "error" },
		{ { "--log.level", "INFO" }, "invalid value \"INFO\" for --log.level" },
		{ { "--kvm.handoff-allow-uid=-1" },
		  "invalid value \"-1\" for --kvm.handoff-allow-uid: expected a user id or the "
		  "name" },
		{ { "--kvm.handoff-allow-uid=4294967295" },
		  "--kvm.handoff-allow-uid: out of range (at most 4294967294)" },
		{ { "--kvm.handoff-allow-uid=no-such-user-kvmstats" },
		  "expected a user id or the name of an existing user" },
		{ { "--kvm.handoff-allow-uid=" },
		  "invalid value \"\" for --kvm.handoff-allow-uid" },
		{ { "--kvm.handoff-allow-gid=no-such-group-kvmstats" },
		  "expected a group id or the name of an existing group" },
		{ { "--kvm.handoff-allow-gid=99999999999999999999" },
		  "--kvm.handoff-allow-gid: out of range" },
		{ { "--kvm.handoff-max-connections=0" },
		  "--kvm.handoff-max-connections: expected a number from 1 to 65536" },
		{ { "--kvm.handoff-max-connections=65537" },
		  "invalid value \"65537\" for --kvm.handoff-max-connections" },
		{ { "--kvm.handoff-max-connections=1k" },
		  "invalid value \"1k\" for --kvm.handoff-max-connections" },
		{ { "--kvm.handoff-socket" }, "flag --kvm.handoff-socket needs a value" },
		{ { "--kvm.handoff-socket=/a", "--kvm.handoff-socket=/b" },
		  "flag --kvm.handoff-socket given more than once" },
		{ { "--no-kvm.handoff-socket" }, "flag --kvm.handoff-socket is not a boolean" },
		{ { "--once=maybe" },
		  "invalid value \"maybe\" for --once: expected true or false" },
		{ { "--once=" }, "invalid value \"\" for --once" },
		{ { "--no-once=true" }, "flag --no-once does not take a value (got \"true\")" },
		{ { "--no-web.telemetry-path" }, "flag --web.telemetry-path is not a boolean" },
		{ { "--no-help" }, "flag --help is not a boolean" },
		{ { "--help=yes" }, "flag --help does not take a value" },
		{ { "--version=1" }, "flag --version does not take a value" },
		{ { "--once", "--once" }, "flag --once given more than once" },
		{ { "--kvm.procfs", "--no-kvm.procfs" }, "flag --kvm.procfs given more than once" },
		{ { "--log.level=info", "--log.level=warn" },
		  "flag --log.level given more than once" },
		{ { "--web.telemetry-path=/a", "--web.telemetry-path=/b" },
		  "flag --web.telemetry-path given more than once" },
		/* Hostile bytes are shown escaped and cannot break the one-line rule. */
		{ { "--log.level=bad\nline" }, "invalid value \"bad\\x0aline\" for --log.level" },
		{ { "--bo\x1b[31mgus" }, "unknown flag \"--bo\\x1b[31mgus\"" },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct parsed p;

		parse_args(&p, cases[i].args);
		if (p.r != -EINVAL)
			fail_msg("case %zu (%s): r=%d", i, cases[i].args[0], p.r);
		assert_string_equal(p.out, "");
		if (strncmp(p.err, "kvmstats_exporter: ", 19) != 0 ||
		    count_char(p.err, '\n') != 1 || p.err[strlen(p.err) - 1] != '\n' ||
		    !strstr(p.err, cases[i].expect))
			fail_msg("case %zu: expected one line with '%s', got '%s'", i,
				 cases[i].expect, p.err);
		/* On error the options are empty and releasable. */
		assert_null(p.o.listen);
		assert_null(p.o.telemetry_path);
		parsed_release(&p);
	}
}

static void test_error_after_allocations_does_not_leak(void **state)
{
	struct parsed p;

	/* The allocations before the error are freed (checked under ASan/valgrind). */
	PARSE(&p, "--web.listen-address=:1", "--kvm.stats-file=a", "--web.telemetry-path=/x",
	      "--bogus");
	assert_int_equal(p.r, -EINVAL);
	parsed_release(&p);
}

static void test_help(void **state)
{
	static const char *const expect[] = {
		"usage: kvmstats_exporter [<flags>]",
		"-h, --help",
		"--version",
		"--web.listen-address=ADDR",
		"Default: \":9977\"",
		"--web.telemetry-path=PATH",
		"Default: \"/metrics\"",
		"--[no-]once",
		"stdout",
		"non-zero",
		"--[no-]kvm.procfs",
		"CAP_SYS_PTRACE",
		"--kvm.stats-file=PATH",
		"saved KVM stats blob",
		"--[no-]kvm.canary",
		"--kvm.rescan-interval=DURATION",
		"Default: 5s",
		"--[no-]kvm.per-vcpu",
		"--log.level=LEVEL",
		"Default: info",
		"--no-<flag>",
		"--kvm.handoff-socket=PATH",
		"Default:\n          \"/run/kvmstats_exporter/handoff.sock\"",
		"docs/handoff.md",
		"--kvm.handoff-allow-uid=UID",
		"--kvm.handoff-allow-gid=GID",
		"--kvm.handoff-max-connections=N",
		"Default: 256",
	};
	const char *const forms[] = { "--help", "-h" };

	for (size_t f = 0; f < ELEMENTSOF(forms); f++) {
		struct parsed p;
		const char *line;

		PARSE(&p, forms[f]);
		assert_int_equal(p.r, CLI_EXIT_OK);
		assert_string_equal(p.err, "");
		for (size_t i = 0; i < ELEMENTSOF(expect); i++)
			if (!strstr(p.out, expect[i]))
				fail_msg("help lacks '%s'", expect[i]);
		/* Fits a terminal. */
		for (line = p.out; *line;) {
			const char *nl = strchr(line, '\n');

			assert_non_null(nl);
			if (nl - line > 80)
				fail_msg("help line too long: %.*s", (int)(nl - line), line);
			line = nl + 1;
		}
		assert_null(p.o.listen);
		parsed_release(&p);
	}

	/* Help wins over later flags, like kingpin. */
	{
		struct parsed p;

		PARSE(&p, "--once", "--help", "--bogus");
		assert_int_equal(p.r, CLI_EXIT_OK);
		parsed_release(&p);
	}
}

static void test_version(void **state)
{
	struct parsed p;

	PARSE(&p, "--version");
	assert_int_equal(p.r, CLI_EXIT_OK);
	assert_string_equal(p.out, "kvmstats_exporter version " PROJECT_VERSION
				   " (revision " PROJECT_REVISION ")\n");
	assert_string_equal(p.err, "");
	parsed_release(&p);
}

/* ---- durations ------------------------------------------------------------------------- */

static void test_handoff_flags(void **state)
{
	char path107[108], path108[109];
	struct parsed p;

	PARSE(&p, "--kvm.handoff-socket=/tmp/h.sock", "--kvm.handoff-allow-uid=1000",
	      "--kvm.handoff-allow-uid", "root", "--kvm.handoff-allow-gid=root",
	      "--kvm.handoff-allow-gid", "7", "--kvm.handoff-max-connections=65536");
	assert_string_equal(p.err, "");
	assert_int_equal(p.r, CLI_RUN);
	assert_string_equal(p.o.handoff_socket, "/tmp/h.sock");
	/* Given users replace the default ones; order is kept. */
	assert_int_equal(p.o.n_handoff_allow_uids, 2);
	assert_int_equal(p.o.handoff_allow_uids[0], 1000);
	assert_int_equal(p.o.handoff_allow_uids[1], 0);
	assert_int_equal(p.o.n_handoff_allow_gids, 2);
	assert_int_equal(p.o.handoff_allow_gids[0], 0);
	assert_int_equal(p.o.handoff_allow_gids[1], 7);
	assert_int_equal(p.o.handoff_max_connections, 65536);
	parsed_release(&p);

	/* Empty disables; a gid alone leaves the default users. */
	PARSE(&p, "--kvm.handoff-socket=", "--kvm.handoff-allow-gid=4294967294",
	      "--kvm.handoff-max-connections", "1");
	assert_int_equal(p.r, CLI_RUN);
	assert_string_equal(p.o.handoff_socket, "");
	assert_int_equal(p.o.handoff_allow_gids[0], 4294967294u);
	assert_int_equal(p.o.handoff_allow_uids[0], 0);
	assert_int_equal(p.o.handoff_max_connections, 1);
	parsed_release(&p);

	/* A unix socket path has 107 usable bytes. */
	memset(path107, 'a', sizeof(path107) - 1);
	path107[0] = '/';
	path107[sizeof(path107) - 1] = '\0';
	memcpy(path108, path107, sizeof(path107));
	strcat(path108, "a");
	PARSE(&p, "--kvm.handoff-socket", path107);
	assert_int_equal(p.r, CLI_RUN);
	assert_string_equal(p.o.handoff_socket, path107);
	parsed_release(&p);
	PARSE(&p, "--kvm.handoff-socket", path108);
	assert_int_equal(p.r, -EINVAL);
	assert_non_null(strstr(p.err, "longer than a unix socket path may be (107 bytes)"));
	parsed_release(&p);
}

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		int r;
		uint64_t usec;
	} cases[] = {
		{ "0", 0, 0 },
		{ "0s", 0, 0 },
		{ "5s", 0, 5000000 },
		{ "500ms", 0, 500000 },
		{ "1m", 0, 60000000 },
		{ "1m30s", 0, 90000000 },
		{ "250us", 0, 250 },
		{ "250\xc2\xb5s", 0, 250 }, /* micro sign */
		{ "250\xce\xbcs", 0, 250 }, /* Greek mu */
		{ "2h", 0, UINT64_C(7200000000) },
		{ "1.5s", 0, 1500000 },
		{ ".5s", 0, 500000 },
		{ "1.s", 0, 1000000 },
		{ "0.001ms", 0, 1 },
		{ "1500ns", 0, 1 },
		{ "999ns", 0, 0 },
		{ "1h2m3s4ms5us6ns", 0, UINT64_C(3723004005) },
		{ "1.25h", 0, UINT64_C(4500000000) },
		{ "0.000000000000000000000001h", 0, 0 },
		{ "3s3s", 0, 6000000 },
		{ "18446744073709551615ns", 0, UINT64_C(18446744073709551) },
		{ "18446744073709551616ns", -ERANGE, 0 },
		{ "5124095h", 0, UINT64_C(18446742000000000) },
		{ "5124095h1h", -ERANGE, 0 },
		{ "5124096h", -ERANGE, 0 },
		{ "99999999999999999999s", -ERANGE, 0 },
		{ "9999999999h", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "5", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ ".s", -EINVAL, 0 },
		{ ".", -EINVAL, 0 },
		{ "-5s", -EINVAL, 0 },
		{ "+5s", -EINVAL, 0 },
		{ "5 s", -EINVAL, 0 },
		{ " 5s", -EINVAL, 0 },
		{ "5s ", -EINVAL, 0 },
		{ "5sec", -EINVAL, 0 },
		{ "5S", -EINVAL, 0 },
		{ "5d", -EINVAL, 0 },
		{ "1m30", -EINVAL, 0 },
		{ "1..5s", -EINVAL, 0 },
		{ "abc", -EINVAL, 0 },
		{ "0x10s", -EINVAL, 0 },
		{ "1e3s", -EINVAL, 0 },
		{ "\xc2s", -EINVAL, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint64_t usec = UINT64_C(0xdeadbeef);
		int r = parse_duration_usec(cases[i].s, &usec);

		if (r != cases[i].r)
			fail_msg("\"%s\": r=%d, expected %d", cases[i].s, r, cases[i].r);
		if (r == 0 && usec != cases[i].usec)
			fail_msg("\"%s\": %" PRIu64 "us, expected %" PRIu64, cases[i].s, usec,
				 cases[i].usec);
		/* Written only on success. */
		if (r < 0 && usec != UINT64_C(0xdeadbeef))
			fail_msg("\"%s\": output written on failure", cases[i].s);
	}
	assert_int_equal(parse_duration_usec(NULL, &(uint64_t){ 0 }), -EINVAL);
}

/* ---- listen addresses ------------------------------------------------------------------ */

static void test_listen_addresses(void **state)
{
	static const struct {
		const char *s;
		int r;
		const char *host; /* NULL: all addresses */
		unsigned port;
	} cases[] = {
		{ ":9977", 0, NULL, 9977 },
		{ ":0", 0, NULL, 0 },
		{ ":65535", 0, NULL, 65535 },
		{ "127.0.0.1:9977", 0, "127.0.0.1", 9977 },
		{ "0.0.0.0:80", 0, "0.0.0.0", 80 },
		{ "[::1]:9977", 0, "::1", 9977 },
		{ "[::]:9977", 0, "::", 9977 },
		{ "[fe80::1%eth0]:9977", 0, "fe80::1%eth0", 9977 },
		{ "[::ffff:127.0.0.1]:1", 0, "::ffff:127.0.0.1", 1 },
		{ "localhost:9977", 0, "localhost", 9977 },
		{ "my-host.example.com:9100", 0, "my-host.example.com", 9100 },
		{ "localhost:09977", 0, "localhost", 9977 },
		{ "", -EINVAL, NULL, 0 },
		{ "abc", -EINVAL, NULL, 0 },
		{ "9977", -EINVAL, NULL, 0 },
		{ ":", -EINVAL, NULL, 0 },
		{ ":99999", -EINVAL, NULL, 0 },
		{ ":65536", -EINVAL, NULL, 0 },
		{ ":123456", -EINVAL, NULL, 0 },
		{ ":-1", -EINVAL, NULL, 0 },
		{ ":+80", -EINVAL, NULL, 0 },
		{ ": 80", -EINVAL, NULL, 0 },
		{ ":80 ", -EINVAL, NULL, 0 },
		{ ":0x50", -EINVAL, NULL, 0 },
		{ ":http", -EINVAL, NULL, 0 },
		{ "host:", -EINVAL, NULL, 0 },
		{ "[::1", -EINVAL, NULL, 0 },
		{ "[::1]", -EINVAL, NULL, 0 },
		{ "[::1]:", -EINVAL, NULL, 0 },
		{ "[::1]9977", -EINVAL, NULL, 0 },
		{ "[]:80", -EINVAL, NULL, 0 },
		{ "[localhost]:80", -EINVAL, NULL, 0 },
		{ "[::1]]:80", -EINVAL, NULL, 0 },
		{ "::1:9977", -EINVAL, NULL, 0 },
		{ "a b:80", -EINVAL, NULL, 0 },
		{ "host/x:80", -EINVAL, NULL, 0 },
		{ "http://host:80", -EINVAL, NULL, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char *host = (char *)"untouched";
		unsigned port = 12345;
		int r = http_parse_listen_address(cases[i].s, &host, &port);

		if (r != cases[i].r)
			fail_msg("\"%s\": r=%d, expected %d", cases[i].s, r, cases[i].r);
		if (r < 0) {
			assert_string_equal(host, "untouched");
			continue;
		}
		if (cases[i].host)
			assert_string_equal(host, cases[i].host);
		else
			assert_null(host);
		assert_int_equal(port, cases[i].port);
		free(host);
	}
	assert_int_equal(http_parse_listen_address(NULL, &(char *){ NULL }, &(unsigned){ 0 }),
			 -EINVAL);
}

/* ---- logging --------------------------------------------------------------------------- */

/* Checks "ts=YYYY-MM-DDTHH:MM:SS.mmmZ " and returns what follows. */
static const char *skip_timestamp(const char *line)
{
	static const char shape[] = "ts=dddd-dd-ddTdd:dd:dd.dddZ ";

	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd' ? (line[i] < '0' || line[i] > '9') : line[i] != shape[i])
			fail_msg("bad timestamp in '%s'", line);
	}
	return line + sizeof(shape) - 1;
}

/* Splits s into lines (in place) and returns each line's text after the timestamp. */
static size_t log_lines(char *s, const char **lines, size_t max)
{
	char *save = NULL, *line;
	size_t n = 0;

	for (line = strtok_r(s, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save))
		lines[n++] = skip_timestamp(line);
	return n;
}

static void test_log_format(void **state)
{
	const char *lines[8];
	struct capture c;
	char *s;

	log_set_level(LOG_LEVEL_DEBUG);
	capture_start(&c, STDERR_FILENO);
	log_info("hello \"world\"\nsecond\\line\t\x01", "a=%d b=\"%s\" path=%s", 1, "two\nlines",
		 "/x\\y");
	log_debug("plain", NULL);
	log_warn("empty tail", "%s", "");
	log_error("error", "err=\"%s\"", strerror(ENOENT));
	log_info("", NULL);
	s = capture_stop(&c);
	log_set_level(LOG_LEVEL_INFO);

	assert_int_equal(count_char(s, '\n'), 5);
	assert_int_equal(s[strlen(s) - 1], '\n');
	assert_int_equal(log_lines(s, lines, ELEMENTSOF(lines)), 5);
	assert_string_equal(lines[0], "level=info msg=\"hello \\\"world\\\"\\nsecond\\\\line\\t"
				      "\\u0001\" a=1 b=\"two\\nlines\" path=/x\\y");
	assert_string_equal(lines[1], "level=debug msg=\"plain\"");
	assert_string_equal(lines[2], "level=warn msg=\"empty tail\"");
	assert_string_equal(lines[3],
			    "level=error msg=\"error\" err=\"No such file or directory\"");
	assert_string_equal(lines[4], "level=info msg=\"\"");
	free(s);
}

static void test_log_levels(void **state)
{
	static const struct {
		const char *s;
		int r;
		enum log_level level;
	} cases[] = {
		{ "debug", 0, LOG_LEVEL_DEBUG },
		{ "info", 0, LOG_LEVEL_INFO },
		{ "warn", 0, LOG_LEVEL_WARN },
		{ "error", 0, LOG_LEVEL_ERROR },
		{ "", -EINVAL, 0 },
		{ "Info", -EINVAL, 0 },
		{ "warning", -EINVAL, 0 },
		{ "info ", -EINVAL, 0 },
	};
	struct capture c;
	char *s;

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		enum log_level l = LOG_LEVEL_ERROR;

		assert_int_equal(log_level_parse(cases[i].s, &l), cases[i].r);
		if (cases[i].r == 0)
			assert_int_equal(l, cases[i].level);
	}
	assert_int_equal(log_level_parse(NULL, &(enum log_level){ 0 }), -EINVAL);

	log_set_level(LOG_LEVEL_WARN);
	capture_start(&c, STDERR_FILENO);
	log_debug("no", NULL);
	log_info("no", NULL);
	log_warn("yes", NULL);
	log_error("yes", NULL);
	s = capture_stop(&c);
	log_set_level(LOG_LEVEL_INFO);
	assert_int_equal(count_char(s, '\n'), 2);
	assert_non_null(strstr(s, "level=warn msg=\"yes\""));
	assert_non_null(strstr(s, "level=error msg=\"yes\""));
	assert_null(strstr(s, "\"no\""));
	free(s);
}

static void test_log_long_line(void **state)
{
	char msg[5000], tail[3000];
	struct capture c;
	char *s;

	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	memset(tail, 't', sizeof(tail) - 1);
	tail[sizeof(tail) - 1] = '\0';
	capture_start(&c, STDERR_FILENO);
	log_info(msg, "k=%s", tail);
	s = capture_stop(&c);
	assert_int_equal(count_char(s, '\n'), 1);
	assert_int_equal(strlen(skip_timestamp(s)),
			 strlen("level=info msg=\"\" k=\n") + strlen(msg) + strlen(tail));
	free(s);
}

#define LOG_THREADS 8
#define LOG_LINES   300

static void *log_thread(void *arg)
{
	for (int i = 0; i < LOG_LINES; i++)
		log_info("concurrent", "thread=%d i=%d pad=%0200d", (int)(intptr_t)arg, i, 0);
	return NULL;
}

static void test_log_threads(void **state)
{
	pthread_t t[LOG_THREADS];
	struct capture c;
	size_t lines = 0;
	char *s, *line, *save = NULL;

	capture_start(&c, STDERR_FILENO);
	for (intptr_t i = 0; i < LOG_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, log_thread, (void *)i), 0);
	for (int i = 0; i < LOG_THREADS; i++)
		pthread_join(t[i], NULL);
	s = capture_stop(&c);

	/* Every line whole: lines never interleave. */
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *rest = skip_timestamp(line);

		assert_int_equal(strncmp(rest, "level=info msg=\"concurrent\" thread=", 35), 0);
		assert_int_equal(strlen(strstr(rest, "pad=")), 4 + 200);
		lines++;
	}
	assert_int_equal(lines, LOG_THREADS * LOG_LINES);
	free(s);
}

/* ---- HTTP ------------------------------------------------------------------------------ */

struct fake {
	const char *body;
	int result;       /* returned by collect */
	bool fail_buffer; /* collect sets out->failed */
	atomic_bool ready;
	atomic_int calls;
	/* Observed by collect (in a server thread), checked by the test afterwards. */
	struct outbuf *out_seen;
	char *data_at_entry;
	size_t len_at_entry;
	char *data_after;
};

static struct fake fake;

static int fake_collect(void *userdata, struct outbuf *out, enum exposition_format fmt,
			uint32_t collectors)
{
	(void)collectors;
	struct fake *f = userdata;

	atomic_fetch_add(&f->calls, 1);
	f->out_seen = out;
	f->data_at_entry = out->data;
	f->len_at_entry = out->len;
	if (f->result < 0) {
		outbuf_puts(out, "partial output that must not be served");
		return f->result;
	}
	outbuf_puts(out, f->body);
	if (f->fail_buffer)
		out->failed = true;
	f->data_after = out->data;
	return 0;
}

static bool fake_ready(void *userdata)
{
	return atomic_load(&((struct fake *)userdata)->ready);
}

struct http_reply {
	int status;
	char *raw;
	char *headers; /* into raw */
	char *body;    /* into raw */
	size_t body_len;
};

static void http_reply_release(struct http_reply *r)
{
	free(r->raw);
	*r = (struct http_reply){ 0 };
}

/* One request on a fresh connection ("Connection: close"), read to EOF. */
static void http_request(unsigned port, const char *method, const char *path,
			 struct http_reply *ret)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct timeval tv = { .tv_sec = 10 };
	size_t len = 0, cap = 4096;
	char req[512], *raw, *end;
	int fd, n;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
		     "Content-Length: 0\r\n\r\n",
		     method, path);
	assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);

	raw = malloc(cap + 1);
	assert_non_null(raw);
	for (;;) {
		ssize_t r;

		if (len == cap) {
			cap *= 2;
			raw = realloc(raw, cap + 1);
			assert_non_null(raw);
		}
		r = recv(fd, raw + len, cap - len, 0);
		assert_true(r >= 0);
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	raw[len] = '\0';

	end = strstr(raw, "\r\n\r\n");
	assert_non_null(end);
	*end = '\0';
	*ret = (struct http_reply){
		.raw = raw,
		.headers = raw,
		.body = end + 4,
		.body_len = len - (size_t)(end + 4 - raw),
	};
	assert_int_equal(sscanf(raw, "HTTP/1.1 %d ", &ret->status), 1);
}

/* The value of header name (case-insensitive), copied into buf; NULL if absent. */
static const char *http_header(const struct http_reply *r, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);

	for (const char *line = strstr(r->headers, "\r\n"); line; line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
			const char *v = line + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			if (!e)
				e = v + strlen(v);
			snprintf(buf, len, "%.*s", (int)(e - v), v);
			return buf;
		}
	}
	return NULL;
}

/* A port that was free a moment ago (bind to 0, read it, close). */
static unsigned free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static struct http_server *start_server(const char *addr, char **ret_log)
{
	char *listen[] = { (char *)addr };
	struct http_config cfg = {
		.listen = listen,
		.n_listen = 1,
		.telemetry_path = "/metrics",
		.collect = fake_collect,
		.ready = fake_ready,
		.userdata = &fake,
	};
	struct http_server *s = NULL;
	char err[256] = "";
	struct capture c;
	char *log;
	int r;

	capture_start(&c, STDERR_FILENO);
	r = http_server_start(&cfg, &s, err, sizeof(err));
	log = capture_stop(&c);
	if (r < 0)
		fail_msg("http_server_start(%s): %d %s", addr, r, err);
	if (ret_log)
		*ret_log = log;
	else
		free(log);
	return s;
}

static void test_http_routes(void **state)
{
	struct http_server *s;
	struct http_reply r;
	char addr[64], h[256];
	unsigned port = free_port();
	char *log;
	struct outbuf *first_out;
	char *first_data;

	fake = (struct fake){ .body = "# HELP x X.\n# TYPE x gauge\nx 1\n", .ready = true };
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	s = start_server(addr, &log);
	/* The bound address is logged, in the form tests and operators look for. */
	snprintf(h, sizeof(h), "msg=\"listening\" address=127.0.0.1:%u\n", port);
	assert_non_null(strstr(log, h));
	free(log);

	/* /metrics: 200, the exposition content type, the body collect wrote. */
	http_request(port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(http_header(&r, "Content-Type", h, sizeof(h)),
			    "text/plain; version=0.0.4; charset=utf-8");
	assert_int_equal(r.body_len, strlen(fake.body));
	assert_string_equal(r.body, fake.body);
	http_reply_release(&r);
	assert_int_equal(atomic_load(&fake.calls), 1);
	first_out = fake.out_seen;
	first_data = fake.data_after;
	assert_non_null(first_data);

	/* The next scrape reuses the same buffer: reset, not reallocated. */
	http_request(port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, fake.body);
	http_reply_release(&r);
	assert_ptr_equal(fake.out_seen, first_out);
	assert_ptr_equal(fake.data_at_entry, first_data);
	assert_int_equal(fake.len_at_entry, 0);

	/* HEAD: headers only. */
	http_request(port, "HEAD", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(http_header(&r, "Content-Type", h, sizeof(h)),
			    "text/plain; version=0.0.4; charset=utf-8");
	assert_int_equal(r.body_len, 0);
	assert_int_equal(atoi(http_header(&r, "Content-Length", h, sizeof(h))),
			 (int)strlen(fake.body));
	http_reply_release(&r);

	/* The query string does not change the route. */
	http_request(port, "GET", "/metrics?name[]=x", &r);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);

	/* Landing page. */
	http_request(port, "GET", "/", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(http_header(&r, "Content-Type", h, sizeof(h)),
			    "text/html; charset=utf-8");
	assert_non_null(strstr(r.body, "<title>kvmstats_exporter</title>"));
	assert_non_null(strstr(r.body, "href=\"./metrics\""));
	assert_non_null(strstr(r.body, PROJECT_VERSION));
	http_reply_release(&r);

	/* Health and readiness. */
	http_request(port, "GET", "/-/healthy", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "Healthy\n");
	http_reply_release(&r);
	http_request(port, "GET", "/-/ready", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "Ready\n");
	http_reply_release(&r);
	atomic_store(&fake.ready, false);
	http_request(port, "GET", "/-/ready", &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "Not ready\n");
	http_reply_release(&r);
	atomic_store(&fake.ready, true);

	/* Unknown paths. */
	http_request(port, "GET", "/nope", &r);
	assert_int_equal(r.status, 404);
	http_reply_release(&r);
	http_request(port, "GET", "/metrics/", &r);
	assert_int_equal(r.status, 404);
	http_reply_release(&r);

	/* Other methods: 405 with Allow. */
	http_request(port, "POST", "/metrics", &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(http_header(&r, "Allow", h, sizeof(h)), "GET, HEAD");
	http_reply_release(&r);
	http_request(port, "DELETE", "/", &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(http_header(&r, "Allow", h, sizeof(h)), "GET, HEAD");
	http_reply_release(&r);
	assert_int_equal(atomic_load(&fake.calls), 4);

	/* collect fails: 500 with one line, and nothing of the partial output. */
	fake.result = -EIO;
	http_request(port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 500);
	assert_string_equal(r.body, "error collecting metrics: Input/output error\n");
	http_reply_release(&r);
	fake.result = 0;

	/* The buffer failed (grow-or-fail): 500 rather than a cut exposition. */
	fake.fail_buffer = true;
	http_request(port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 500);
	assert_int_equal(count_char(r.body, '\n'), 1);
	assert_null(strstr(r.body, "HELP"));
	http_reply_release(&r);
	fake.fail_buffer = false;

	/* And it recovers. */
	http_request(port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, fake.body);
	http_reply_release(&r);

	assert_null(http_server_stop(s));
	assert_null(http_server_stop(NULL));
}

static void test_http_large_body(void **state)
{
	enum { SIZE = 4 << 20 };
	struct http_server *s;
	struct http_reply r;
	char addr[64];
	unsigned port = free_port();
	char *body = malloc(SIZE + 1);

	assert_non_null(body);
	for (size_t i = 0; i < SIZE; i++)
		body[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
	body[SIZE] = '\0';
	fake = (struct fake){ .body = body, .ready = true };
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	s = start_server(addr, NULL);

	for (int i = 0; i < 2; i++) {
		http_request(port, "GET", "/metrics", &r);
		assert_int_equal(r.status, 200);
		assert_int_equal(r.body_len, SIZE);
		assert_memory_equal(r.body, body, SIZE);
		http_reply_release(&r);
	}
	http_server_stop(s);
	free(body);
}

/* Port 0: the chosen port is only known from the log line. */
static unsigned port_from_log(const char *log, const char *prefix)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "msg=\"listening\" address=%s", prefix);
	p = strstr(log, key);
	if (!p)
		fail_msg("no '%s' in log: %s", key, log);
	return (unsigned)strtoul(p + strlen(key), NULL, 10);
}

static void test_http_ephemeral_ports(void **state)
{
	struct http_server *s;
	struct http_reply r;
	unsigned port;
	char *log;

	fake = (struct fake){ .body = "x 1\n", .ready = true };

	s = start_server("127.0.0.1:0", &log);
	port = port_from_log(log, "127.0.0.1:");
	assert_true(port > 0);
	http_request(port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "x 1\n");
	http_reply_release(&r);
	http_server_stop(s);
	free(log);

	/* ":0": all addresses; dual-stack [::] where IPv6 exists, else 0.0.0.0. */
	s = start_server(":0", &log);
	port = strstr(log, "address=[::]:") ? port_from_log(log, "[::]:")
					    : port_from_log(log, "0.0.0.0:");
	assert_true(port > 0);
	http_request(port, "GET", "/-/healthy", &r); /* IPv4 reaches it too */
	assert_int_equal(r.status, 200);
	http_reply_release(&r);
	http_server_stop(s);
	free(log);

	/* A name with several addresses: each bound, all on the same ephemeral port. */
	s = start_server("localhost:0", &log);
	port = port_from_log(log, "127.0.0.1:");
	if (strstr(log, "address=[::1]:"))
		assert_int_equal(port_from_log(log, "[::1]:"), port);
	http_request(port, "GET", "/-/healthy", &r);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);
	http_server_stop(s);
	free(log);
}

static void test_http_start_errors(void **state)
{
	char addr[64], err[256], *listen[2];
	struct http_config cfg = {
		.listen = listen,
		.n_listen = 1,
		.telemetry_path = "/metrics",
		.collect = fake_collect,
		.userdata = &fake,
	};
	struct http_server *s, *s2 = NULL;
	struct capture c;
	unsigned port = free_port();
	char *log;
	int r;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	s = start_server(addr, NULL);

	/* Address in use: the error names the address. */
	listen[0] = addr;
	capture_start(&c, STDERR_FILENO);
	r = http_server_start(&cfg, &s2, err, sizeof(err));
	log = capture_stop(&c);
	assert_int_equal(r, -EADDRINUSE);
	assert_null(s2);
	assert_non_null(strstr(err, addr));
	assert_non_null(strstr(err, "Address already in use"));
	free(log);

	/* Garbage. */
	listen[0] = (char *)"abc";
	r = http_server_start(&cfg, &s2, err, sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(err, "\"abc\""));

	/* Nothing serves if one of several addresses fails, and the others are released. */
	listen[0] = (char *)"127.0.0.1:0";
	listen[1] = addr;
	cfg.n_listen = 2;
	capture_start(&c, STDERR_FILENO);
	r = http_server_start(&cfg, &s2, err, sizeof(err));
	log = capture_stop(&c);
	assert_int_equal(r, -EADDRINUSE);
	assert_null(s2);
	free(log);

	/* Missing collect callback, tiny errbuf: still a clean error. */
	cfg.collect = NULL;
	r = http_server_start(&cfg, &s2, err, 4);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(strlen(err), 3);
	r = http_server_start(&cfg, &s2, NULL, 0);
	assert_int_equal(r, -EINVAL);

	http_server_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_flag_equals_form),
		cmocka_unit_test(test_every_flag_separate_form),
		cmocka_unit_test(test_boolean_forms),
		cmocka_unit_test(test_repeatable),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_collectors),
		cmocka_unit_test(test_error_after_allocations_does_not_leak),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_handoff_flags),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_listen_addresses),
		cmocka_unit_test(test_log_format),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_log_long_line),
		cmocka_unit_test(test_log_threads),
		cmocka_unit_test(test_http_routes),
		cmocka_unit_test(test_http_large_body),
		cmocka_unit_test(test_http_ephemeral_ports),
		cmocka_unit_test(test_http_start_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
