/* SPDX-License-Identifier: MIT */
/*
 * Descriptor -> family translation: the naming table, the real 6.18 x86-64
 * schemas (tests/data/), and small synthetic schemas for what today's kernel
 * does not ship (linear histograms, POW2 scales, unknown types, clashes).
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

#include "golden.h"

#include "kvmstats.h"
#include "macro.h"
#include "scale.h"
#include "translate.h"

#define FLAGS(type, unit, base) ((uint32_t)(type) | (uint32_t)(unit) << 4 | (uint32_t)(base) << 8)

enum {
	CUM = KVMSTATS_TYPE_CUMULATIVE,
	INST = KVMSTATS_TYPE_INSTANT,
	PEAK = KVMSTATS_TYPE_PEAK,
	LIN = KVMSTATS_TYPE_LINEAR_HIST,
	LOG = KVMSTATS_TYPE_LOG_HIST,
};
enum {
	NONE = KVMSTATS_UNIT_NONE,
	BYTES = KVMSTATS_UNIT_BYTES,
	SECS = KVMSTATS_UNIT_SECONDS,
	CYCLES = KVMSTATS_UNIT_CYCLES,
	BOOL = KVMSTATS_UNIT_BOOLEAN,
};
enum {
	P10 = KVMSTATS_BASE_POW10,
	P2 = KVMSTATS_BASE_POW2,
};

/* ---- a small stats-file writer ------------------------------------------ */

struct syn {
	const char *name;
	uint32_t flags;
	int16_t exponent;
	uint16_t size;
	uint32_t bucket_size;
};

#define SYN_NAME_SIZE 64u

/* Header, id, descriptors, then each descriptor's values in order; values are i*1000+k. */
static uint8_t *build_blob(const char *id, const struct syn *d, size_t n, size_t *ret_len)
{
	size_t desc_off = 24 + SYN_NAME_SIZE, stride = 16 + SYN_NAME_SIZE;
	size_t data_off = desc_off + n * stride, data_size = 0, len;
	uint32_t hdr[6];
	uint8_t *buf;

	for (size_t i = 0; i < n; i++)
		data_size += (size_t)d[i].size * 8;
	len = data_off + data_size;
	buf = calloc(1, len);
	assert_non_null(buf);

	hdr[0] = 0;
	hdr[1] = SYN_NAME_SIZE;
	hdr[2] = (uint32_t)n;
	hdr[3] = 24;
	hdr[4] = (uint32_t)desc_off;
	hdr[5] = (uint32_t)data_off;
	memcpy(buf, hdr, sizeof(hdr));
	assert_true(strlen(id) < SYN_NAME_SIZE);
	memcpy(buf + 24, id, strlen(id));

	uint32_t off = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = buf + desc_off + i * stride;

		assert_true(strlen(d[i].name) < SYN_NAME_SIZE);
		memcpy(p, &d[i].flags, 4);
		memcpy(p + 4, &d[i].exponent, 2);
		memcpy(p + 6, &d[i].size, 2);
		memcpy(p + 8, &off, 4);
		memcpy(p + 12, &d[i].bucket_size, 4);
		memcpy(p + 16, d[i].name, strlen(d[i].name));
		for (uint64_t k = 0; k < d[i].size; k++) {
			uint64_t v = i * 1000 + k;

			memcpy(buf + data_off + off + k * 8, &v, 8);
		}
		off += (uint32_t)d[i].size * 8;
	}
	*ret_len = len;
	return buf;
}

static struct kvmstats_file *open_syn(const char *id, const struct syn *d, size_t n)
{
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	size_t len;
	uint8_t *buf = build_blob(id, d, n, &len);
	char msg[256];
	int r;

	r = kvmstats_file_open_blob(buf, len, &f, &err);
	free(buf);
	if (r < 0) {
		kvmstats_error_format(&err, msg, sizeof(msg));
		fail_msg("synthetic blob rejected: %d %s", r, msg);
	}
	return f;
}

static struct kvmstats_translation *translate_ok(const struct kvmstats_schema *s)
{
	struct kvmstats_translation *t = NULL;
	int r = kvmstats_translate(s, &t);

	if (r < 0)
		fail_msg("kvmstats_translate: %d", r);
	assert_non_null(t);
	/* Sorted by name, no duplicates. */
	for (size_t i = 1; i < t->n_families; i++)
		if (strcmp(t->families[i - 1].name, t->families[i].name) >= 0)
			fail_msg("families out of order: %s, %s", t->families[i - 1].name,
				 t->families[i].name);
	return t;
}

static const struct kvmstats_family *family(const struct kvmstats_translation *t, const char *name)
{
	for (size_t i = 0; i < t->n_families; i++)
		if (strcmp(t->families[i].name, name) == 0)
			return &t->families[i];
	return NULL;
}

static const struct kvmstats_family *must_family(const struct kvmstats_translation *t,
						 const char *name)
{
	const struct kvmstats_family *f = family(t, name);

	if (!f) {
		for (size_t i = 0; i < t->n_families; i++)
			print_message("  have %s\n", t->families[i].name);
		fail_msg("no family %s", name);
	}
	return f;
}

static void check_le(const struct kvmstats_family *f, const char *const *want, size_t n)
{
	assert_int_equal(f->type, KVMSTATS_METRIC_HISTOGRAM);
	assert_int_equal(f->n_buckets, n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(f->le[i], want[i]) != 0)
			fail_msg("%s le[%zu] = \"%s\", want \"%s\"", f->name, i, f->le[i], want[i]);
}

/* ---- blobs --------------------------------------------------------------- */

static struct blob vm_blob, vcpu_blob;

