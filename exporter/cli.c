/* SPDX-License-Identifier: MIT */
/*
 * Command line, the way kingpin (and so every Go exporter) does it: long
 * flags only (plus -h), "--flag=value" or "--flag value", booleans as
 * "--flag", "--no-flag" or "--flag=true|false", no positional arguments,
 * and a flag that is not repeatable may be given once.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "http/http.h"
#include "log/log.h"
#include "macro.h"
#include "stats_filter.h"
#include "util/duration.h"

#define PROGRAM                         CLI_PROGRAM
#define DEFAULT_PORT                    CLI_DEFAULT_PORT
#define DEFAULT_TELEMETRY_PATH          CLI_DEFAULT_TELEMETRY_PATH
#define USEC_PER_MSEC                   UINT64_C(1000)
#define USEC_PER_SEC                    UINT64_C(1000000)
#define DEFAULT_RESCAN_USEC             (5 * USEC_PER_SEC)
#define MIN_RESCAN_USEC                 (100 * USEC_PER_MSEC)
#define MAX_RESCAN_USEC                 (3600 * USEC_PER_SEC)
#define DEFAULT_HANDOFF_MAX_CONNECTIONS 256
#define MAX_HANDOFF_MAX_CONNECTIONS     65536
#define MAX_UNIX_SOCKET_PATH            107 /* sizeof(sun_path) - 1 */

enum flag_kind {
	FLAG_BOOL,      /* sets a bool member at `offset` */
	FLAG_VALUE,     /* takes a value, handled by `set` */
	FLAG_HELP,      /* prints usage_text */
	FLAG_VERSION,   /* prints the version line */
	FLAG_COLLECTOR, /* a boolean: turns collector `offset` (enum collector_id) on or off */
};

struct flag {
	const char *name; /* without the leading "--" */
	enum flag_kind kind;
	bool repeatable;
	size_t offset;
	/* Stores value into o; 0, or -EINVAL with *ret_why saying what is wrong, or -ENOMEM. */
	int (*set)(struct options *o, const char *value, const char **ret_why);
};

static int strv_push(char ***strv, size_t *n, const char *s)
{
	_cleanup_free_ char *copy = strdup(s);
	char **grown;

	if (!copy)
		return -ENOMEM;
	if (*n >= SIZE_MAX / sizeof(char *) - 1)
		return -ENOMEM;
	grown = realloc(*strv, (*n + 1) * sizeof(char *));
	if (!grown)
		return -ENOMEM;
	*strv = grown;
	grown[(*n)++] = TAKE_PTR(copy);
	return 0;
}

static int set_listen(struct options *o, const char *value, const char **ret_why)
{
	_cleanup_free_ char *host = NULL;
	unsigned port;

	if (http_parse_listen_address(value, &host, &port) < 0) {
		*ret_why = "expected host:port, :port or [ipv6]:port with a port from 0 to 65535";
		return -EINVAL;
	}
	return strv_push(&o->listen, &o->n_listen, value);
}

static int set_telemetry_path(struct options *o, const char *value, const char **ret_why)
{
	char *copy;

	if (value[0] != '/') {
		*ret_why = "must start with \"/\"";
		return -EINVAL;
	}
	if (strcmp(value, "/") == 0) {
		*ret_why = "must not be \"/\", which serves the landing page";
		return -EINVAL;
	}
	if (strncmp(value, "/-/", 3) == 0) {
		*ret_why = "paths under \"/-/\" are reserved for /-/healthy and /-/ready";
		return -EINVAL;
	}
	/* The server compares the decoded path without its query; these could never match. */
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#') {
			*ret_why = "must not contain spaces, control characters, '?' or '#'";
			return -EINVAL;
		}
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	free(o->telemetry_path);
	o->telemetry_path = copy;
	return 0;
}

