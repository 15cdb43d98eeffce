/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the tap's configuration (vhost/config.c, the --vhost.* flags
 * of cli.c), its label bookkeeping (vhost_stats_series) and its metrics
 * writer (vhost/metrics.c) on hand-made counters.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "macro.h"
#include "vhost/config.h"
#include "vhost/proxy.h"
#include "vhost/tap.h"

static void test_parse_valid(void **state)
{
	struct vhost_proxy_config c;
	const char *why = NULL;

	assert_int_equal(vhost_proxy_config_parse("name=blk-0.a_b,listen=/run/t.sock,"
						  "backend=/run/b.sock",
						  &c, &why),
			 0);
	assert_string_equal(c.name, "blk-0.a_b");
	assert_string_equal(c.listen, "/run/t.sock");
	assert_string_equal(c.backend, "/run/b.sock");
	assert_int_equal(c.n_regions, 0);
	assert_false(c.trusted);
	vhost_proxy_config_release(&c);

	/* Any key order; sizes in bytes, hex, or with binary suffixes. */
	assert_int_equal(vhost_proxy_config_parse("backend=b,shmem=0:1M;1:4096;255:0x2000;7:2G;"
						  "8:1T;9:3K,trusted=yes,listen=l,name=n",
						  &c, &why),
			 0);
	assert_int_equal(c.n_regions, 6);
	assert_int_equal(c.regions[0].shmid, 0);
	assert_int_equal(c.regions[0].size, 1u << 20);
	assert_int_equal(c.regions[1].size, 4096);
	assert_int_equal(c.regions[2].shmid, 255);
	assert_int_equal(c.regions[2].size, 0x2000);
	assert_int_equal(c.regions[3].size, 2ull << 30);
	assert_int_equal(c.regions[4].size, 1ull << 40);
	assert_int_equal(c.regions[5].size, 3 << 10);
	assert_true(c.trusted);
	vhost_proxy_config_release(&c);
	vhost_proxy_config_release(&c); /* twice is harmless */
}

