/* SPDX-License-Identifier: MIT */
/*
 * The text exposition of real saved blobs (tests/data/) through the
 * collector, compared with golden files, plus synthetic VMs for what the
 * goldens cannot show: aggregation over several vCPUs (sum, max, exact
 * 128-bit sums), escaping of hostile names, failed reads, and several
 * schemas merged into one exposition.
 *
 * The goldens hold only the KVM part (everything before the first
 * "# HELP kvmstats_exporter_" line). They were checked by hand against the
 * blob values in tests/data/README.md. A deliberate change of the output
 * regenerates them with UPDATE_GOLDEN=1 (then review the diff and run
 * tests/unit/promtool_golden.sh).
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
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector.h"
#include "expo/exposition.h"
#include "golden.h"
#include "lines.h"
#include "macro.h"
#include "expo/outbuf.h"
#include "sources/file.h"

#define VM_BLOB   "x86_64-6.18-vm.bin"
#define VCPU_BLOB "x86_64-6.18-vcpu.bin"
#define SELF_MARK "# HELP kvmstats_exporter_"

/* Layout of the saved blobs (tests/data/README.md). */
#define NAME_SIZE     48u
#define ID_OFFSET     24u
#define DESC_OFFSET   72u
#define DESC_STRIDE   (16u + NAME_SIZE)
#define VCPU_DATA_OFF 2952u

#define U64_MAX_STR "18446744073709551615"

static struct blob vm_blob, vcpu_blob;