static int set_stats_file(struct options *o, const char *value, const char **ret_why)
{
	if (value[0] == '\0') {
		*ret_why = "must not be empty";
		return -EINVAL;
	}
	return strv_push(&o->stats_files, &o->n_stats_files, value);
}

/* A regular expression that compiles, kept as text (main compiles it for the collector). */
static int set_regex(char **slot, const char *value, const char **ret_why)
{
	static char why[160];
	regex_t re;
	char *copy;
	int r;

	r = stats_filter_compile(&re, value, why, sizeof(why));
	if (r < 0) {
		*ret_why = why;
		return r;
	}
	regfree(&re);
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	free(*slot);
	*slot = copy;
	return 0;
}

static int set_stats_include(struct options *o, const char *value, const char **ret_why)
{
	return set_regex(&o->stats_include, value, ret_why);
}

static int set_stats_exclude(struct options *o, const char *value, const char **ret_why)
{
	return set_regex(&o->stats_exclude, value, ret_why);
}

static int set_rescan_interval(struct options *o, const char *value, const char **ret_why)
{
	uint64_t usec;
	int r;

	r = parse_duration_usec(value, &usec);
	if (r == -ERANGE) {
		*ret_why = "out of range (at most 1h)";
		return -EINVAL;
	}
	if (r < 0) {
		*ret_why = "expected a duration such as 500ms, 5s, 1m or 1m30s";
		return -EINVAL;
	}
	if (usec < MIN_RESCAN_USEC || usec > MAX_RESCAN_USEC) {
		*ret_why = "must be from 100ms to 1h";
		return -EINVAL;
	}
	o->rescan_usec = usec;
	return 0;
}

static int set_handoff_socket(struct options *o, const char *value, const char **ret_why)
{
	char *copy;

	if (strlen(value) > MAX_UNIX_SOCKET_PATH) {
		*ret_why = "longer than a unix socket path may be (107 bytes)";
		return -EINVAL;
	}
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	free(o->handoff_socket);
	o->handoff_socket = copy;
	return 0;
}

static int ids_push(uint32_t **ids, size_t *n, uint32_t id)
{
	uint32_t *grown;

	if (*n >= SIZE_MAX / sizeof(**ids) - 1)
		return -ENOMEM;
	grown = realloc(*ids, (*n + 1) * sizeof(**ids));
	if (!grown)
		return -ENOMEM;
	*ids = grown;
	grown[(*n)++] = id;
	return 0;
}

/* A decimal id below 2^32-1 ((uid_t)-1 means "none"), without sign or spaces. */
static int parse_id(const char *s, uint32_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v >= UINT32_MAX)
			return -ERANGE;
	}
	*ret = (uint32_t)v;
	return 0;
}

static int set_handoff_allow_uid(struct options *o, const char *value, const char **ret_why)
{
	uint32_t id;
	int r = parse_id(value, &id);

	if (r == -EINVAL) {
		struct passwd pw, *res = NULL;
		char buf[4096];

		if (getpwnam_r(value, &pw, buf, sizeof(buf), &res) == 0 && res)
			id = (uint32_t)res->pw_uid, r = 0;
	}
	if (r < 0) {
		*ret_why = r == -ERANGE ? "out of range (at most 4294967294)"
					: "expected a user id or the name of an existing user";
		return -EINVAL;
	}
	return ids_push(&o->handoff_allow_uids, &o->n_handoff_allow_uids, id);
}

static int set_handoff_allow_gid(struct options *o, const char *value, const char **ret_why)
{
	uint32_t id;
	int r = parse_id(value, &id);

	if (r == -EINVAL) {
		struct group gr, *res = NULL;
		char buf[16384];

		if (getgrnam_r(value, &gr, buf, sizeof(buf), &res) == 0 && res)
			id = (uint32_t)res->gr_gid, r = 0;
	}
	if (r < 0) {
		*ret_why = r == -ERANGE ? "out of range (at most 4294967294)"
					: "expected a group id or the name of an existing group";
		return -EINVAL;
	}
	return ids_push(&o->handoff_allow_gids, &o->n_handoff_allow_gids, id);
}

