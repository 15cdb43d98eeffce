/* SPDX-License-Identifier: MIT */
/*
 * stats_filter: anchored POSIX regexes over sample names, include then
 * exclude, one-line reasons for bad patterns; and in the collector, the
 * filter is asked when a schema is first translated, never per scrape.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector.h"
#include "golden.h"
#include "sources/file.h"
#include "stats_filter.h"

static void test_keep(void **state)
{
	struct stats_filter f;
	char why[256];

	(void)state;
	/* No patterns: everything. */
	assert_int_equal(stats_filter_init(&f, NULL, "", why, sizeof(why)), 0);
	assert_true(stats_filter_keep("kvm_vcpu_exits_total", &f));
	assert_true(stats_filter_keep("kvm_vcpu_exits_total", NULL));
	stats_filter_release(&f);

	/* Anchored: "exits" alone matches no sample name. */
	assert_int_equal(stats_filter_init(&f, "kvm_vcpu_.*exits_total|kvm_vm_pages_.*", NULL, why,
					   sizeof(why)),
			 0);
	assert_true(stats_filter_keep("kvm_vcpu_exits_total", &f));
	assert_true(stats_filter_keep("kvm_vcpu_halt_exits_total", &f));
	assert_true(stats_filter_keep("kvm_vm_pages_4k", &f));
	assert_false(stats_filter_keep("kvm_vcpu_exits_total_x", &f));
	assert_false(stats_filter_keep("x_kvm_vcpu_exits_total", &f));
	assert_false(stats_filter_keep("kvm_vcpu_halt_wait_seconds", &f));
	stats_filter_release(&f);

	/* Include, then exclude. */
	assert_int_equal(stats_filter_init(&f, "kvm_vcpu_.*", "kvm_vcpu_halt_.*_seconds", why,
					   sizeof(why)),
			 0);
	assert_true(stats_filter_keep("kvm_vcpu_exits_total", &f));
	assert_false(stats_filter_keep("kvm_vcpu_halt_wait_seconds", &f));
	assert_true(stats_filter_keep("kvm_vcpu_halt_wait_seconds_total", &f));
	assert_false(stats_filter_keep("kvm_vm_pages_4k", &f));
	stats_filter_release(&f);
}

static void test_bad_pattern(void **state)
{
	struct stats_filter f;
	char why[256];

	(void)state;
	assert_int_equal(stats_filter_init(&f, "(", NULL, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "--kvm.stats-include: invalid regular expression \"(\""));
	assert_null(strchr(why, '\n'));
	assert_int_equal(stats_filter_init(&f, "ok", "a{2,1}", why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "--kvm.stats-exclude"));
	/* Released on failure: keeps everything. */
	assert_true(stats_filter_keep("anything", &f));
}

static unsigned keep_calls;

static bool counting_keep(const char *metric, void *userdata)
{
	keep_calls++;
	return stats_filter_keep(metric, userdata);
}

static void test_collector_asks_once(void **state)
{
	struct collector c;
	struct stats_filter f;
	struct outbuf out = { 0 };
	char why[256], path[4096];
	unsigned after_first;

	(void)state;
	assert_int_equal(stats_filter_init(&f, NULL,
					   "kvm_vcpu_halt_.*_seconds|kvm_vcpu_exits_total", why,
					   sizeof(why)),
			 0);
	assert_int_equal(collector_init(&c, false), 0);
	c.family_keep = counting_keep;
	c.family_keep_userdata = &f;
	keep_calls = 0;
	for (int i = 0; i < 2; i++) {
		const char *name = i == 0 ? "x86_64-6.18-vm.bin" : "x86_64-6.18-vcpu.bin";

		snprintf(path, sizeof(path), "%s/data/%s", source_dir(), name);
		assert_int_equal(source_file_load(&c, path, why, sizeof(why)), 0);
	}
	assert_true(keep_calls > 0);
	after_first = keep_calls;
	for (int i = 0; i < 3; i++) {
		outbuf_reset(&out);
		assert_int_equal(collector_collect(&c, &out, EXPOSITION_TEXT_004), 0);
	}
	/* Scrapes never ask the filter again. */
	assert_int_equal(keep_calls, after_first);
	outbuf_putc(&out, '\0');
	assert_null(strstr(out.data, "kvm_vcpu_exits_total"));
	assert_null(strstr(out.data, "kvm_vcpu_halt_wait_seconds_bucket"));
	assert_non_null(strstr(out.data,
			       "kvm_vcpu_halt_wait_seconds_total{vm=\"pid-5702\"} 0.000128351\n"));
	assert_non_null(strstr(out.data, "kvm_vcpu_halt_exits_total{vm=\"pid-5702\"} 50\n"));
	outbuf_release(&out);
	collector_release(&c);
	stats_filter_release(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keep),
		cmocka_unit_test(test_bad_pattern),
		cmocka_unit_test(test_collector_asks_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
