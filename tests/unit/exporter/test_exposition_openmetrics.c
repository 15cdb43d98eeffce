/* SPDX-License-Identifier: MIT */
/*
 * The OpenMetrics 1.0.0 exposition of the real saved blobs (tests/data/):
 * golden files, a structural check of the rules OpenMetrics adds to text
 * 0.0.4 (metadata order, family names, UNIT, HELP escapes, integer buckets,
 * "# EOF"), and a line-by-line comparison with the 0.0.4 exposition of the
 * same scrape: the same samples and value bytes, only "le" spelled in its
 * canonical float form and parsing to the same float64.
 *
 * The goldens hold only the KVM part (everything before the first
 * "# TYPE kvmstats_exporter_" line); Prometheus itself parses them in
 * tests/integration/test_prometheus.py --goldens. UPDATE_GOLDEN=1 rewrites
 * them after a deliberate change (then review the diff).
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
#include "expo/exposition.h"
#include "golden.h"
#include "lines.h"
#include "macro.h"
#include "expo/outbuf.h"
#include "sources/file.h"

#define SELF_MARK_OM  "# TYPE kvmstats_exporter_"
#define SELF_MARK_004 "# HELP kvmstats_exporter_"

static void load_data_file(struct collector *c, const char *name)
{
	char path[4096], err[256] = "";
	int r;

	snprintf(path, sizeof(path), "%s/data/%s", source_dir(), name);
	r = source_file_load(c, path, err, sizeof(err));
	if (r < 0)
		fail_msg("source_file_load %s: %d: %s", name, r, err);
}

/* One whole scrape, as a new string. */
static char *collect(struct collector *c, bool per_vcpu, enum exposition_format fmt)
{
	struct outbuf out = { 0 };
	char *text;

	c->per_vcpu = per_vcpu;
	assert_int_equal(collector_collect(c, &out, fmt), 0);
	outbuf_putc(&out, '\0');
	assert_false(out.failed);
	text = strdup(out.data);
	assert_non_null(text);
	outbuf_release(&out);
	return text;
}

/* The KVM part: everything before the line starting with mark. */
static char *kvm_part(const char *text, const char *mark)
{
	const char *self = strstr(text, mark);
	char *kvm;

	assert_non_null(self);
	assert_true(self == text || self[-1] == '\n');
	kvm = strndup(text, (size_t)(self - text));
	assert_non_null(kvm);
	return kvm;
}

/* ---- the rules of OpenMetrics text ------------------------------------------------------- */

static bool valid_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
		      ch == ':' || (i > 0 && ch >= '0' && ch <= '9')))
			return false;
	}
	return true;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

/* ABNF realnumber without sign or exponent (all we print), or +Inf. */
static bool valid_number(const char *s, size_t n)
{
	const char *dot = memchr(s, '.', n);

	if (n == 4 && strncmp(s, "+Inf", 4) == 0)
		return true;
	if (!dot)
		return all_digits(s, n);
	return all_digits(s, (size_t)(dot - s)) && all_digits(dot + 1, n - (size_t)(dot - s) - 1);
}

/* Escapes allowed in HELP and label values: \\ \" \n. */
static void check_escapes(const char *s, const char *end, const char *line)
{
	for (const char *p = s; p < end; p++)
		if (*p == '\\' && (p + 1 >= end || !strchr("\\\"n", p[1])))
			fail_msg("bad escape: %s", line);
		else if (*p == '\\')
			p++;
}

struct om_state {
	char family[160];
	char type[16];
	bool unit, help, samples;
	char seen[256][160];
	size_t n_seen;
	char bucket_series[512]; /* name and labels before le, of the bucket series in progress */
	double last_le;
	char inf_value[64];
};