static int group_setup(void **state)
{
	const char *dir = getenv("TESTS_SOURCE_DIR");
	char path[4096];

	(void)state;
	if (!dir) {
		print_error("TESTS_SOURCE_DIR is not set (the tests/ directory)\n");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/data/%s", dir, VM_BLOB);
	if (read_whole(path, &vm_blob) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/data/%s", dir, VCPU_BLOB);
	if (read_whole(path, &vcpu_blob) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(vm_blob.data);
	free(vcpu_blob.data);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static uint8_t *copy_blob(const struct blob *b)
{
	uint8_t *p = malloc(b->len);

	assert_non_null(p);
	memcpy(p, b->data, b->len);
	return p;
}

/* Byte offset of a vCPU descriptor's value (bucket k) in the vCPU blob. */
static size_t vcpu_value_at(const char *name, unsigned k)
{
	for (unsigned i = 0; i < 45; i++) {
		const uint8_t *d = vcpu_blob.data + DESC_OFFSET + (size_t)i * DESC_STRIDE;
		uint32_t off;

		if (strcmp((const char *)d + 16, name) != 0)
			continue;
		memcpy(&off, d + 8, 4);
		return VCPU_DATA_OFF + off + (size_t)k * 8;
	}
	fail_msg("no vCPU descriptor %s", name);
	return 0;
}

static void set_u64(uint8_t *buf, size_t at, uint64_t v)
{
	memcpy(buf + at, &v, 8);
}

static void set_vcpu_value(uint8_t *buf, const char *name, unsigned k, uint64_t v)
{
	set_u64(buf, vcpu_value_at(name, k), v);
}

/* Turns the vCPU descriptor `name` into a PEAK (instant-like) stat. */
static void make_peak(uint8_t *buf, const char *name)
{
	for (unsigned i = 0; i < 45; i++) {
		uint8_t *d = buf + DESC_OFFSET + (size_t)i * DESC_STRIDE;
		uint32_t flags = KVMSTATS_TYPE_PEAK;

		if (strcmp((const char *)d + 16, name) == 0) {
			memcpy(d, &flags, 4);
			return;
		}
	}
	fail_msg("no vCPU descriptor %s", name);
}

static void set_id(uint8_t *buf, const char *id)
{
	assert_true(strlen(id) < NAME_SIZE);
	memset(buf + ID_OFFSET, 0, NAME_SIZE);
	memcpy(buf + ID_OFFSET, id, strlen(id));
}

/* Saves bytes to a temporary file, loads it as --kvm.stats-file would, removes it. */
static void load_bytes(struct collector *c, const uint8_t *p, size_t len)
{
	char path[] = "/tmp/test_exposition-XXXXXX";
	char err[256] = "";
	int fd = mkstemp(path);
	int r;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
	r = source_file_load(c, path, err, sizeof(err));
	unlink(path);
	if (r < 0)
		fail_msg("source_file_load: %d: %s", r, err);
}

static void load_data_file(struct collector *c, const char *name)
{
	char path[4096], err[256] = "";
	int r;

	snprintf(path, sizeof(path), "%s/data/%s", source_dir(), name);
	r = source_file_load(c, path, err, sizeof(err));
	if (r < 0)
		fail_msg("source_file_load %s: %d: %s", name, r, err);
}

/* A minimal stats-file writer for synthetic schemas; value of desc i is `values[i]`. */
struct syn {
	const char *name;
	uint32_t flags;
	int16_t exponent;
	uint64_t value;
};

static uint8_t *build_blob(const char *id, const struct syn *d, size_t n, size_t *ret_len)
{
	enum { NS = 64 };
	size_t desc_off = 24 + NS, stride = 16 + NS, data_off = desc_off + n * stride;
	size_t len = data_off + n * 8;
	uint32_t hdr[6] = { 0, NS, (uint32_t)n, 24, (uint32_t)desc_off, (uint32_t)data_off };
	uint8_t *buf = calloc(1, len);

	assert_non_null(buf);
	memcpy(buf, hdr, sizeof(hdr));
	memcpy(buf + 24, id, strlen(id));
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = buf + desc_off + i * stride;
		uint16_t size = 1;
		uint32_t off = (uint32_t)(i * 8);

		assert_true(strlen(d[i].name) < NS);
		memcpy(p, &d[i].flags, 4);
		memcpy(p + 4, &d[i].exponent, 2);
		memcpy(p + 6, &size, 2);
		memcpy(p + 8, &off, 4);
		memcpy(p + 16, d[i].name, strlen(d[i].name));
		memcpy(buf + data_off + off, &d[i].value, 8);
	}
	*ret_len = len;
	return buf;
}

/* Runs one scrape; returns the KVM part as a new NUL-terminated string. */
static char *collect_kvm(struct collector *c, bool per_vcpu, char **ret_self)
{
	struct outbuf out = { 0 };
	const char *self;
	char *text;
	size_t n;

	c->per_vcpu = per_vcpu;
	assert_int_equal(collector_collect(c, &out, EXPOSITION_TEXT_004), 0);
	assert_false(out.failed);
	outbuf_putc(&out, '\0');
	assert_false(out.failed);

	if (strncmp(out.data, SELF_MARK, strlen(SELF_MARK)) == 0)
		self = out.data;
	else
		self = strstr(out.data, "\n" SELF_MARK);
	assert_non_null(self);
	if (self != out.data)
		self++;
	n = (size_t)(self - out.data);
	text = strndup(out.data, n);
	assert_non_null(text);
	if (ret_self) {
		*ret_self = strdup(self);
		assert_non_null(*ret_self);
	}
	outbuf_release(&out);
	return text;
}

/* Runs one OpenMetrics scrape; returns the whole exposition as a new string. */
static char *collect_openmetrics(struct collector *c)
{
	struct outbuf out = { 0 };
	char *text;

	assert_int_equal(collector_collect(c, &out, EXPOSITION_OPENMETRICS_100), 0);
	outbuf_putc(&out, '\0');
	assert_false(out.failed);
	text = strdup(out.data);
	assert_non_null(text);
	outbuf_release(&out);
	return text;
}

static size_t count_prefix(const char *text, const char *prefix)
{
	size_t n = 0, k = strlen(prefix);

	for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
		if (strncmp(p, prefix, k) == 0)
			n++;
		if (!strchr(p, '\n'))
			break;
	}
	return n;
}

/* ---- a structural check of the text format -------------------------------- */

static bool valid_metric_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
			  ch == ':' || (i > 0 && ch >= '0' && ch <= '9');

		if (!ok)
			return false;
	}
	return true;
}

static kvmstats_u128 parse_u128(const char *s, size_t n)
{
	kvmstats_u128 v = 0;

	assert_true(n > 0);
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			fail_msg("not an integer: %.*s", (int)n, s);
		v = v * 10 + (kvmstats_u128)(s[i] - '0');
	}
	return v;
}

/*
 * Checks what promtool would: HELP then TYPE once per family, families
 * contiguous, sample names belong to their family, label values escaped,
 * values are plain decimals, histogram buckets cumulative and ending at +Inf
 * with _count equal to the +Inf bucket.
 */