static int set_handoff_max_connections(struct options *o, const char *value, const char **ret_why)
{
	uint32_t n;

	if (parse_id(value, &n) < 0 || n < 1 || n > MAX_HANDOFF_MAX_CONNECTIONS) {
		*ret_why = "expected a number from 1 to 65536";
		return -EINVAL;
	}
	o->handoff_max_connections = n;
	return 0;
}

static int set_log_level(struct options *o, const char *value, const char **ret_why)
{
	if (log_level_parse(value, &o->log_level) < 0) {
		*ret_why = "expected debug, info, warn or error";
		return -EINVAL;
	}
	return 0;
}

static int set_log_format(struct options *o, const char *value, const char **ret_why)
{
	if (log_format_parse(value, &o->log_format) < 0) {
		*ret_why = "expected logfmt or json";
		return -EINVAL;
	}
	return 0;
}

static int set_web_config_file(struct options *o, const char *value, const char **ret_why)
{
	char *copy = NULL;

	/* Empty means none, as in the Go exporters (handy in an environment file). */
	if (value[0] != '\0') {
		copy = strdup(value);
		if (!copy)
			return -ENOMEM;
	}
	free(o->web_config_file);
	o->web_config_file = copy;
	return 0;
}

static int set_max_requests(struct options *o, const char *value, const char **ret_why)
{
	unsigned long v = 0;

	*ret_why = "expected a whole number from 0 (no limit) to 1000000";
	if (value[0] == '\0')
		return -EINVAL;
	for (const char *p = value; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 1000000)
			return -EINVAL;
	}
	o->max_requests = (unsigned)v;
	return 0;
}

static int set_vhost_proxy(struct options *o, const char *value, const char **ret_why)
{
	struct vhost_proxy_config c, *grown;
	int r;

	r = vhost_proxy_config_parse(value, &c, ret_why);
	if (r == 0)
		r = vhost_proxy_config_check_unique(o->vhost_proxies, o->n_vhost_proxies, &c,
						    ret_why);
	if (r == 0) {
		grown = reallocarray(o->vhost_proxies, o->n_vhost_proxies + 1, sizeof(*grown));
		r = grown ? 0 : -ENOMEM;
		if (grown) {
			o->vhost_proxies = grown;
			grown[o->n_vhost_proxies++] = c;
			return 0;
		}
	}
	vhost_proxy_config_release(&c);
	return r;
}

static int set_vhost_policy(struct options *o, const char *value, const char **ret_why)
{
	if (vhost_policy_parse(value, &o->vhost_policy) < 0) {
		*ret_why = "expected observe or enforce";
		return -EINVAL;
	}
	return 0;
}