static void om_metadata(struct om_state *st, const char *line, const char *eol)
{
	const char *kind = line + 2, *name = line + 7,
		   *sp = memchr(name, ' ', (size_t)(eol - name));
	size_t name_len;

	if (!sp || (strncmp(kind, "TYPE ", 5) != 0 && strncmp(kind, "UNIT ", 5) != 0 &&
		    strncmp(kind, "HELP ", 5) != 0))
		fail_msg("a '#' line that is not TYPE, UNIT, HELP or the final EOF: %.*s",
			 (int)(eol - line), line);
	name_len = (size_t)(sp - name);
	assert_true(valid_name(name, name_len));
	if (strncmp(kind, "TYPE ", 5) == 0) {
		snprintf(st->family, sizeof(st->family), "%.*s", (int)name_len, name);
		snprintf(st->type, sizeof(st->type), "%.*s", (int)(eol - sp - 1), sp + 1);
		assert_true(strcmp(st->type, "counter") == 0 || strcmp(st->type, "gauge") == 0 ||
			    strcmp(st->type, "histogram") == 0);
		/* A counter family is named without the sample's suffix. */
		if (strcmp(st->type, "counter") == 0 && name_len > 6 &&
		    strcmp(st->family + name_len - 6, "_total") == 0)
			fail_msg("counter family named with _total: %s", st->family);
		for (size_t i = 0; i < st->n_seen; i++)
			if (strcmp(st->seen[i], st->family) == 0)
				fail_msg("family %s twice", st->family);
		assert_true(st->n_seen < ELEMENTSOF(st->seen));
		memcpy(st->seen[st->n_seen++], st->family, sizeof(st->family));
		st->unit = st->help = st->samples = false;
		st->bucket_series[0] = '\0';
		return;
	}
	/* UNIT and HELP: after TYPE (TYPE, UNIT, HELP order), once, before the samples. */
	if (strlen(st->family) != name_len || strncmp(name, st->family, name_len) != 0)
		fail_msg("metadata of another family: %.*s", (int)(eol - line), line);
	assert_false(st->samples);
	assert_false(st->help);
	if (strncmp(kind, "UNIT ", 5) == 0) {
		size_t u = (size_t)(eol - sp - 1);

		assert_false(st->unit);
		st->unit = true;
		/* "_<unit>" must end the family name. */
		if (u == 0 || name_len <= u + 1 || name[name_len - u - 1] != '_' ||
		    strncmp(name + name_len - u, sp + 1, u) != 0)
			fail_msg("unit not a suffix of its family: %.*s", (int)(eol - line), line);
		return;
	}
	st->help = true;
	check_escapes(sp + 1, eol, line);
}

static void om_bucket(struct om_state *st, const char *line, const char *brace, const char *val,
		      const char *eol)
{
	const char *le = strstr(brace, "le=\""), *end;
	size_t series_len;
	double bound;

	assert_non_null(le);
	end = strchr(le + 4, '"');
	series_len = (size_t)(le - line);
	if (strlen(st->bucket_series) != series_len ||
	    strncmp(st->bucket_series, line, series_len) != 0) {
		/* A new series: the previous one ended at +Inf. */
		assert_true(st->bucket_series[0] == '\0' || st->inf_value[0] != '\0');
		snprintf(st->bucket_series, sizeof(st->bucket_series), "%.*s", (int)series_len,
			 line);
		st->last_le = -1.0;
		st->inf_value[0] = '\0';
	}
	assert_true(st->inf_value[0] == '\0');
	if (strncmp(le + 4, "+Inf\"", 5) == 0) {
		snprintf(st->inf_value, sizeof(st->inf_value), "%.*s", (int)(eol - val), val);
		return;
	}
	/* A float: with a point or an exponent, strictly increasing. */
	bound = strtod(le + 4, NULL);
	assert_true(memchr(le + 4, '.', (size_t)(end - le - 4)) ||
		    memchr(le + 4, 'e', (size_t)(end - le - 4)));
	assert_true(bound > st->last_le);
	st->last_le = bound;
}