static void check_well_formed(const char *text)
{
	char seen[256][160];
	size_t n_seen = 0;
	char family[160] = "", help[160] = "", type[16] = "";
	char bucket_series[512] = "";
	kvmstats_u128 last_bucket = 0, inf_bucket = 0;
	bool have_inf = false;
	const char *line = text;

	assert_true(*text == '\0' || text[strlen(text) - 1] == '\n');
	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t len = (size_t)(eol - line);

		assert_non_null(eol);
		if (strncmp(line, "# HELP ", 7) == 0) {
			const char *name = line + 7, *sp = memchr(name, ' ', len - 7);

			assert_non_null(sp);
			assert_true(valid_metric_name(name, (size_t)(sp - name)));
			snprintf(help, sizeof(help), "%.*s", (int)(sp - name), name);
			/* HELP escapes: only \\ and \n. */
			for (const char *p = sp + 1; p < eol; p++)
				if (*p == '\\') {
					p++;
					if (p >= eol || (*p != '\\' && *p != 'n'))
						fail_msg("bad HELP escape: %.*s", (int)len, line);
				}
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			const char *name = line + 7, *sp = memchr(name, ' ', len - 7);

			assert_non_null(sp);
			snprintf(family, sizeof(family), "%.*s", (int)(sp - name), name);
			snprintf(type, sizeof(type), "%.*s", (int)(eol - sp - 1), sp + 1);
			if (strcmp(family, help) != 0)
				fail_msg("TYPE %s without its HELP", family);
			assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
				    strcmp(type, "histogram") == 0);
			for (size_t i = 0; i < n_seen; i++)
				if (strcmp(seen[i], family) == 0)
					fail_msg("family %s twice", family);
			assert_true(n_seen < ELEMENTSOF(seen));
			snprintf(seen[n_seen++], sizeof(seen[0]), "%s", family);
			bucket_series[0] = '\0';
		} else {
			const char *brace = memchr(line, '{', len), *sp, *val;
			size_t name_len, flen = strlen(family);
			const char *suffix;

			if (!brace) {
				/* No labels (self-metrics): name, space, value. */
				sp = memchr(line, ' ', len);
				assert_non_null(sp);
				brace = sp;
			}
			name_len = (size_t)(brace - line);
			assert_true(valid_metric_name(line, name_len));
			if (name_len < flen || strncmp(line, family, flen) != 0)
				fail_msg("sample outside its family %s: %.*s", family, (int)len,
					 line);
			suffix = line + flen;
			if (strcmp(type, "histogram") == 0)
				assert_true(strncmp(suffix, "_bucket{", 8) == 0 ||
					    strncmp(suffix, "_sum{", 5) == 0 ||
					    strncmp(suffix, "_count{", 7) == 0);
			else
				assert_int_equal(name_len, flen);

			/* Labels: name="value" with \\ \" \n escapes only. */
			const char *p = brace + 1;
			while (*brace == '{' && *p != '}') {
				const char *eq = strchr(p, '=');

				assert_non_null(eq);
				assert_true(eq < eol);
				assert_true(valid_metric_name(p, (size_t)(eq - p)));
				assert_int_equal(eq[1], '"');
				for (p = eq + 2; *p != '"'; p++) {
					assert_true(p < eol);
					if (*p == '\\') {
						p++;
						assert_true(*p == '\\' || *p == '"' || *p == 'n');
					}
				}
				p++;
				if (*p == ',')
					p++;
			}
			sp = *brace == '{' ? p + 1 : brace;
			assert_int_equal(*sp, ' ');
			val = sp + 1;
			/* A plain decimal: digits with at most one point, no exponent. */
			if (strncmp(val, "+Inf", 4) != 0) {
				bool point = false;

				assert_true(val < eol);
				for (const char *q = val; q < eol; q++) {
					if (*q == '.' && !point && q > val && q + 1 < eol) {
						point = true;
						continue;
					}
					if (*q < '0' || *q > '9')
						fail_msg("bad value: %.*s", (int)len, line);
				}
			}

			/* Buckets: cumulative per series, +Inf last, _count equal to it. */
			if (strncmp(suffix, "_bucket{", 8) == 0) {
				const char *le = strstr(brace, "le=\"");
				size_t series_len;

				assert_non_null(le);
				series_len = (size_t)(le - line);
				kvmstats_u128 v = parse_u128(val, (size_t)(eol - val));
				if (strlen(bucket_series) != series_len ||
				    strncmp(bucket_series, line, series_len) != 0) {
					assert_false(bucket_series[0] && !have_inf);
					snprintf(bucket_series, sizeof(bucket_series), "%.*s",
						 (int)series_len, line);
					last_bucket = 0;
					have_inf = false;
				}
				assert_false(have_inf);
				assert_true(v >= last_bucket);
				last_bucket = v;
				if (strncmp(le, "le=\"+Inf\"", 9) == 0) {
					have_inf = true;
					inf_bucket = v;
				}
			} else if (strncmp(suffix, "_count{", 7) == 0) {
				assert_true(have_inf);
				assert_true(parse_u128(val, (size_t)(eol - val)) == inf_bucket);
			}
		}
		line = eol + 1;
	}
}