static void test_parse_invalid(void **state)
{
	static const char *const bad[] = {
		"",
		"name=a,listen=l",             /* backend missing */
		"name=a,backend=b",            /* listen missing */
		"listen=l,backend=b",          /* name missing */
		"name=a,listen=l,backend=l",   /* the same path */
		"name=a b,listen=l,backend=b", /* bad character */
		"name=,listen=l,backend=b",    /* empty name */
		"name=a\"b,listen=l,backend=b",
		"name=a,name=b,listen=l,backend=b", /* twice */
		"name=a,listen=l,listen=m,backend=b",
		"name=a,listen=,backend=b",             /* empty path */
		"name=a,listen=l,backend=b,colour=red", /* unknown key */
		"name=a,listen=l,backend=b,shmem",      /* no '=' */
		"name=a,listen=l,backend=b,trusted=maybe",
		"name=a,listen=l,backend=b,shmem=",
		"name=a,listen=l,backend=b,shmem=256:1M",    /* shmid beyond 255 */
		"name=a,listen=l,backend=b,shmem=0:0",       /* empty region */
		"name=a,listen=l,backend=b,shmem=0:1M;0:2M", /* the same shmid twice */
		"name=a,listen=l,backend=b,shmem=0:1M;",     /* trailing ';' */
		"name=a,listen=l,backend=b,shmem=0",         /* no size */
		"name=a,listen=l,backend=b,shmem=0:1X",      /* unknown suffix */
		"name=a,listen=l,backend=b,shmem=0:-1",
		"name=a,listen=l,backend=b,shmem=0:16777216T", /* 2^64 */
		"name=a,listen=l,backend=b,shmem=0:99999999999999999999",
		"name=a,listen=l,backend=b,shmem=0:1M,shmem=1:1M",
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct vhost_proxy_config c;
		const char *why = NULL;

		if (vhost_proxy_config_parse(bad[i], &c, &why) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(why);
		vhost_proxy_config_release(&c);
	}
}

static void test_parse_limits(void **state)
{
	char name65[66], spec[512], path108[109];
	struct vhost_proxy_config c;
	const char *why;

	memset(name65, 'n', 65);
	name65[65] = '\0';
	snprintf(spec, sizeof(spec), "name=%s,listen=l,backend=b", name65);
	assert_int_equal(vhost_proxy_config_parse(spec, &c, &why), -EINVAL);
	vhost_proxy_config_release(&c);
	name65[64] = '\0';
	snprintf(spec, sizeof(spec), "name=%s,listen=l,backend=b", name65);
	assert_int_equal(vhost_proxy_config_parse(spec, &c, &why), 0);
	vhost_proxy_config_release(&c);

	memset(path108, 'p', 108);
	path108[108] = '\0';
	snprintf(spec, sizeof(spec), "name=a,listen=%s,backend=b", path108);
	assert_int_equal(vhost_proxy_config_parse(spec, &c, &why), -EINVAL);
	vhost_proxy_config_release(&c);
	path108[107] = '\0';
	snprintf(spec, sizeof(spec), "name=a,listen=%s,backend=b", path108);
	assert_int_equal(vhost_proxy_config_parse(spec, &c, &why), 0);
	vhost_proxy_config_release(&c);
}

static void test_policy(void **state)
{
	enum vhost_policy p;

	assert_int_equal(vhost_policy_parse("observe", &p), 0);
	assert_int_equal(p, VHOST_POLICY_OBSERVE);
	assert_int_equal(vhost_policy_parse("enforce", &p), 0);
	assert_int_equal(p, VHOST_POLICY_ENFORCE);
	assert_int_equal(vhost_policy_parse("Enforce", &p), -EINVAL);
	assert_string_equal(vhost_policy_name(VHOST_POLICY_ENFORCE), "enforce");
	assert_string_equal(vhost_policy_name(VHOST_POLICY_OBSERVE), "observe");
}

/* cli_parse() with argv from a NULL-terminated list; stderr silenced. */
static int parse(struct options *o, ...)
{
	char *argv[16] = { (char *)"kvmstats_exporter" };
	int argc = 1, saved, null, r;
	va_list ap;

	va_start(ap, o);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	dup2(null, STDERR_FILENO);
	r = cli_parse(argc, argv, o);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(null);
	return r;
}

static void test_cli_flags(void **state)
{
	struct options o;

	assert_int_equal(parse(&o, NULL), CLI_RUN);
	assert_int_equal(o.n_vhost_proxies, 0);
	assert_int_equal(o.vhost_policy, VHOST_POLICY_OBSERVE);
	options_release(&o);

	assert_int_equal(parse(&o, "--vhost.proxy=name=a,listen=/a,backend=/b", "--vhost.proxy",
			       "name=c,listen=/c,backend=/d,shmem=0:1M", "--vhost.policy=enforce",
			       NULL),
			 CLI_RUN);
	assert_int_equal(o.n_vhost_proxies, 2);
	assert_string_equal(o.vhost_proxies[1].name, "c");
	assert_int_equal(o.vhost_proxies[1].n_regions, 1);
	assert_int_equal(o.vhost_policy, VHOST_POLICY_ENFORCE);
	options_release(&o);
	assert_int_equal(o.n_vhost_proxies, 0);

	/* Unique names and listening paths; no proxy listens on another's backend. */
	assert_int_equal(parse(&o, "--vhost.proxy=name=a,listen=/a,backend=/b",
			       "--vhost.proxy=name=a,listen=/c,backend=/d", NULL),
			 -EINVAL);
	options_release(&o);
	assert_int_equal(parse(&o, "--vhost.proxy=name=a,listen=/a,backend=/b",
			       "--vhost.proxy=name=b,listen=/a,backend=/d", NULL),
			 -EINVAL);
	options_release(&o);
	assert_int_equal(parse(&o, "--vhost.proxy=name=a,listen=/a,backend=/b",
			       "--vhost.proxy=name=b,listen=/b,backend=/d", NULL),
			 -EINVAL);
	options_release(&o);
	assert_int_equal(parse(&o, "--vhost.policy=observe", "--vhost.policy=enforce", NULL),
			 -EINVAL);
	options_release(&o);
	assert_int_equal(parse(&o, "--vhost.policy=deny", NULL), -EINVAL);
	options_release(&o);
	assert_int_equal(parse(&o, "--vhost.proxy=name=a", NULL), -EINVAL);
	options_release(&o);
}

static void test_series_cardinality(void **state)
{
	struct vhost_proxy_stats *s = calloc(1, sizeof(*s));
	unsigned a, b, other;

	assert_non_null(s);
	/* Named requests: one series each, per channel. */
	a = vhost_stats_series(s, VHOSTMSG_CHANNEL_FRONTEND, 1);
	assert_int_equal(vhost_stats_series(s, VHOSTMSG_CHANNEL_FRONTEND, 1), a);
	b = vhost_stats_series(s, VHOSTMSG_CHANNEL_BACKEND, 1);
	assert_int_not_equal(a, b);
	/* Numbers nobody defines: VHOST_MAX_UNNAMED of them, then "other". */
	for (uint32_t r = 0; r < VHOST_MAX_UNNAMED; r++) {
		unsigned i = vhost_stats_series(s, VHOSTMSG_CHANNEL_BACKEND, 5000 + r);

		assert_false(s->requests[i].other);
		assert_int_equal(s->requests[i].request, 5000 + r);
	}
	other = vhost_stats_series(s, VHOSTMSG_CHANNEL_BACKEND, 9999);
	assert_true(s->requests[other].other);
	assert_int_equal(vhost_stats_series(s, VHOSTMSG_CHANNEL_BACKEND, 12345), other);
	assert_int_not_equal(vhost_stats_series(s, VHOSTMSG_CHANNEL_FRONTEND, 12345), other);
	/* Known numbers keep their own series after the cap. */
	assert_false(s->requests[vhost_stats_series(s, VHOSTMSG_CHANNEL_BACKEND, 1007)].other);
	/* Every number ever seen: the table stays bounded. */
	for (uint32_t r = 0; r < 100000; r += 7) {
		vhost_stats_series(s, VHOSTMSG_CHANNEL_FRONTEND, r);
		vhost_stats_series(s, VHOSTMSG_CHANNEL_BACKEND, r);
	}
	assert_true(s->n_requests <= VHOST_MAX_REQUEST_SERIES);
	assert_true(s->n_unnamed == VHOST_MAX_UNNAMED);
	free(s);
}

/* Writes the families of one hand-filled proxy in fmt. */
static char *write_one(struct vhost_proxy *p, enum exposition_format fmt)
{
	struct vhost_taps t = { .proxies = p, .n = 1, .stop_fd = -1 };
	struct outbuf out = { 0 };
	struct family_writer w = family_writer_init(&out, fmt);

	vhost_taps_write_metrics(&t, &w);
	outbuf_putc(&out, '\0');
	assert_false(out.failed);
	return out.data;
}

static void test_metrics(void **state)
{
	struct vhost_proxy *p = calloc(1, sizeof(*p));
	struct outbuf none = { 0 };
	unsigned s;
	char *text, *om;

	assert_non_null(p);
	pthread_mutex_init(&p->lock, NULL);
	p->cfg.name = (char *)"p1";
	p->name_escaped = (char *)"p1";
	p->stats.connected = true;
	p->stats.connections = 3;
	s = vhost_stats_series(&p->stats, VHOSTMSG_CHANNEL_BACKEND, 1007);
	p->stats.requests[s].count = 5;
	p->stats.refused[s][VHOSTMSG_OUT_OF_PROCESS] = 2;
	s = vhost_stats_series(&p->stats, VHOSTMSG_CHANNEL_FRONTEND, 4242);
	p->stats.requests[s].count = 1;
	p->stats.invalid[VHOSTMSG_CHANNEL_BACKEND][VHOSTMSG_OVERLAP] = 4;
	p->stats.ext_requests[3] = 5;
	p->stats.ext_bytes[3] = 20480;
	p->stats.ext_replies[1] = 2;
	vhost_stats_see_shmid(&p->stats, 3);

	text = write_one(p, EXPOSITION_TEXT_004);
	static const char *const want[] = {
		"# HELP vhost_user_proxy_connected ",
		"# TYPE vhost_user_proxy_connected gauge\nvhost_user_proxy_connected{proxy=\"p1\"} "
		"1\n",
		"# TYPE vhost_user_proxy_connections_total counter\n"
		"vhost_user_proxy_connections_total{proxy=\"p1\"} 3\n",
		"vhost_user_messages_total{proxy=\"p1\",channel=\"backend\",request=\"external_"
		"map\"} 5\n",
		"vhost_user_messages_total{proxy=\"p1\",channel=\"frontend\",request=\"4242\"} 1\n",
		"vhost_user_invalid_messages_total{proxy=\"p1\",channel=\"backend\",reason="
		"\"overlap\"} 4\n",
		"vhost_user_invalid_messages_total{proxy=\"p1\",channel=\"frontend\",reason="
		"\"truncated\"} 0\n",
		"vhost_user_refused_total{proxy=\"p1\",request=\"external_map\",reason=\"out_of_"
		"process\"} 2\n",
		"vhost_user_external_map_requests_total{proxy=\"p1\",shmid=\"3\"} 5\n",
		"vhost_user_external_map_bytes_total{proxy=\"p1\",shmid=\"3\"} 20480\n",
		"vhost_user_external_map_replies_total{proxy=\"p1\",result=\"success\"} 0\n",
		"vhost_user_external_map_replies_total{proxy=\"p1\",result=\"failure\"} 2\n",
		"vhost_user_shmem_mappings{proxy=\"p1\",shmid=\"3\"} 0\n",
		"vhost_user_shmem_mapped_bytes{proxy=\"p1\",shmid=\"3\"} 0\n",
	};
	for (size_t i = 0; i < ELEMENTSOF(want); i++)
		if (!strstr(text, want[i]))
			fail_msg("missing:\n%s\nin:\n%s", want[i], text);
	/* Mapping reasons concern the backend channel only; other shmids are not listed. */
	assert_null(strstr(text, "channel=\"frontend\",reason=\"overlap\""));
	assert_null(strstr(text, "shmid=\"0\""));

	om = write_one(p, EXPOSITION_OPENMETRICS_100);
	assert_non_null(
		strstr(om, "# TYPE vhost_user_messages counter\n# HELP vhost_user_messages "));
	assert_non_null(strstr(om, "vhost_user_messages_total{proxy=\"p1\",channel=\"backend\","));
	assert_null(strstr(om, "# TYPE vhost_user_messages_total"));
	assert_null(strstr(om, "# EOF")); /* the collector ends the exposition */

	/* No proxies: nothing at all. */
	struct family_writer nw = family_writer_init(&none, EXPOSITION_TEXT_004);

	vhost_taps_write_metrics(NULL, &nw);
	assert_int_equal(none.len, 0);
	free(text);
	free(om);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),  cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_parse_limits), cmocka_unit_test(test_policy),
		cmocka_unit_test(test_cli_flags),    cmocka_unit_test(test_series_cardinality),
		cmocka_unit_test(test_metrics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
