/* SPDX-License-Identifier: MIT */
/*
 * process_metrics: the /proc parsers on tricky input, the exact tick
 * arithmetic, and the families written for this very process compared with
 * what getrlimit(2), sysconf(3) and a count of /proc/self/fd say.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "expo/family.h"
#include "process_metrics.h"
#include "util/fileio.h"

static void test_stat_parse(void **state)
{
	/* A command with spaces and ')' in it: fields count from the last ')'. */
	static const char line[] =
		"4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 500 0 0 0 "
		"1234 567 0 0 20 0 3 0 98765 13979648 1411 18446744073709551615 1 1 0 0 0 0 0 "
		"0 0 0 0 0 17 1 0 0 0 0 0\n";
	struct proc_stat st;

	(void)state;
	assert_int_equal(proc_stat_parse(line, &st), 0);
	assert_int_equal(st.utime, 1234);
	assert_int_equal(st.stime, 567);
	assert_int_equal(st.starttime, 98765);
	assert_int_equal(st.vsize, 13979648);
	assert_int_equal(st.rss, 1411);

	assert_int_equal(proc_stat_parse("4242 (x) S 1 2 3", &st), -EINVAL);
	assert_int_equal(proc_stat_parse("no parenthesis at all", &st), -EINVAL);
	assert_int_equal(proc_stat_parse("", &st), -EINVAL);
	/* A field that is not a number where utime is. */
	assert_int_equal(proc_stat_parse("1 (x) S 1 1 1 0 -1 0 0 0 0 0 x1 2 0 0 20 0 1 0 5 6 7\n",
					 &st),
			 -EINVAL);
}

static void test_boot_time_parse(void **state)
{
	uint64_t bt = 0;

	(void)state;
	assert_int_equal(proc_boot_time_parse("cpu  1 2 3\nintr 5\nbtime 1796660000\nprocesses 9\n",
					      &bt),
			 0);
	assert_int_equal(bt, 1796660000);
	assert_int_equal(proc_boot_time_parse("cpu 1\nbtime x\n", &bt), -EINVAL);
	assert_int_equal(proc_boot_time_parse("cpu 1\n", &bt), -EINVAL);
}

static void test_netstat(void **state)
{
	uint64_t in = 0, out = 0;

	(void)state;
	assert_int_equal(proc_netstat_octets("TcpExt: A B\nTcpExt: 1 2\n"
					     "IpExt: InNoRoutes InOctets OutOctets InMcastOctets\n"
					     "IpExt: 0 19631534858 19074544158 7\n",
					     &in, &out),
			 0);
	assert_int_equal(in, 19631534858ull);
	assert_int_equal(out, 19074544158ull);
	/* Fewer values than names, or no OutOctets. */
	assert_int_equal(proc_netstat_octets("IpExt: InOctets OutOctets\nIpExt: 5\n", &in, &out),
			 -EINVAL);
	assert_int_equal(proc_netstat_octets("IpExt: InOctets\nIpExt: 5\n", &in, &out), -EINVAL);
	assert_int_equal(proc_netstat_octets("", &in, &out), -EINVAL);
}

static void test_ticks(void **state)
{
	char buf[64];

	(void)state;
	ticks_to_seconds(1234, 100, buf, sizeof(buf));
	assert_string_equal(buf, "12.34");
	ticks_to_seconds(5, 100, buf, sizeof(buf));
	assert_string_equal(buf, "0.05");
	ticks_to_seconds(7, 1, buf, sizeof(buf));
	assert_string_equal(buf, "7");
	ticks_to_seconds(1500, 1000, buf, sizeof(buf));
	assert_string_equal(buf, "1.500");
	ticks_to_seconds(179666691190ull, 100, buf, sizeof(buf));
	assert_string_equal(buf, "1796666911.90");
	/* 1024 divides no power of ten below 10^10: nine significant digits. */
	ticks_to_seconds(1536, 1024, buf, sizeof(buf));
	assert_string_equal(buf, "1.5");
}

/* The value of a one-sample family in text, or -1 when it is missing. */
static double value_of(const char *text, const char *name)
{
	char key[128];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", name);
	p = strstr(text, key);
	return p ? strtod(p + strlen(key), NULL) : -1;
}

static void test_this_process(void **state)
{
	struct process_metrics pm;
	struct outbuf out = { 0 };
	struct family_writer w;
	struct rlimit nofile;
	struct dirent *de;
	double fds;
	long here = 0;
	DIR *d;

	(void)state;
	assert_int_equal(process_metrics_init(&pm), 0);
	assert_int_equal(pm.ticks_per_second, sysconf(_SC_CLK_TCK));
	assert_true(pm.have_boot_time);
	w = family_writer_init(&out, EXPOSITION_TEXT_004);
	outbuf_putc(&out, '\n');
	process_metrics_write(&pm, &w);
	outbuf_putc(&out, '\0');
	assert_false(out.failed);

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &nofile), 0);
	assert_true(value_of(out.data, "process_max_fds") == (double)nofile.rlim_cur);
	d = opendir("/proc/self/fd");
	assert_non_null(d);
	while ((de = readdir(d)))
		here += de->d_name[0] != '.';
	closedir(d);
	/* The same count: both include the directory's own fd while counting. */
	fds = value_of(out.data, "process_open_fds");
	assert_true(fds == (double)here);
	assert_true(value_of(out.data, "process_resident_memory_bytes") > 0);
	assert_true(value_of(out.data, "process_virtual_memory_bytes") >=
		    value_of(out.data, "process_resident_memory_bytes"));
	assert_true(value_of(out.data, "process_cpu_seconds_total") >= 0);
	assert_true(value_of(out.data, "process_start_time_seconds") > 1.5e9);
	assert_non_null(strstr(out.data, "# TYPE process_cpu_seconds_total counter\n"));
	assert_non_null(strstr(out.data, "# TYPE process_open_fds gauge\n"));

	/* A /proc that is not there: those families are left out, no zeros. */
	outbuf_reset(&out);
	pm.proc_self = "/nonexistent";
	w = family_writer_init(&out, EXPOSITION_TEXT_004);
	outbuf_putc(&out, '\n');
	process_metrics_write(&pm, &w);
	outbuf_putc(&out, '\0');
	assert_null(strstr(out.data, "process_cpu_seconds"));
	assert_null(strstr(out.data, "process_open_fds"));
	assert_non_null(strstr(out.data, "process_max_fds"));
	outbuf_release(&out);
}

/* read_proc_file(): /proc files report size 0; bounded by max, never cut silently. */
static void test_read_proc_file(void **state)
{
	char *text = NULL;
	struct proc_stat st;

	(void)state;
	assert_int_equal(read_proc_file("/proc/self/stat", 65536, &text), 0);
	assert_int_equal(proc_stat_parse(text, &st), 0);
	assert_true(st.vsize > 0);
	free(text);
	text = NULL;
	assert_int_equal(read_proc_file("/proc/self/stat", 10, &text), -EFBIG);
	assert_null(text);
	assert_int_equal(read_proc_file("/proc/self/no-such-file", 100, &text), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stat_parse),   cmocka_unit_test(test_boot_time_parse),
		cmocka_unit_test(test_netstat),      cmocka_unit_test(test_ticks),
		cmocka_unit_test(test_this_process), cmocka_unit_test(test_read_proc_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