/* ---- goldens ------------------------------------------------------------ */

static void test_golden(void **state)
{
	struct collector c;
	char *agg, *agg2, *pv, *self;

	(void)state;
	assert_int_equal(collector_init(&c, false), 0);
	load_data_file(&c, VM_BLOB);
	load_data_file(&c, VCPU_BLOB);
	assert_int_equal(c.n_vms, 1);
	assert_string_equal(c.vms[0]->name, "pid-5702");
	assert_int_equal(c.vms[0]->n_vcpus, 1);
	assert_non_null(c.vms[0]->vm_file);

	agg = collect_kvm(&c, false, &self);
	check_well_formed(agg);
	check_well_formed(self);
	compare_golden("golden-aggregate.prom", agg);
	assert_line(self, "kvmstats_exporter_stats_fds 2");
	assert_line(self, "kvmstats_exporter_vms{source=\"file\"} 1");
	assert_line(self, "kvmstats_exporter_skipped_stats 0");
	assert_line(self, "kvmstats_exporter_read_errors_total 0");
	free(self);

	/* Every scrape of unchanged values prints the same bytes. */
	agg2 = collect_kvm(&c, false, NULL);
	assert_string_equal(agg, agg2);

	pv = collect_kvm(&c, true, NULL);
	check_well_formed(pv);
	compare_golden("golden-per-vcpu.prom", pv);

	/* Spot checks against tests/data/README.md, independent of the goldens. */
	assert_line(agg, "kvm_vm_mmu_cache_miss_total{vm=\"pid-5702\"} 4");
	assert_line(agg, "kvm_vcpu_exits_total{vm=\"pid-5702\"} 101");
	assert_line(agg, "kvm_vcpu_halt_exits_total{vm=\"pid-5702\"} 50");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_sum{vm=\"pid-5702\"} 0.000128351");
	assert_line(agg, "kvm_vcpu_halt_poll_success_seconds_sum{vm=\"pid-5702\"} 0.002689347");
	assert_line(agg, "kvm_vcpu_halt_poll_fail_seconds_sum{vm=\"pid-5702\"} 0.00006041");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"0.000016383\"} 0");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"0.000032767\"} 1");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"0.000065535\"} 3");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"+Inf\"} 3");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_count{vm=\"pid-5702\"} 3");
	assert_line(agg, "kvm_vcpu_halt_poll_success_seconds_count{vm=\"pid-5702\"} 46");
	assert_line(agg, "# TYPE kvm_vcpu_halt_wait_seconds histogram");
	assert_line(agg, "# TYPE kvm_vcpu_exits_total counter");
	assert_line(agg, "# TYPE kvm_vm_max_mmu_rmap_size gauge");
	/* Unknown identity fields are left out, never empty. */
	assert_line(agg, "kvm_vm_info{vm=\"pid-5702\",kvm_id=\"kvm-5702\",source=\"file\"} 1");
	assert_null(strstr(agg, "=\"\""));
	/* The cumulative _ns stats are only the histograms' sums. */
	assert_null(strstr(agg, "halt_wait_ns"));
	assert_null(strstr(agg, "kvm_vcpu_halt_wait_seconds_total"));
	/* 15 + 42 families and kvm_vm_info. */
	assert_int_equal(count_prefix(agg, "# TYPE "), 15 + 42 + 1);
	assert_line(pv, "kvm_vcpu_exits_total{vm=\"pid-5702\",vcpu=\"0\"} 101");
	assert_line(pv, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",vcpu=\"0\","
			"le=\"+Inf\"} 3");
	/* VM-level series never carry a vcpu label. */
	assert_line(pv, "kvm_vm_mmu_cache_miss_total{vm=\"pid-5702\"} 4");

	free(agg);
	free(agg2);
	free(pv);
	collector_release(&c);
}