static int group_setup(void **state)
{
	(void)state;
	if (load_data_blob("x86_64-6.18-vm.bin", &vm_blob) < 0 ||
	    load_data_blob("x86_64-6.18-vcpu.bin", &vcpu_blob) < 0)
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

static struct kvmstats_file *open_real(const struct blob *b)
{
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;

	assert_int_equal(kvmstats_file_open_blob(b->data, b->len, &f, &err), 0);
	return f;
}

/* ---- names -------------------------------------------------------------- */

static void test_stat_name(void **state)
{
	static const struct {
		const char *desc;
		unsigned type, unit;
		const char *want;
	} cases[] = {
		{ "exits", CUM, NONE, "exits" },
		{ "pages_4k", INST, NONE, "pages_4k" },
		{ "guest_mode", INST, BOOL, "guest_mode" },
		{ "max_mmu_rmap_size", PEAK, NONE, "max_mmu_rmap_size" },
		{ "halt_wait_ns", CUM, SECS, "halt_wait_seconds" },
		{ "halt_wait_hist", LOG, SECS, "halt_wait_seconds" },
		{ "halt_poll_success_hist", LOG, SECS, "halt_poll_success_seconds" },
		{ "halt_wait_ns_hist", LOG, SECS, "halt_wait_seconds" },
		{ "Foo-Bar.baz", CUM, NONE, "foo_bar_baz" },
		{ "ABC xyz/9", INST, NONE, "abc_xyz_9" },
		{ "caf\xc3\xa9", CUM, NONE, "caf__" },
		/* A unit token is dropped only where the suffix puts it back. */
		{ "rx_bytes", CUM, BYTES, "rx_bytes" },
		{ "rx", CUM, BYTES, "rx_bytes" },
		{ "rx_ns", CUM, BYTES, "rx_ns_bytes" },
		{ "tsc_cycles", CUM, CYCLES, "tsc_cycles" },
		{ "tsc", CUM, CYCLES, "tsc_cycles" },
		{ "tsc_bytes", CUM, CYCLES, "tsc_bytes_cycles" },
		{ "delay_us", CUM, SECS, "delay_seconds" },
		{ "delay_ms", INST, SECS, "delay_seconds" },
		{ "delay_seconds", CUM, SECS, "delay_seconds" },
		{ "delay", CUM, SECS, "delay_seconds" },
		{ "DELAY_MS", CUM, SECS, "delay_seconds" },
		{ "delay_ns", CUM, NONE, "delay_ns" },
		{ "delay_us", INST, NONE, "delay_us" },
		{ "size_bytes", INST, NONE, "size_bytes" },
		{ "tsc_cycles", CUM, NONE, "tsc_cycles" },
		{ "delay_ns", CUM, BOOL, "delay_ns" },
		{ "rx_bytes", CUM, SECS, "rx_bytes_seconds" },
		/* Only one token goes, and only at the end. */
		{ "a_ns_us", CUM, SECS, "a_ns_seconds" },
		{ "ns_count", CUM, SECS, "ns_count_seconds" },
		{ "x_nsx", CUM, SECS, "x_nsx_seconds" },
		/* "_hist" goes for histograms only. */
		{ "foo_hist", CUM, NONE, "foo_hist" },
		{ "foo_hist", LIN, NONE, "foo" },
		{ "foo_hist", LOG, BYTES, "foo_bytes" },
		{ "foo_bytes_hist", LIN, BYTES, "foo_bytes" },
		{ "foo_hist_ns", LOG, SECS, "foo_hist_seconds" },
		{ "foo", LOG, NONE, "foo" },
		/* An unknown unit adds nothing and drops nothing. */
		{ "foo_bytes", CUM, 9, "foo_bytes" },
	};
	char buf[128];

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		int r = kvmstats_stat_name(cases[i].desc, cases[i].type, cases[i].unit, buf,
					   sizeof(buf));

		if (r < 0 || strcmp(buf, cases[i].want) != 0)
			fail_msg("\"%s\" type %u unit %u: %d \"%s\", want \"%s\"", cases[i].desc,
				 cases[i].type, cases[i].unit, r, r < 0 ? "" : buf, cases[i].want);
		assert_int_equal(r, (int)strlen(cases[i].want));
	}
}

static void test_stat_name_buffer(void **state)
{
	char buf[64];

	(void)state;
	/* "exits": 5 characters and the NUL. */
	assert_int_equal(kvmstats_stat_name("exits", CUM, NONE, buf, 6), 5);
	assert_string_equal(buf, "exits");
	assert_int_equal(kvmstats_stat_name("exits", CUM, NONE, buf, 5), -ENOBUFS);
	assert_int_equal(kvmstats_stat_name("exits", CUM, NONE, buf, 0), -ENOBUFS);

	/* The result is longer than the input: the input fits, the suffix does not. */
	assert_int_equal(kvmstats_stat_name("halt_wait_ns", CUM, SECS, buf, 18), 17);
	assert_string_equal(buf, "halt_wait_seconds");
	assert_int_equal(kvmstats_stat_name("halt_wait_ns", CUM, SECS, buf, 17), -ENOBUFS);
	assert_int_equal(kvmstats_stat_name("halt_wait_ns", CUM, SECS, buf, 13), -ENOBUFS);
	assert_int_equal(kvmstats_stat_name("rx", CUM, BYTES, buf, 9), 8);
	assert_string_equal(buf, "rx_bytes");
	assert_int_equal(kvmstats_stat_name("rx", CUM, BYTES, buf, 8), -ENOBUFS);
	assert_int_equal(kvmstats_stat_name("rx", CUM, BYTES, buf, 3), -ENOBUFS);

	/* The result is shorter than the input. */
	assert_int_equal(kvmstats_stat_name("halt_wait_hist", LOG, NONE, buf, 15), 9);
	assert_string_equal(buf, "halt_wait");
}

/* ---- the real schemas --------------------------------------------------- */