static void om_sample(struct om_state *st, const char *line, const char *eol)
{
	size_t len = (size_t)(eol - line), flen = strlen(st->family);
	const char *brace = memchr(line, '{', len), *sp, *val, *suffix;
	bool integer = false;

	assert_true(st->family[0] != '\0');
	st->samples = true;
	if (!brace)
		brace = memchr(line, ' ', len);
	assert_non_null(brace);
	assert_true(valid_name(line, (size_t)(brace - line)));
	if (strncmp(line, st->family, flen) != 0)
		fail_msg("sample outside its family %s: %.*s", st->family, (int)len, line);
	suffix = line + flen;
	/* The sample suffixes of each type, and nothing else. */
	if (strcmp(st->type, "counter") == 0) {
		assert_int_equal(brace - suffix, 6);
		assert_memory_equal(suffix, "_total", 6);
	} else if (strcmp(st->type, "gauge") == 0) {
		assert_ptr_equal(brace, suffix);
	} else if ((brace - suffix == 7 && strncmp(suffix, "_bucket", 7) == 0) ||
		   (brace - suffix == 6 && strncmp(suffix, "_count", 6) == 0)) {
		integer = true;
	} else {
		assert_int_equal(brace - suffix, 4);
		assert_memory_equal(suffix, "_sum", 4);
	}

	sp = brace;
	if (*brace == '{') {
		const char *p = brace + 1;

		while (*p != '}') {
			const char *eq = strchr(p, '='), *q;

			assert_true(eq && eq < eol && eq[1] == '"');
			assert_true(valid_name(p, (size_t)(eq - p)));
			for (q = eq + 2; *q != '"'; q++) {
				assert_true(q < eol);
				if (*q == '\\')
					q++;
			}
			check_escapes(eq + 2, q, line);
			p = q[1] == ',' ? q + 2 : q + 1;
		}
		sp = p + 1;
	}
	assert_int_equal(*sp, ' ');
	val = sp + 1;
	if (!valid_number(val, (size_t)(eol - val)))
		fail_msg("bad value: %.*s", (int)len, line);
	/* Count and bucket values MUST be integers. */
	if (integer && !all_digits(val, (size_t)(eol - val)))
		fail_msg("not an integer: %.*s", (int)len, line);
	if (strncmp(suffix, "_bucket", 7) == 0)
		om_bucket(st, line, brace, val, eol);
	else if (strncmp(suffix, "_count", 6) == 0 && strcmp(st->type, "histogram") == 0 &&
		 (size_t)(eol - val) != strlen(st->inf_value))
		fail_msg("_count is not the +Inf bucket: %.*s", (int)len, line);
}

/* Checks a whole OpenMetrics exposition, "# EOF" included. */
static void check_openmetrics(const char *text)
{
	struct om_state *st = calloc(1, sizeof(*st));
	size_t n = strlen(text);
	const char *line = text;

	assert_non_null(st);
	/* "# EOF\n" ends it, and only there. */
	assert_true(n >= 6 && strcmp(text + n - 6, "# EOF\n") == 0);
	while (line < text + n - 6) {
		const char *eol = strchr(line, '\n');

		assert_non_null(eol);
		assert_true(eol > line);
		if (line[0] == '#')
			om_metadata(st, line, eol);
		else
			om_sample(st, line, eol);
		line = eol + 1;
	}
	free(st);
}

/*
 * The sample lines of a 0.0.4 and an OpenMetrics exposition pair up in
 * order, byte for byte, except the "le" of buckets, which must parse to the
 * same float64 and be "+Inf" in both or neither.
 */