/* ---- several vCPUs ------------------------------------------------------- */

static void test_two_vcpus(void **state)
{
	struct collector c;
	uint8_t *v0 = copy_blob(&vcpu_blob), *v1 = copy_blob(&vcpu_blob);
	char *agg, *pv;

	(void)state;
	/* halt_poll_invalid becomes a PEAK stat in both (one schema), to check max. */
	make_peak(v0, "halt_poll_invalid");
	make_peak(v1, "halt_poll_invalid");
	set_vcpu_value(v0, "halt_poll_invalid", 0, 7);
	set_vcpu_value(v1, "halt_poll_invalid", 0, 5);
	set_id(v1, "kvm-5702/vcpu-1");
	set_vcpu_value(v1, "exits", 0, 1000);
	set_vcpu_value(v1, "blocking", 0, 1);
	set_vcpu_value(v1, "halt_wait_ns", 0, 1);
	set_vcpu_value(v1, "halt_wait_hist", 16, 0);
	set_vcpu_value(v1, "halt_wait_hist", 15, 0);
	set_vcpu_value(v1, "halt_wait_hist", 0, 2);
	set_vcpu_value(v1, "halt_wait_hist", 31, 1);

	assert_int_equal(collector_init(&c, false), 0);
	/* vCPU 1 first: series still come in vCPU order. */
	load_bytes(&c, v1, vcpu_blob.len);
	load_bytes(&c, v0, vcpu_blob.len);
	assert_int_equal(c.n_vms, 1);
	assert_int_equal(c.vms[0]->n_vcpus, 2);
	assert_ptr_equal(c.vms[0]->vcpus[0].file->schema, c.vms[0]->vcpus[1].file->schema);

	agg = collect_kvm(&c, false, NULL);
	check_well_formed(agg);
	assert_line(agg, "kvm_vcpu_exits_total{vm=\"pid-5702\"} 1101");
	assert_int_equal(count_prefix(agg, "kvm_vcpu_exits_total{"), 1);
	assert_line(agg, "kvm_vcpu_halt_exits_total{vm=\"pid-5702\"} 100");
	assert_line(agg, "kvm_vcpu_blocking{vm=\"pid-5702\"} 1");
	/* PEAK: the largest, not the sum. */
	assert_line(agg, "# TYPE kvm_vcpu_halt_poll_invalid gauge");
	assert_line(agg, "kvm_vcpu_halt_poll_invalid{vm=\"pid-5702\"} 7");
	/* Histograms add bucket by bucket, then accumulate. */
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"0\"} 2");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"0.000016383\"} 2");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"0.000032767\"} 3");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"0.000065535\"} 5");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"1.073741823\"} 5");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"+Inf\"} 6");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_count{vm=\"pid-5702\"} 6");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_sum{vm=\"pid-5702\"} 0.000128352");
	/* Only one series per family in aggregate mode: no vcpu label anywhere. */
	assert_null(strstr(agg, "vcpu=\""));

	pv = collect_kvm(&c, true, NULL);
	check_well_formed(pv);
	assert_line(pv, "kvm_vcpu_exits_total{vm=\"pid-5702\",vcpu=\"0\"} 101");
	assert_line(pv, "kvm_vcpu_exits_total{vm=\"pid-5702\",vcpu=\"1\"} 1000");
	assert_non_null(strstr(pv, "kvm_vcpu_exits_total{vm=\"pid-5702\",vcpu=\"0\"} 101\n"
				   "kvm_vcpu_exits_total{vm=\"pid-5702\",vcpu=\"1\"} 1000\n"));
	assert_line(pv, "kvm_vcpu_halt_poll_invalid{vm=\"pid-5702\",vcpu=\"0\"} 7");
	assert_line(pv, "kvm_vcpu_halt_poll_invalid{vm=\"pid-5702\",vcpu=\"1\"} 5");
	assert_line(pv, "kvm_vcpu_blocking{vm=\"pid-5702\",vcpu=\"1\"} 1");
	assert_line(pv, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",vcpu=\"0\","
			"le=\"+Inf\"} 3");
	assert_line(pv, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",vcpu=\"1\",le=\"0\"} 2");
	assert_line(pv, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",vcpu=\"1\","
			"le=\"+Inf\"} 3");
	assert_line(pv, "kvm_vcpu_halt_wait_seconds_sum{vm=\"pid-5702\",vcpu=\"1\"} 0.000000001");
	assert_int_equal(count_prefix(pv, "kvm_vcpu_exits_total{"), 2);

	free(agg);
	free(pv);
	collector_release(&c);
	free(v0);
	free(v1);
}