enum fam_type { COUNTER, GAUGE, HIST };

struct want_family {
	const char *name;
	enum fam_type type;
	const char *desc;
	const char *sum_desc;
};

static void check_families(const struct kvmstats_schema *s, const struct kvmstats_translation *t,
			   const struct want_family *want, size_t n)
{
	static const enum kvmstats_metric_type types[] = {
		[COUNTER] = KVMSTATS_METRIC_COUNTER,
		[GAUGE] = KVMSTATS_METRIC_GAUGE,
		[HIST] = KVMSTATS_METRIC_HISTOGRAM,
	};

	assert_int_equal(t->n_families, n);
	assert_int_equal(t->n_skipped, 0);
	for (size_t i = 0; i < n; i++) {
		const struct kvmstats_family *f = &t->families[i];
		const struct kvmstats_desc *d = &s->descs[f->desc];

		if (strcmp(f->name, want[i].name) != 0)
			fail_msg("family %zu is %s, want %s", i, f->name, want[i].name);
		assert_int_equal(f->type, types[want[i].type]);
		assert_string_equal(d->name, want[i].desc);
		assert_int_equal(f->agg, d->type == KVMSTATS_TYPE_PEAK ? KVMSTATS_AGG_MAX
								       : KVMSTATS_AGG_SUM);
		assert_non_null(f->help);
		/* Every stat of today's kernel has a curated HELP naming it. */
		assert_non_null(strstr(f->help, d->name));
		if (want[i].sum_desc) {
			assert_true(f->sum_desc >= 0);
			assert_string_equal(s->descs[f->sum_desc].name, want[i].sum_desc);
		} else {
			assert_int_equal(f->sum_desc, -1);
		}
		if (want[i].type == HIST) {
			assert_int_equal(f->n_buckets, d->size);
			assert_string_equal(f->unit, "seconds");
		} else {
			assert_int_equal(f->n_buckets, 0);
			assert_null(f->le);
			assert_null(f->unit);
		}
	}
}

static void test_real_vm(void **state)
{
	static const struct want_family want[] = {
		{ "kvm_vm_max_mmu_page_hash_collisions", GAUGE, "max_mmu_page_hash_collisions",
		  NULL },
		{ "kvm_vm_max_mmu_rmap_size", GAUGE, "max_mmu_rmap_size", NULL },
		{ "kvm_vm_mmu_cache_miss", COUNTER, "mmu_cache_miss", NULL },
		{ "kvm_vm_mmu_flooded", COUNTER, "mmu_flooded", NULL },
		{ "kvm_vm_mmu_pde_zapped", COUNTER, "mmu_pde_zapped", NULL },
		{ "kvm_vm_mmu_pte_write", COUNTER, "mmu_pte_write", NULL },
		{ "kvm_vm_mmu_recycled", COUNTER, "mmu_recycled", NULL },
		{ "kvm_vm_mmu_shadow_zapped", COUNTER, "mmu_shadow_zapped", NULL },
		{ "kvm_vm_mmu_unsync", GAUGE, "mmu_unsync", NULL },
		{ "kvm_vm_nx_lpage_splits", GAUGE, "nx_lpage_splits", NULL },
		{ "kvm_vm_pages_1g", GAUGE, "pages_1g", NULL },
		{ "kvm_vm_pages_2m", GAUGE, "pages_2m", NULL },
		{ "kvm_vm_pages_4k", GAUGE, "pages_4k", NULL },
		{ "kvm_vm_remote_tlb_flush", COUNTER, "remote_tlb_flush", NULL },
		{ "kvm_vm_remote_tlb_flush_requests", COUNTER, "remote_tlb_flush_requests", NULL },
	};
	struct kvmstats_file *f = open_real(&vm_blob);
	struct kvmstats_translation *t = translate_ok(f->schema);
	const struct kvmstats_family *fam;

	(void)state;
	check_families(f->schema, t, want, ELEMENTSOF(want));

	fam = must_family(t, "kvm_vm_max_mmu_rmap_size");
	assert_int_equal(fam->agg, KVMSTATS_AGG_MAX);
	assert_string_equal(fam->help, "Largest reverse-map chain seen in the MMU. "
				       "(KVM VM stat max_mmu_rmap_size)");
	assert_int_equal(must_family(t, "kvm_vm_max_mmu_page_hash_collisions")->agg,
			 KVMSTATS_AGG_MAX);
	assert_int_equal(must_family(t, "kvm_vm_pages_4k")->agg, KVMSTATS_AGG_SUM);
	assert_int_equal(must_family(t, "kvm_vm_mmu_cache_miss")->agg, KVMSTATS_AGG_SUM);

	assert_null(kvmstats_translation_free(t));
	assert_null(kvmstats_translation_free(NULL));
	kvmstats_file_free(f);
}

