/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the command line (cli.c, cli_usage.c): every flag in both
 * forms, booleans, repeatable flags, collectors, each error's one line,
 * --help and --version.
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

#include "capture.h"
#include "cli.h"
#include "config.h"
#include "macro.h"

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