/* Sums are exact in 128 bits: no wrap, no floating point. */
static void test_u64_max_sum(void **state)
{
	struct collector c;
	uint8_t *v0 = copy_blob(&vcpu_blob), *v1 = copy_blob(&vcpu_blob);
	char *agg, *pv;

	(void)state;
	set_id(v1, "kvm-5702/vcpu-1");
	for (int i = 0; i < 2; i++) {
		uint8_t *v = i ? v1 : v0;

		set_vcpu_value(v, "exits", 0, UINT64_MAX);
		set_vcpu_value(v, "halt_wait_ns", 0, UINT64_MAX);
		for (unsigned k = 0; k < 32; k++)
			set_vcpu_value(v, "halt_wait_hist", k, UINT64_MAX);
	}
	assert_int_equal(collector_init(&c, false), 0);
	load_bytes(&c, v0, vcpu_blob.len);
	load_bytes(&c, v1, vcpu_blob.len);

	agg = collect_kvm(&c, false, NULL);
	check_well_formed(agg);
	/* 2 * (2^64 - 1) */
	assert_line(agg, "kvm_vcpu_exits_total{vm=\"pid-5702\"} 36893488147419103230");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_sum{vm=\"pid-5702\"} 36893488147.41910323");
	/* Bucket 0 of two vCPUs, then all 64 bucket values. */
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"0\"} "
			 "36893488147419103230");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_bucket{vm=\"pid-5702\",le=\"+Inf\"} "
			 "1180591620717411303360");
	assert_line(agg, "kvm_vcpu_halt_wait_seconds_count{vm=\"pid-5702\"} "
			 "1180591620717411303360");

	pv = collect_kvm(&c, true, NULL);
	check_well_formed(pv);
	assert_line(pv, "kvm_vcpu_exits_total{vm=\"pid-5702\",vcpu=\"1\"} " U64_MAX_STR);
	assert_line(pv, "kvm_vcpu_halt_wait_seconds_sum{vm=\"pid-5702\",vcpu=\"0\"} "
			"18446744073.709551615");
	/* 32 * (2^64 - 1) */
	assert_line(pv, "kvm_vcpu_halt_wait_seconds_count{vm=\"pid-5702\",vcpu=\"0\"} "
			"590295810358705651680");

	free(agg);
	free(pv);
	collector_release(&c);
	free(v0);
	free(v1);
}

/* ---- escaping ------------------------------------------------------------ */