static const struct flag flags[] = {
	{ .name = "web.listen-address", .kind = FLAG_VALUE, .repeatable = true, .set = set_listen },
	{ .name = "web.telemetry-path", .kind = FLAG_VALUE, .set = set_telemetry_path },
	{ .name = "web.config.file", .kind = FLAG_VALUE, .set = set_web_config_file },
	{ .name = "web.max-requests", .kind = FLAG_VALUE, .set = set_max_requests },
	{ .name = "web.disable-exporter-metrics",
	  .kind = FLAG_BOOL,
	  .offset = offsetof(struct options, disable_exporter_metrics) },
	{ .name = "web.systemd-socket",
	  .kind = FLAG_BOOL,
	  .offset = offsetof(struct options, systemd_socket) },
	{ .name = "once", .kind = FLAG_BOOL, .offset = offsetof(struct options, once) },
	{ .name = "kvm.procfs", .kind = FLAG_BOOL, .offset = offsetof(struct options, procfs) },
	{ .name = "kvm.stats-file", .kind = FLAG_VALUE, .repeatable = true, .set = set_stats_file },
	{ .name = "kvm.canary", .kind = FLAG_BOOL, .offset = offsetof(struct options, canary) },
	{ .name = "kvm.handoff-socket", .kind = FLAG_VALUE, .set = set_handoff_socket },
	{ .name = "kvm.handoff-allow-uid",
	  .kind = FLAG_VALUE,
	  .repeatable = true,
	  .set = set_handoff_allow_uid },
	{ .name = "kvm.handoff-allow-gid",
	  .kind = FLAG_VALUE,
	  .repeatable = true,
	  .set = set_handoff_allow_gid },
	{ .name = "kvm.handoff-max-connections",
	  .kind = FLAG_VALUE,
	  .set = set_handoff_max_connections },
	{ .name = "kvm.rescan-interval", .kind = FLAG_VALUE, .set = set_rescan_interval },
	{ .name = "kvm.per-vcpu", .kind = FLAG_BOOL, .offset = offsetof(struct options, per_vcpu) },
	{ .name = "kvm.stats-include", .kind = FLAG_VALUE, .set = set_stats_include },
	{ .name = "kvm.stats-exclude", .kind = FLAG_VALUE, .set = set_stats_exclude },
	{ .name = "vhost.proxy", .kind = FLAG_VALUE, .repeatable = true, .set = set_vhost_proxy },
	{ .name = "vhost.policy", .kind = FLAG_VALUE, .set = set_vhost_policy },
	{ .name = "collector.procfs", .kind = FLAG_COLLECTOR, .offset = COLLECTOR_PROCFS },
	{ .name = "collector.handoff", .kind = FLAG_COLLECTOR, .offset = COLLECTOR_HANDOFF },
	{ .name = "collector.canary", .kind = FLAG_COLLECTOR, .offset = COLLECTOR_CANARY },
	{ .name = "collector.file", .kind = FLAG_COLLECTOR, .offset = COLLECTOR_FILE },
	{ .name = "collector.vhost", .kind = FLAG_COLLECTOR, .offset = COLLECTOR_VHOST },
	{ .name = "collector.exporter", .kind = FLAG_COLLECTOR, .offset = COLLECTOR_EXPORTER },
	{ .name = "collector.disable-defaults",
	  .kind = FLAG_BOOL,
	  .offset = offsetof(struct options, collectors_disable_defaults) },
	{ .name = "log.level", .kind = FLAG_VALUE, .set = set_log_level },
	{ .name = "log.format", .kind = FLAG_VALUE, .set = set_log_format },
	{ .name = "help", .kind = FLAG_HELP },
	{ .name = "version", .kind = FLAG_VERSION },
};

static const struct flag *flag_find(const char *name, size_t n)
{
	for (size_t i = 0; i < ELEMENTSOF(flags); i++)
		if (strlen(flags[i].name) == n && memcmp(flags[i].name, name, n) == 0)
			return &flags[i];
	return NULL;
}

/* strconv.ParseBool, as kingpin uses. */
static int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "1", "t", "T", "true", "TRUE", "True" };
	static const char *const no[] = { "0", "f", "F", "false", "FALSE", "False" };

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * Quotes s for an error message: printable ASCII as is, everything else as
 * \xNN, long values cut with "...", so that the message stays one line.
 */
static const char *quote(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	buf[o++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (o + 8 >= len) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 0xf];
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

#define QUOTE_BUFSIZE 256

/* Prints the one error line and returns -EINVAL. */
_printf_(1, 2) static int fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, PROGRAM ": %s\n", msg);
	return -EINVAL;
}

static int fail_value(const struct flag *f, const char *value, const char *why)
{
	char q[QUOTE_BUFSIZE];

	return fail("invalid value %s for --%s: %s", quote(value, q, sizeof(q)), f->name, why);
}

static void options_init_defaults(struct options *o)
{
	*o = (struct options){
		.procfs = true,
		.rescan_usec = DEFAULT_RESCAN_USEC,
		.handoff_max_connections = DEFAULT_HANDOFF_MAX_CONNECTIONS,
		.log_level = LOG_LEVEL_INFO,
		.max_requests = HTTP_DEFAULT_MAX_REQUESTS,
	};
}