static void check_same_samples(const char *text004, const char *om)
{
	const char *a = text004, *b = om;
	size_t buckets = 0;

	for (;;) {
		const char *ea, *eb, *la, *lb, *qa, *qb;

		while (*a == '#')
			a = strchr(a, '\n') + 1;
		while (*b == '#')
			b = strchr(b, '\n') + 1;
		if (!*a || !*b)
			break;
		ea = strchr(a, '\n');
		eb = strchr(b, '\n');
		la = strstr(a, "le=\"");
		lb = strstr(b, "le=\"");
		if (la && la < ea) {
			assert_true(lb && lb < eb);
			assert_int_equal(la - a, lb - b);
			assert_memory_equal(a, b, (size_t)(la - a));
			qa = strchr(la + 4, '"');
			qb = strchr(lb + 4, '"');
			assert_int_equal(ea - qa, eb - qb);
			assert_memory_equal(qa, qb, (size_t)(ea - qa));
			if (strncmp(la + 4, "+Inf\"", 5) == 0 ||
			    strncmp(lb + 4, "+Inf\"", 5) == 0) {
				assert_memory_equal(la, lb, 10);
			} else if (strtod(la + 4, NULL) != strtod(lb + 4, NULL)) {
				fail_msg("le %.*s and %.*s differ", (int)(qa - la - 4), la + 4,
					 (int)(qb - lb - 4), lb + 4);
			}
			buckets++;
		} else {
			assert_int_equal(ea - a, eb - b);
			assert_memory_equal(a, b, (size_t)(ea - a));
		}
		a = ea + 1;
		b = eb + 1;
	}
	assert_int_equal(*a, '\0');
	assert_true(*b == '\0');
	assert_true(buckets > 0);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_golden(void **state)
{
	struct collector c;

	(void)state;
	assert_int_equal(collector_init(&c, false), 0);
	load_data_file(&c, "x86_64-6.18-vm.bin");
	load_data_file(&c, "x86_64-6.18-vcpu.bin");

	for (int per_vcpu = 0; per_vcpu <= 1; per_vcpu++) {
		char *om = collect(&c, per_vcpu, EXPOSITION_OPENMETRICS_100);
		char *t004 = collect(&c, per_vcpu, EXPOSITION_TEXT_004);
		char *kvm = kvm_part(om, SELF_MARK_OM), *kvm004 = kvm_part(t004, SELF_MARK_004);

		check_openmetrics(om);
		check_same_samples(kvm004, kvm);
		compare_golden(per_vcpu ? "golden-per-vcpu.om" : "golden-aggregate.om", kvm);
		free(kvm);
		free(kvm004);
		free(t004);
		free(om);
	}

	/* Spot checks against tests/data/README.md, independent of the goldens. */
	char *om = collect(&c, false, EXPOSITION_OPENMETRICS_100);
	assert_line(om, "# TYPE kvm_vcpu_exits counter");
	assert_line(om, "# HELP kvm_vcpu_exits VM exits of the vCPU, of every reason. (KVM vCPU "
			"stat exits)");
	assert_line(om, "kvm_vcpu_exits_total{vm=\"pid-5702\"} 101");
	assert_non_null(strstr(om, "# TYPE kvm_vcpu_halt_wait_seconds histogram\n"
				   "# UNIT kvm_vcpu_halt_wait_seconds seconds\n"
				   "# HELP kvm_vcpu_halt_wait_seconds "));
	assert_line(om, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"0.0\"} 0");
	assert_line(om, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"1e-09\"} 0");
	assert_line(om, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"1.6383e-05\"} 0");
	assert_line(om, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"3.2767e-05\"} 1");
	assert_line(om, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"6.5535e-05\"} 3");
	assert_line(om, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"0.000131071\"} 3");
	assert_line(om, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"1.073741823\"} 3");
	assert_line(om, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"+Inf\"} 3");
	assert_line(om, "kvm_vcpu_halt_wait_seconds_sum{vm=\"pid-5702\"} 0.000128351");
	assert_line(om, "kvm_vcpu_halt_wait_seconds_count{vm=\"pid-5702\"} 3");
	/* A gauge in both formats; no unit lines where the name has no unit. */
	assert_line(om, "# TYPE kvm_vm_info gauge");
	assert_null(strstr(om, "# UNIT kvm_vm_"));
	/* Self-metrics follow the same rules. */
	assert_line(om, "# TYPE kvmstats_exporter_read_errors counter");
	assert_line(om, "kvmstats_exporter_read_errors_total 0");
	assert_line(om, "# UNIT kvmstats_exporter_scrape_duration_seconds seconds");
	assert_line(om, "# TYPE kvmstats_exporter_build_info gauge");
	free(om);
	collector_release(&c);
}

/* No VMs: self-metrics and "# EOF" only. */
static void test_empty(void **state)
{
	struct collector c;
	char *om;

	(void)state;
	assert_int_equal(collector_init(&c, false), 0);
	om = collect(&c, false, EXPOSITION_OPENMETRICS_100);
	check_openmetrics(om);
	assert_int_equal(strncmp(om, SELF_MARK_OM, strlen(SELF_MARK_OM)), 0);
	free(om);
	collector_release(&c);
}

/* Without "# EOF" an OpenMetrics parser rejects the scrape; text 0.0.4 has none. */
static void test_end(void **state)
{
	struct outbuf out = { 0 };

	(void)state;
	exposition_write_end(&out, EXPOSITION_TEXT_004);
	assert_int_equal(out.len, 0);
	exposition_write_end(&out, EXPOSITION_OPENMETRICS_100);
	assert_int_equal(out.len, 6);
	assert_memory_equal(out.data, "# EOF\n", 6);
	outbuf_release(&out);
	assert_string_equal(exposition_content_type(EXPOSITION_TEXT_004),
			    "text/plain; version=0.0.4; charset=utf-8");
	assert_string_equal(exposition_content_type(EXPOSITION_OPENMETRICS_100),
			    "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