static void test_escaping(void **state)
{
	/* Descriptor names with a backslash, a quote, a newline and invalid UTF-8. */
	static const struct syn d[] = {
		{ "back\\slash\nnew\"quote\xff", KVMSTATS_TYPE_CUMULATIVE, 0, 3 },
		{ "plain", KVMSTATS_TYPE_INSTANT, 0, 9 },
	};
	struct collector c;
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	struct vm *vm;
	size_t len;
	uint8_t *buf = build_blob("kvm-77", d, ELEMENTSOF(d), &len);
	char *text;

	(void)state;
	assert_int_equal(collector_init(&c, false), 0);
	assert_int_equal(kvmstats_file_open_blob(buf, len, &f, &err), 0);
	assert_int_equal(collector_prepare_file(&c, f), 0);
	vm = vm_new(VM_SOURCE_FILE);
	assert_non_null(vm);
	vm->name = strdup("we\"ird\\name\nline2\xff\xc3(");
	vm->kvm_id = strdup("kvm-77");
	vm->uuid = strdup("u\"u");
	vm->vmm = strdup("q\\emu");
	vm->vm_file = f;
	assert_int_equal(collector_add_vm(&c, vm), 0);

	text = collect_kvm(&c, false, NULL);
	check_well_formed(text);
	/* Label values: \" \\ \n escaped, each invalid sequence one U+FFFD. */
	assert_line(text, "kvm_vm_plain{vm=\"we\\\"ird\\\\name\\nline2\xef\xbf\xbd\xef\xbf\xbd"
			  "(\"} 9");
	assert_line(text, "kvm_vm_info{vm=\"we\\\"ird\\\\name\\nline2\xef\xbf\xbd\xef\xbf\xbd(\","
			  "uuid=\"u\\\"u\",vmm=\"q\\\\emu\",kvm_id=\"kvm-77\","
			  "source=\"file\"} 1");
	/* The family name is sanitised; its HELP keeps the raw name, escaped for 0.0.4 HELP. */
	assert_line(text, "# HELP kvm_vm_back_slash_new_quote__total KVM VM statistic "
			  "back\\\\slash\\nnew\"quote\xef\xbf\xbd: cumulative, no unit, raw "
			  "scale 10^0.");
	assert_line(text, "kvm_vm_back_slash_new_quote__total{vm=\"we\\\"ird\\\\name\\nline2"
			  "\xef\xbf\xbd\xef\xbf\xbd(\"} 3");
	free(text);

	/* OpenMetrics names the family without _total and escapes the quote in HELP too. */
	text = collect_openmetrics(&c);
	assert_line(text, "# TYPE kvm_vm_back_slash_new_quote_ counter");
	assert_line(text, "# HELP kvm_vm_back_slash_new_quote_ KVM VM statistic "
			  "back\\\\slash\\nnew\\\"quote\xef\xbf\xbd: cumulative, no unit, raw "
			  "scale 10^0.");
	assert_line(text, "kvm_vm_back_slash_new_quote__total{vm=\"we\\\"ird\\\\name\\nline2"
			  "\xef\xbf\xbd\xef\xbf\xbd(\"} 3");

	free(text);
	collector_release(&c);
	free(buf);
}

/* ---- failures and lifecycle ---------------------------------------------- */