static void test_real_vcpu(void **state)
{
	static const struct want_family want[] = {
		{ "kvm_vcpu_blocking", GAUGE, "blocking", NULL },
		{ "kvm_vcpu_directed_yield_attempted", COUNTER, "directed_yield_attempted", NULL },
		{ "kvm_vcpu_directed_yield_successful", COUNTER, "directed_yield_successful",
		  NULL },
		{ "kvm_vcpu_exits", COUNTER, "exits", NULL },
		{ "kvm_vcpu_fpu_reload", COUNTER, "fpu_reload", NULL },
		{ "kvm_vcpu_guest_mode", GAUGE, "guest_mode", NULL },
		{ "kvm_vcpu_halt_attempted_poll", COUNTER, "halt_attempted_poll", NULL },
		{ "kvm_vcpu_halt_exits", COUNTER, "halt_exits", NULL },
		{ "kvm_vcpu_halt_poll_fail_seconds", HIST, "halt_poll_fail_hist",
		  "halt_poll_fail_ns" },
		{ "kvm_vcpu_halt_poll_invalid", COUNTER, "halt_poll_invalid", NULL },
		{ "kvm_vcpu_halt_poll_success_seconds", HIST, "halt_poll_success_hist",
		  "halt_poll_success_ns" },
		{ "kvm_vcpu_halt_successful_poll", COUNTER, "halt_successful_poll", NULL },
		{ "kvm_vcpu_halt_wait_seconds", HIST, "halt_wait_hist", "halt_wait_ns" },
		{ "kvm_vcpu_halt_wakeup", COUNTER, "halt_wakeup", NULL },
		{ "kvm_vcpu_host_state_reload", COUNTER, "host_state_reload", NULL },
		{ "kvm_vcpu_hypercalls", COUNTER, "hypercalls", NULL },
		{ "kvm_vcpu_insn_emulation", COUNTER, "insn_emulation", NULL },
		{ "kvm_vcpu_insn_emulation_fail", COUNTER, "insn_emulation_fail", NULL },
		{ "kvm_vcpu_invlpg", COUNTER, "invlpg", NULL },
		{ "kvm_vcpu_io_exits", COUNTER, "io_exits", NULL },
		{ "kvm_vcpu_irq_exits", COUNTER, "irq_exits", NULL },
		{ "kvm_vcpu_irq_injections", COUNTER, "irq_injections", NULL },
		{ "kvm_vcpu_irq_window_exits", COUNTER, "irq_window_exits", NULL },
		{ "kvm_vcpu_l1d_flush", COUNTER, "l1d_flush", NULL },
		{ "kvm_vcpu_mmio_exits", COUNTER, "mmio_exits", NULL },
		{ "kvm_vcpu_nested_run", COUNTER, "nested_run", NULL },
		{ "kvm_vcpu_nmi_injections", COUNTER, "nmi_injections", NULL },
		{ "kvm_vcpu_nmi_window_exits", COUNTER, "nmi_window_exits", NULL },
		{ "kvm_vcpu_notify_window_exits", COUNTER, "notify_window_exits", NULL },
		{ "kvm_vcpu_pf_emulate", COUNTER, "pf_emulate", NULL },
		{ "kvm_vcpu_pf_fast", COUNTER, "pf_fast", NULL },
		{ "kvm_vcpu_pf_fixed", COUNTER, "pf_fixed", NULL },
		{ "kvm_vcpu_pf_guest", COUNTER, "pf_guest", NULL },
		{ "kvm_vcpu_pf_mmio_spte_created", COUNTER, "pf_mmio_spte_created", NULL },
		{ "kvm_vcpu_pf_spurious", COUNTER, "pf_spurious", NULL },
		{ "kvm_vcpu_pf_taken", COUNTER, "pf_taken", NULL },
		{ "kvm_vcpu_preemption_other", COUNTER, "preemption_other", NULL },
		{ "kvm_vcpu_preemption_reported", COUNTER, "preemption_reported", NULL },
		{ "kvm_vcpu_req_event", COUNTER, "req_event", NULL },
		{ "kvm_vcpu_request_irq_exits", COUNTER, "request_irq_exits", NULL },
		{ "kvm_vcpu_signal_exits", COUNTER, "signal_exits", NULL },
		{ "kvm_vcpu_tlb_flush", COUNTER, "tlb_flush", NULL },
	};
	/* Bucket k of a log histogram holds [2^(k-1), 2^k): its integer bound is 2^k - 1 ns. */
	static const char *const le[32] = {
		"0",           "0.000000001", "0.000000003", "0.000000007", "0.000000015",
		"0.000000031", "0.000000063", "0.000000127", "0.000000255", "0.000000511",
		"0.000001023", "0.000002047", "0.000004095", "0.000008191", "0.000016383",
		"0.000032767", "0.000065535", "0.000131071", "0.000262143", "0.000524287",
		"0.001048575", "0.002097151", "0.004194303", "0.008388607", "0.016777215",
		"0.033554431", "0.067108863", "0.134217727", "0.268435455", "0.536870911",
		"1.073741823", "+Inf",
	};
	struct kvmstats_file *f = open_real(&vcpu_blob);
	struct kvmstats_translation *t = translate_ok(f->schema);
	const struct kvmstats_family *fam;

	(void)state;
	/* 45 descriptors, 42 families: the three _ns counters became the histograms' _sum. */
	assert_int_equal(f->schema->num_desc, 45);
	check_families(f->schema, t, want, ELEMENTSOF(want));

	fam = must_family(t, "kvm_vcpu_halt_wait_seconds");
	assert_int_equal(fam->desc, 9);
	assert_int_equal(fam->sum_desc, 6);
	assert_string_equal(f->schema->descs[fam->sum_desc].name, "halt_wait_ns");
	check_le(fam, le, ELEMENTSOF(le));
	check_le(must_family(t, "kvm_vcpu_halt_poll_success_seconds"), le, ELEMENTSOF(le));
	check_le(must_family(t, "kvm_vcpu_halt_poll_fail_seconds"), le, ELEMENTSOF(le));
	assert_int_equal(must_family(t, "kvm_vcpu_halt_poll_success_seconds")->sum_desc, 4);
	assert_int_equal(must_family(t, "kvm_vcpu_halt_poll_fail_seconds")->sum_desc, 5);
	/* The histogram's HELP is the histogram's, not the counter's. */
	assert_non_null(strstr(fam->help, "halt_wait_hist"));

	/* No family keeps the cumulative names. */
	assert_null(family(t, "kvm_vcpu_halt_wait_ns"));
	assert_null(family(t, "kvm_vcpu_halt_wait_hist"));

	/* BOOLEAN instant stats are gauges. */
	assert_int_equal(must_family(t, "kvm_vcpu_guest_mode")->type, KVMSTATS_METRIC_GAUGE);
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

static void test_unknown_kind(void **state)
{
	struct kvmstats_file *f = open_real(&vm_blob);
	struct kvmstats_translation *t = NULL;

	(void)state;
	f->schema->kind = KVMSTATS_KIND_UNKNOWN;
	assert_int_equal(kvmstats_translate(f->schema, &t), -EINVAL);
	assert_null(t);
	kvmstats_file_free(f);
}

/* The prefix follows the schema's kind. */
static void test_kind_prefix(void **state)
{
	static const struct syn d[] = { { "exits", FLAGS(CUM, NONE, P10), 0, 1, 0 } };
	struct kvmstats_file *f = open_syn("kvm-1/vcpu-2", d, 1);
	struct kvmstats_translation *t = translate_ok(f->schema);

	(void)state;
	assert_int_equal(t->n_families, 1);
	assert_string_equal(t->families[0].name, "kvm_vcpu_exits");
	assert_string_equal(t->families[0].help,
			    "VM exits of the vCPU, of every reason. (KVM vCPU stat exits)");
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

/* ---- synthetic schemas -------------------------------------------------- */

static void test_linear_histogram(void **state)
{
	static const struct syn d[] = {
		{ "queue_depth_hist", FLAGS(LIN, NONE, P10), 0, 4, 10 },
		{ "latency_us_hist", FLAGS(LIN, SECS, P10), -6, 3, 100 },
		{ "one_bucket_hist", FLAGS(LIN, NONE, P10), 0, 1, 5 },
		{ "kilo_hist", FLAGS(LIN, NONE, P10), 3, 3, 1 },
		{ "wide_hist", FLAGS(LIN, NONE, P10), 0, 3, 0xffffffffu },
	};
	static const char *const depth[] = { "9", "19", "29", "+Inf" };
	static const char *const latency[] = { "0.000099", "0.000199", "+Inf" };
	static const char *const one[] = { "+Inf" };
	static const char *const kilo[] = { "0", "1000", "+Inf" };
	static const char *const wide[] = { "4294967294", "8589934589", "+Inf" };
	struct kvmstats_file *f = open_syn("kvm-1", d, ELEMENTSOF(d));
	struct kvmstats_translation *t = translate_ok(f->schema);
	const struct kvmstats_family *fam;

	(void)state;
	assert_int_equal(t->n_families, 5);
	assert_int_equal(t->n_skipped, 0);
	fam = must_family(t, "kvm_vm_queue_depth");
	check_le(fam, depth, ELEMENTSOF(depth));
	assert_int_equal(fam->sum_desc, -1);
	assert_null(fam->unit);
	fam = must_family(t, "kvm_vm_latency_seconds");
	check_le(fam, latency, ELEMENTSOF(latency));
	assert_string_equal(fam->unit, "seconds");
	check_le(must_family(t, "kvm_vm_one_bucket"), one, ELEMENTSOF(one));
	check_le(must_family(t, "kvm_vm_kilo"), kilo, ELEMENTSOF(kilo));
	check_le(must_family(t, "kvm_vm_wide"), wide, ELEMENTSOF(wide));
	/* Generated HELP names type, unit and scale. */
	assert_string_equal(must_family(t, "kvm_vm_latency_seconds")->help,
			    "KVM VM statistic latency_us_hist: linear histogram, seconds, "
			    "raw scale 10^-6.");
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

static void test_pow2(void **state)
{
	static const struct syn d[] = {
		{ "guest_memory", FLAGS(INST, BYTES, P2), 20, 1, 0 },
		{ "io_size_hist", FLAGS(LIN, BYTES, P2), 20, 3, 1 },
		{ "block_hist", FLAGS(LOG, BYTES, P2), 10, 4, 0 },
		{ "half_hist", FLAGS(LOG, SECS, P2), -1, 3, 0 },
	};
	static const char *const io_size[] = { "0", "1048576", "+Inf" };
	static const char *const block[] = { "0", "1024", "3072", "+Inf" };
	static const char *const half[] = { "0", "0.5", "+Inf" };
	struct kvmstats_file *f = open_syn("kvm-1", d, ELEMENTSOF(d));
	struct kvmstats_translation *t = translate_ok(f->schema);
	const struct kvmstats_family *fam;
	const struct kvmstats_desc *desc;
	char buf[KVMSTATS_SCALED_BUFSIZE];

	(void)state;
	assert_int_equal(t->n_families, 4);
	fam = must_family(t, "kvm_vm_guest_memory_bytes");
	assert_int_equal(fam->type, KVMSTATS_METRIC_GAUGE);
	assert_string_equal(fam->unit, "bytes");
	desc = &f->schema->descs[fam->desc];
	assert_int_equal(kvmstats_desc_radix(desc), 2);
	/* 3 MiB, exactly. */
	assert_int_equal(kvmstats_format_scaled(buf, sizeof(buf), 3, kvmstats_desc_radix(desc),
						desc->exponent),
			 7);
	assert_string_equal(buf, "3145728");
	assert_string_equal(fam->help, "KVM VM statistic guest_memory: instantaneous, bytes, raw "
				       "scale 2^20.");

	check_le(must_family(t, "kvm_vm_io_size_bytes"), io_size, ELEMENTSOF(io_size));
	check_le(must_family(t, "kvm_vm_block_bytes"), block, ELEMENTSOF(block));
	check_le(must_family(t, "kvm_vm_half_seconds"), half, ELEMENTSOF(half));
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

static void test_unsupported_skipped(void **state)
{
	static const struct syn d[] = {
		{ "good", FLAGS(CUM, NONE, P10), 0, 1, 0 },
		{ "future_type", FLAGS(5, NONE, P10), 0, 1, 0 },
		{ "future_unit", FLAGS(CUM, 5, P10), 0, 1, 0 },
		{ "future_base", FLAGS(CUM, NONE, 2), 0, 1, 0 },
	};
	struct kvmstats_file *f = open_syn("kvm-1", d, ELEMENTSOF(d));
	struct kvmstats_translation *t = translate_ok(f->schema);

	(void)state;
	assert_int_equal(f->schema->n_unsupported, 3);
	assert_int_equal(t->n_families, 1);
	assert_string_equal(t->families[0].name, "kvm_vm_good");
	assert_int_equal(t->families[0].desc, 0);
	assert_int_equal(t->n_skipped, 3);
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

static void test_unrepresentable_skipped(void **state)
{
	static const struct syn d[] = {
		{ "e64", FLAGS(INST, NONE, P10), 64, 1, 0 },
		{ "e65", FLAGS(INST, NONE, P10), 65, 1, 0 },
		{ "m64", FLAGS(CUM, SECS, P10), -64, 1, 0 },
		{ "m65", FLAGS(CUM, SECS, P10), -65, 1, 0 },
		{ "p65", FLAGS(INST, BYTES, P2), 65, 1, 0 },
		{ "big", FLAGS(INST, NONE, P10), 32767, 1, 0 },
		{ "array", FLAGS(INST, NONE, P10), 0, 2, 0 },
		{ "log128_hist", FLAGS(LOG, NONE, P10), 0, 128, 0 },
		{ "log129_hist", FLAGS(LOG, NONE, P10), 0, 129, 0 },
		{ "lin_e65_hist", FLAGS(LIN, NONE, P10), 65, 2, 1 },
	};
	struct kvmstats_file *f = open_syn("kvm-1", d, ELEMENTSOF(d));
	struct kvmstats_translation *t = translate_ok(f->schema);
	const struct kvmstats_family *fam;

	(void)state;
	assert_int_equal(f->schema->n_unsupported, 0);
	assert_int_equal(t->n_families, 3);
	assert_int_equal(t->n_skipped, 7);
	assert_non_null(family(t, "kvm_vm_e64"));
	assert_non_null(family(t, "kvm_vm_m64_seconds"));
	assert_null(family(t, "kvm_vm_e65"));
	assert_null(family(t, "kvm_vm_m65_seconds"));
	assert_null(family(t, "kvm_vm_p65_bytes"));
	assert_null(family(t, "kvm_vm_array"));
	assert_null(family(t, "kvm_vm_log129"));
	/* 128 log buckets: the last finite bound is 2^126 - 1. */
	fam = must_family(t, "kvm_vm_log128");
	assert_int_equal(fam->n_buckets, 128);
	assert_string_equal(fam->le[126], "85070591730234615865843651857942052863");
	assert_string_equal(fam->le[127], "+Inf");
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

static void test_name_clash(void **state)
{
	static const struct syn d[] = {
		{ "foo", FLAGS(CUM, NONE, P10), 0, 1, 0 },
		{ "Foo", FLAGS(CUM, NONE, P10), 0, 1, 0 },
		{ "fo.o", FLAGS(INST, NONE, P10), 0, 1, 0 },
		{ "fo_o", FLAGS(INST, NONE, P10), 0, 1, 0 },
		{ "wait_ns", FLAGS(CUM, SECS, P10), -9, 1, 0 },
		{ "wait_us", FLAGS(CUM, SECS, P10), -6, 1, 0 },
		{ "rx", FLAGS(CUM, BYTES, P10), 0, 1, 0 },
		{ "rx_bytes", FLAGS(CUM, BYTES, P10), 0, 1, 0 },
		{ "other", FLAGS(CUM, NONE, P10), 0, 1, 0 },
	};
	struct kvmstats_file *f = open_syn("kvm-1", d, ELEMENTSOF(d));
	struct kvmstats_translation *t = translate_ok(f->schema);

	(void)state;
	/* foo / Foo, fo.o / fo_o, wait_ns / wait_us and rx / rx_bytes: one of each pair. */
	assert_int_equal(t->n_families, 5);
	assert_int_equal(t->n_skipped, 4);
	assert_non_null(family(t, "kvm_vm_foo"));
	assert_int_equal(must_family(t, "kvm_vm_fo_o")->type, KVMSTATS_METRIC_GAUGE);
	assert_non_null(family(t, "kvm_vm_wait_seconds"));
	assert_int_equal(must_family(t, "kvm_vm_wait_seconds")->type, KVMSTATS_METRIC_COUNTER);
	assert_non_null(family(t, "kvm_vm_rx_bytes"));
	assert_non_null(family(t, "kvm_vm_other"));
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

static void test_histogram_sum(void **state)
{
	static const struct syn d[] = {
		/* Histogram with its cumulative companion: merged, the counter is its _sum. */
		{ "wait_hist", FLAGS(LOG, SECS, P10), -9, 4, 0 },
		{ "wait_ns", FLAGS(CUM, SECS, P10), -9, 1, 0 },
		/* The companion may come first and use another scale. */
		{ "poll_us", FLAGS(CUM, SECS, P10), -6, 1, 0 },
		{ "poll_hist", FLAGS(LOG, SECS, P10), -9, 4, 0 },
		/* No companion. */
		{ "lonely_hist", FLAGS(LOG, SECS, P10), -9, 4, 0 },
		/* A same-named gauge is not a sum: a clash. */
		{ "level_hist", FLAGS(LIN, NONE, P10), 0, 2, 1 },
		{ "level", FLAGS(INST, NONE, P10), 0, 1, 0 },
		/* Two companions: one is the sum, the other a clash. */
		{ "busy_hist", FLAGS(LOG, SECS, P10), -9, 4, 0 },
		{ "busy_ns", FLAGS(CUM, SECS, P10), -9, 1, 0 },
		{ "busy_us", FLAGS(CUM, SECS, P10), -6, 1, 0 },
	};
	struct kvmstats_file *f = open_syn("kvm-1", d, ELEMENTSOF(d));
	struct kvmstats_translation *t = translate_ok(f->schema);
	const struct kvmstats_family *fam;

	(void)state;
	assert_int_equal(t->n_families, 5);
	assert_int_equal(t->n_skipped, 2);

	fam = must_family(t, "kvm_vm_wait_seconds");
	assert_int_equal(fam->type, KVMSTATS_METRIC_HISTOGRAM);
	assert_int_equal(fam->desc, 0);
	assert_int_equal(fam->sum_desc, 1);

	fam = must_family(t, "kvm_vm_poll_seconds");
	assert_int_equal(fam->type, KVMSTATS_METRIC_HISTOGRAM);
	assert_int_equal(fam->desc, 3);
	assert_int_equal(fam->sum_desc, 2);
	assert_non_null(strstr(fam->help, "poll_hist"));

	fam = must_family(t, "kvm_vm_lonely_seconds");
	assert_int_equal(fam->type, KVMSTATS_METRIC_HISTOGRAM);
	assert_int_equal(fam->sum_desc, -1);

	assert_non_null(family(t, "kvm_vm_level"));
	assert_int_equal(must_family(t, "kvm_vm_level")->sum_desc, -1);

	fam = must_family(t, "kvm_vm_busy_seconds");
	assert_int_equal(fam->type, KVMSTATS_METRIC_HISTOGRAM);
	assert_true(fam->sum_desc == 8 || fam->sum_desc == 9);
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

static void test_types(void **state)
{
	static const struct syn d[] = {
		{ "c", FLAGS(CUM, NONE, P10), 0, 1, 0 },
		{ "i", FLAGS(INST, NONE, P10), 0, 1, 0 },
		{ "p", FLAGS(PEAK, NONE, P10), 0, 1, 0 },
		{ "b", FLAGS(INST, BOOL, P10), 0, 1, 0 },
		/* A "cumulative boolean" still only says 0 or 1: a gauge. */
		{ "cb", FLAGS(CUM, BOOL, P10), 0, 1, 0 },
		{ "pc", FLAGS(PEAK, CYCLES, P10), 3, 1, 0 },
	};
	struct kvmstats_file *f = open_syn("kvm-1", d, ELEMENTSOF(d));
	struct kvmstats_translation *t = translate_ok(f->schema);

	(void)state;
	assert_int_equal(t->n_families, 6);
	assert_int_equal(must_family(t, "kvm_vm_c")->type, KVMSTATS_METRIC_COUNTER);
	assert_int_equal(must_family(t, "kvm_vm_i")->type, KVMSTATS_METRIC_GAUGE);
	assert_int_equal(must_family(t, "kvm_vm_p")->type, KVMSTATS_METRIC_GAUGE);
	assert_int_equal(must_family(t, "kvm_vm_p")->agg, KVMSTATS_AGG_MAX);
	assert_int_equal(must_family(t, "kvm_vm_b")->type, KVMSTATS_METRIC_GAUGE);
	assert_int_equal(must_family(t, "kvm_vm_cb")->type, KVMSTATS_METRIC_GAUGE);
	assert_int_equal(must_family(t, "kvm_vm_pc_cycles")->type, KVMSTATS_METRIC_GAUGE);
	assert_int_equal(must_family(t, "kvm_vm_pc_cycles")->agg, KVMSTATS_AGG_MAX);
	assert_string_equal(must_family(t, "kvm_vm_pc_cycles")->unit, "cycles");
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

/* No descriptors at all: an empty translation. */
static void test_empty_schema(void **state)
{
	struct kvmstats_file *f = open_syn("kvm-9", NULL, 0);
	struct kvmstats_translation *t = translate_ok(f->schema);

	(void)state;
	assert_int_equal(t->n_families, 0);
	assert_int_equal(t->n_skipped, 0);
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

/* Names as long as a descriptor may have them still translate. */
static void test_long_names(void **state)
{
	enum { NS = KVMSTATS_MAX_NAME_SIZE };
	size_t len = 24 + NS + (16 + NS) + 8;
	uint8_t *buf = calloc(1, len);
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	struct kvmstats_translation *t;
	uint32_t hdr[6] = { 0, NS, 1, 24, 24 + NS, 24 + NS + 16 + NS };
	uint32_t flags = FLAGS(CUM, SECS, P10);
	int16_t e = -9;
	uint16_t size = 1;

	(void)state;
	assert_non_null(buf);
	memcpy(buf, hdr, sizeof(hdr));
	memcpy(buf + 24, "kvm-1/vcpu-0", 12);
	memcpy(buf + 24 + NS, &flags, 4);
	memcpy(buf + 24 + NS + 4, &e, 2);
	memcpy(buf + 24 + NS + 6, &size, 2);
	memset(buf + 24 + NS + 16, 'A', NS - 1);
	assert_int_equal(kvmstats_file_open_blob(buf, len, &f, &err), 0);
	t = translate_ok(f->schema);
	assert_int_equal(t->n_families, 1);
	assert_int_equal(strlen(t->families[0].name),
			 strlen("kvm_vcpu_") + (NS - 1) + strlen("_seconds"));
	assert_int_equal(t->families[0].name[9], 'a');
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
	free(buf);
}

/*
 * Names that differ but print the same line: counter "foo" writes foo_total,
 * as a gauge named foo_total does; histogram "lat" writes lat_count, as a
 * gauge named lat_count does. One of each pair (the later descriptor) must
 * go, or Prometheus rejects the whole scrape.
 */
static void test_printed_line_clashes(void **state)
{
	static const struct syn d[] = {
		{ "foo", FLAGS(CUM, NONE, P10), 0, 1, 0 },
		{ "foo_total", FLAGS(INST, NONE, P10), 0, 1, 0 },
		{ "lat_count", FLAGS(INST, NONE, P10), 0, 1, 0 },
		{ "lat_hist", FLAGS(LIN, NONE, P10), 0, 2, 10 },
		{ "bar_total", FLAGS(INST, NONE, P10), 0, 1, 0 },
		{ "bar", FLAGS(CUM, NONE, P10), 0, 1, 0 },
		{ "plain", FLAGS(INST, NONE, P10), 0, 1, 0 },
	};
	struct kvmstats_file *f = open_syn("kvm-1", d, ELEMENTSOF(d));
	struct kvmstats_translation *t = translate_ok(f->schema);
	const char *want[] = { "kvm_vm_bar_total", "kvm_vm_foo", "kvm_vm_lat_count",
			       "kvm_vm_plain" };

	(void)state;
	assert_int_equal(t->n_families, ELEMENTSOF(want));
	for (size_t i = 0; i < ELEMENTSOF(want); i++)
		assert_string_equal(t->families[i].name, want[i]);
	assert_string_equal(t->families[1].metric, "kvm_vm_foo_total");
	assert_string_equal(t->families[0].metric, "kvm_vm_bar_total");
	assert_int_equal(t->n_skipped, 3);
	kvmstats_translation_free(t);
	kvmstats_file_free(f);
}

/* ---- filtering ---------------------------------------------------------- */

/* Keeps what is not listed in the NULL-terminated array; counts the calls. */
struct deny {
	const char *const *names;
	unsigned calls;
};

static bool keep_unless_denied(const char *metric, void *userdata)
{
	struct deny *d = userdata;

	d->calls++;
	for (const char *const *n = d->names; *n; n++)
		if (strcmp(*n, metric) == 0)
			return false;
	return true;
}

static struct kvmstats_translation *translate_filtered(const struct kvmstats_schema *s,
						       struct deny *d)
{
	struct kvmstats_translation *t = NULL;

	assert_int_equal(kvmstats_translate_filtered(s, keep_unless_denied, d, &t), 0);
	assert_non_null(t);
	return t;
}

static void test_filter(void **state)
{
	struct kvmstats_file *f = open_real(&vcpu_blob);
	struct kvmstats_translation *all, *t;
	const struct kvmstats_family *c;

	(void)state;
	all = translate_ok(f->schema);

	/* A plain counter and a gauge out, by their sample names. */
	static const char *const plain[] = { "kvm_vcpu_exits_total", "kvm_vcpu_blocking", NULL };
	struct deny d = { .names = plain };
	t = translate_filtered(f->schema, &d);
	assert_int_equal(t->n_families, all->n_families - 2);
	assert_int_equal(t->n_filtered, 2);
	assert_int_equal(t->n_skipped, all->n_skipped);
	assert_null(family(t, "kvm_vcpu_exits"));
	assert_null(family(t, "kvm_vcpu_blocking"));
	must_family(t, "kvm_vcpu_halt_exits");
	/* "kvm_vcpu_exits" (the family name) is not a sample name: it would not match. */
	assert_true(d.calls >= t->n_families);
	t = kvmstats_translation_free(t);

	/* A histogram out keeps its exact sum as a counter of its own. */
	static const char *const hist[] = { "kvm_vcpu_halt_wait_seconds", NULL };
	d = (struct deny){ .names = hist };
	t = translate_filtered(f->schema, &d);
	assert_int_equal(t->n_families, all->n_families);
	assert_int_equal(t->n_filtered, 1);
	c = must_family(t, "kvm_vcpu_halt_wait_seconds");
	assert_int_equal(c->type, KVMSTATS_METRIC_COUNTER);
	assert_string_equal(c->metric, "kvm_vcpu_halt_wait_seconds_total");
	assert_string_equal(f->schema->descs[c->desc].name, "halt_wait_ns");
	assert_int_equal(must_family(t, "kvm_vcpu_halt_poll_fail_seconds")->type,
			 KVMSTATS_METRIC_HISTOGRAM);
	t = kvmstats_translation_free(t);

	/* Both out: nothing of halt_wait is left. */
	static const char *const both[] = { "kvm_vcpu_halt_wait_seconds",
					    "kvm_vcpu_halt_wait_seconds_total", NULL };
	d = (struct deny){ .names = both };
	t = translate_filtered(f->schema, &d);
	assert_int_equal(t->n_families, all->n_families - 1);
	assert_null(family(t, "kvm_vcpu_halt_wait_seconds"));
	t = kvmstats_translation_free(t);

	/* No filter: the same as kvmstats_translate(). */
	assert_int_equal(kvmstats_translate_filtered(f->schema, NULL, NULL, &t), 0);
	assert_int_equal(t->n_families, all->n_families);
	assert_int_equal(t->n_filtered, 0);
	kvmstats_translation_free(t);
	kvmstats_translation_free(all);
	kvmstats_file_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stat_name),
		cmocka_unit_test(test_stat_name_buffer),
		cmocka_unit_test(test_real_vm),
		cmocka_unit_test(test_real_vcpu),
		cmocka_unit_test(test_unknown_kind),
		cmocka_unit_test(test_kind_prefix),
		cmocka_unit_test(test_linear_histogram),
		cmocka_unit_test(test_pow2),
		cmocka_unit_test(test_unsupported_skipped),
		cmocka_unit_test(test_unrepresentable_skipped),
		cmocka_unit_test(test_name_clash),
		cmocka_unit_test(test_histogram_sum),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_empty_schema),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_printed_line_clashes),
		cmocka_unit_test(test_filter),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