/*
 * Folds --collector.* into the --kvm.* and --web.* options they stand for:
 * a source runs when both its collector and its own flag leave it on; the
 * canary, off by default, runs when either turns it on and none turns it off.
 */
static void collectors_resolve(struct options *o)
{
	uint32_t on =
		(o->collectors_disable_defaults ? 0 : CLI_DEFAULT_COLLECTORS) | o->collectors_on;

	on &= ~o->collectors_off;
	if (o->canary && !(o->collectors_off & (1u << COLLECTOR_CANARY)))
		on |= 1u << COLLECTOR_CANARY;
	o->canary = on & (1u << COLLECTOR_CANARY);
	if (!o->procfs)
		on &= ~(1u << COLLECTOR_PROCFS);
	o->procfs = on & (1u << COLLECTOR_PROCFS);
	if (!(on & (1u << COLLECTOR_HANDOFF)))
		o->handoff_socket[0] = '\0';
	if (o->disable_exporter_metrics)
		on &= ~(1u << COLLECTOR_EXPORTER);
	o->disable_exporter_metrics = !(on & (1u << COLLECTOR_EXPORTER));
	o->collectors = on;
}

static int options_fill_unset(struct options *o)
{
	if (!o->telemetry_path) {
		o->telemetry_path = strdup(DEFAULT_TELEMETRY_PATH);
		if (!o->telemetry_path)
			return -ENOMEM;
	}
	if (!o->handoff_socket) {
		o->handoff_socket = strdup(CLI_DEFAULT_HANDOFF_SOCKET);
		if (!o->handoff_socket)
			return -ENOMEM;
	}
	collectors_resolve(o);
	if (o->n_handoff_allow_uids == 0) {
		if (ids_push(&o->handoff_allow_uids, &o->n_handoff_allow_uids, 0) < 0)
			return -ENOMEM;
		if (geteuid() != 0 && ids_push(&o->handoff_allow_uids, &o->n_handoff_allow_uids,
					       (uint32_t)geteuid()) < 0)
			return -ENOMEM;
	}
	if (o->n_listen == 0)
		return strv_push(&o->listen, &o->n_listen, ":" DEFAULT_PORT);
	return 0;
}

/*
 * Handles one "--..." argument (with argv[*i] pointing at it; may consume the
 * next one as a value). Returns 0 to go on, CLI_EXIT_OK after --help or
 * --version, or a negative errno (the error line is already printed).
 */