static int memfd_with(const uint8_t *p, size_t len)
{
	int fd = memfd_create("test-exposition", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	return fd;
}

/* A vCPU whose read fails is left out; the VM's aggregate is not a partial sum. */
static void test_failed_read(void **state)
{
	struct collector c;
	struct kvmstats_file *f0 = NULL, *f1 = NULL;
	struct kvmstats_error err;
	uint8_t *v1 = copy_blob(&vcpu_blob);
	struct vm *vm;
	char *agg, *pv, *self;
	int fd;

	(void)state;
	set_id(v1, "kvm-5702/vcpu-1");
	assert_int_equal(collector_init(&c, false), 0);
	assert_int_equal(kvmstats_file_open_blob(vcpu_blob.data, vcpu_blob.len, &f0, &err), 0);
	fd = memfd_with(v1, vcpu_blob.len);
	assert_int_equal(kvmstats_file_open_fd(fd, &f1, &err), 0);
	assert_int_equal(collector_prepare_file(&c, f0), 0);
	assert_int_equal(collector_prepare_file(&c, f1), 0);
	vm = vm_new(VM_SOURCE_FILE);
	assert_non_null(vm);
	vm->name = strdup("partial");
	assert_int_equal(vm_add_vcpu(vm, f0, -1), 0);
	assert_int_equal(vm_add_vcpu(vm, f1, -1), 0);
	assert_int_equal(collector_add_vm(&c, vm), 0);

	agg = collect_kvm(&c, false, NULL);
	assert_line(agg, "kvm_vcpu_exits_total{vm=\"partial\"} 202");
	free(agg);

	/* The data block disappears: the next pread is short. */
	assert_int_equal(ftruncate(fd, VCPU_DATA_OFF), 0);
	agg = collect_kvm(&c, false, &self);
	check_well_formed(agg);
	/* No vCPU series at all (kvm_vm_info stays: the VM is still there). */
	assert_int_equal(count_prefix(agg, "kvm_vcpu_"), 0);
	assert_line(agg, "kvm_vm_info{vm=\"partial\",source=\"file\"} 1");
	assert_line(self, "kvmstats_exporter_read_errors_total 1");
	free(self);
	free(agg);

	pv = collect_kvm(&c, true, NULL);
	check_well_formed(pv);
	assert_line(pv, "kvm_vcpu_exits_total{vm=\"partial\",vcpu=\"0\"} 101");
	assert_null(strstr(pv, "vcpu=\"1\""));
	free(pv);

	/* A VM whose process exited is not reported at all, not even kvm_vm_info. */
	c.vms[0]->exited = true;
	agg = collect_kvm(&c, false, NULL);
	check_well_formed(agg);
	assert_null(strstr(agg, "partial"));
	free(agg);

	collector_release(&c);
	free(v1);
}

/* No VMs: no KVM series, and no kvm_vm_info family either. */
static void test_empty(void **state)
{
	struct collector c;
	char *text, *self;

	(void)state;
	assert_int_equal(collector_init(&c, false), 0);
	text = collect_kvm(&c, false, &self);
	assert_string_equal(text, "");
	check_well_formed(self);
	assert_line(self, "kvmstats_exporter_stats_fds 0");
	free(text);
	free(self);
	collector_release(&c);
}

/* Several VMs and two vCPU schemas (another kernel): each family once, contiguous. */
static void test_merge(void **state)
{
	static const struct syn other[] = {
		{ "aaa_first", KVMSTATS_TYPE_CUMULATIVE, 0, 1 },
		{ "exits", KVMSTATS_TYPE_CUMULATIVE, 0, 42 },
		{ "zzz_last", KVMSTATS_TYPE_INSTANT, 0, 2 },
		{ "halt_exits", KVMSTATS_TYPE_INSTANT, 0, 5 }, /* same name, other type */
	};
	struct collector c;
	uint8_t *v = copy_blob(&vcpu_blob), *m = copy_blob(&vm_blob);
	uint8_t *syn;
	size_t syn_len;
	char *agg;
	const char *a, *b, *x;

	(void)state;
	assert_int_equal(collector_init(&c, false), 0);
	load_data_file(&c, VM_BLOB);
	load_data_file(&c, VCPU_BLOB);
	/* A second VM of the same kernel, vCPU and VM files. */
	set_id(v, "kvm-6000/vcpu-0");
	set_vcpu_value(v, "exits", 0, 7);
	load_bytes(&c, v, vcpu_blob.len);
	set_id(m, "kvm-6000");
	load_bytes(&c, m, vm_blob.len);
	/* A third VM from a foreign kernel. */
	syn = build_blob("kvm-7000/vcpu-3", other, ELEMENTSOF(other), &syn_len);
	load_bytes(&c, syn, syn_len);
	assert_int_equal(c.n_vms, 3);

	agg = collect_kvm(&c, false, NULL);
	check_well_formed(agg);
	assert_int_equal(count_prefix(agg, "# TYPE kvm_vcpu_exits_total "), 1);
	a = strstr(agg, "kvm_vcpu_exits_total{vm=\"pid-5702\"} 101\n");
	b = strstr(agg, "kvm_vcpu_exits_total{vm=\"pid-6000\"} 7\n");
	x = strstr(agg, "kvm_vcpu_exits_total{vm=\"pid-7000\"} 42\n");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(x);
	assert_line(agg, "kvm_vcpu_aaa_first_total{vm=\"pid-7000\"} 1");
	assert_line(agg, "kvm_vcpu_zzz_last{vm=\"pid-7000\"} 2");
	assert_line(agg, "kvm_vm_mmu_cache_miss_total{vm=\"pid-6000\"} 4");
	/* The clashing family keeps one type; the foreign gauge is left out. */
	assert_int_equal(count_prefix(agg, "# TYPE kvm_vcpu_halt_exits"), 1);
	assert_no_line(agg, "kvm_vcpu_halt_exits{vm=\"pid-7000\"} 5");
	assert_int_equal(count_prefix(agg, "kvm_vm_info{"), 3);

	free(agg);
	collector_release(&c);
	free(syn);
	free(v);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),      cmocka_unit_test(test_two_vcpus),
		cmocka_unit_test(test_u64_max_sum), cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_failed_read), cmocka_unit_test(test_empty),
		cmocka_unit_test(test_merge),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