static int parse_long_flag(int argc, char **argv, int *i, struct options *o, bool *seen)
{
	const char *arg = argv[*i], *name = arg + 2, *eq, *value = NULL;
	char q[QUOTE_BUFSIZE];
	const struct flag *f;
	size_t name_n;
	bool negated = false;
	int r;

	eq = strchr(name, '=');
	name_n = eq ? (size_t)(eq - name) : strlen(name);
	if (eq)
		value = eq + 1;

	f = flag_find(name, name_n);
	if (!f && name_n > 3 && strncmp(name, "no-", 3) == 0) {
		f = flag_find(name + 3, name_n - 3);
		if (f && f->kind != FLAG_BOOL && f->kind != FLAG_COLLECTOR)
			return fail("flag --%s is not a boolean, so %s does not exist", f->name,
				    quote(arg, q, sizeof(q)));
		negated = f != NULL;
	}
	if (!f)
		return fail("unknown flag %s (see --help)", quote(arg, q, sizeof(q)));

	if (seen[f - flags] && !f->repeatable)
		return fail("flag --%s given more than once", f->name);
	seen[f - flags] = true;

	switch (f->kind) {
	case FLAG_HELP:
	case FLAG_VERSION:
		if (value)
			return fail("flag --%s does not take a value (got %s)", f->name,
				    quote(value, q, sizeof(q)));
		if (f->kind == FLAG_HELP)
			cli_print_usage();
		else
			printf(PROGRAM " version %s (revision %s)\n", PROJECT_VERSION,
			       PROJECT_REVISION);
		fflush(stdout);
		return CLI_EXIT_OK;

	case FLAG_BOOL:
	case FLAG_COLLECTOR: {
		bool b = true;

		if (value && negated)
			return fail("flag --no-%s does not take a value (got %s)", f->name,
				    quote(value, q, sizeof(q)));
		if (value && parse_bool(value, &b) < 0)
			return fail_value(f, value, "expected true or false");
		b = negated ? false : b;
		if (f->kind == FLAG_BOOL) {
			*(bool *)((char *)o + f->offset) = b;
		} else if (b) {
			o->collectors_on |= 1u << f->offset;
			o->collectors_off &= ~(1u << f->offset);
		} else {
			o->collectors_off |= 1u << f->offset;
			o->collectors_on &= ~(1u << f->offset);
		}
		return 0;
	}

	case FLAG_VALUE: {
		const char *why = "invalid";

		if (!value) {
			/* Like kingpin: a following flag is not taken as the value. */
			if (*i + 1 >= argc || (argv[*i + 1][0] == '-' && argv[*i + 1][1] != '\0'))
				return fail("flag --%s needs a value (--%s=VALUE)", f->name,
					    f->name);
			value = argv[++*i];
		}
		r = f->set(o, value, &why);
		if (r == -EINVAL)
			return fail_value(f, value, why);
		if (r < 0) {
			fail("out of memory while parsing --%s", f->name);
			return r;
		}
		return 0;
	}
	}
	return -EINVAL;
}

int cli_parse(int argc, char **argv, struct options *ret)
{
	struct options o;
	bool seen[ELEMENTSOF(flags)] = { false };
	char q[QUOTE_BUFSIZE];
	int r = 0;

	options_init_defaults(&o);

	for (int i = 1; i < argc && r == 0; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--") == 0) {
			/* Everything after "--" is positional, and we take none. */
			if (i + 1 < argc)
				r = fail("unexpected argument %s: no positional arguments are "
					 "accepted",
					 quote(argv[i + 1], q, sizeof(q)));
			break;
		}
		if (strcmp(arg, "-h") == 0) {
			cli_print_usage();
			fflush(stdout);
			r = CLI_EXIT_OK;
		} else if (strncmp(arg, "--", 2) == 0) {
			r = parse_long_flag(argc, argv, &i, &o, seen);
		} else if (arg[0] == '-' && arg[1] != '\0') {
			r = fail("unknown flag %s (see --help)", quote(arg, q, sizeof(q)));
		} else {
			r = fail("unexpected argument %s: no positional arguments are accepted",
				 quote(arg, q, sizeof(q)));
		}
	}

	if (r == 0) {
		r = options_fill_unset(&o);
		if (r < 0)
			fail("out of memory");
	}
	if (r != CLI_RUN) {
		options_release(&o);
		/* Leave *ret releasable, so that callers may release unconditionally. */
		options_init_defaults(ret);
		return r;
	}
	*ret = o;
	return CLI_RUN;
}

void options_release(struct options *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n_listen; i++)
		free(o->listen[i]);
	free(o->listen);
	for (size_t i = 0; i < o->n_stats_files; i++)
		free(o->stats_files[i]);
	free(o->stats_files);
	free(o->telemetry_path);
	free(o->handoff_socket);
	free(o->handoff_allow_uids);
	free(o->handoff_allow_gids);
	free(o->web_config_file);
	free(o->stats_include);
	free(o->stats_exclude);
	for (size_t i = 0; i < o->n_vhost_proxies; i++)
		vhost_proxy_config_release(&o->vhost_proxies[i]);
	free(o->vhost_proxies);
	options_init_defaults(o);
}
