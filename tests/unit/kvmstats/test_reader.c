/* SPDX-License-Identifier: MIT */
/*
 * The stats-file reader against real blobs of a 6.18 x86-64 kernel
 * (tests/data/), malformed variants of them (one or more per validation
 * rule), every truncation, the schema cache and, where /dev/kvm is
 * available, a live stats fd compared with its own dump.
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include <cmocka.h>

#include "golden.h"

#include "kvmstats.h"
#include "macro.h"

/* Facts about the saved blobs (tests/data/README.md). */
#define VM_BLOB       "x86_64-6.18-vm.bin"
#define VCPU_BLOB     "x86_64-6.18-vcpu.bin"
#define VM_LEN        1152u
#define VCPU_LEN      4056u
#define NAME_SIZE     48u
#define ID_OFFSET     24u
#define DESC_OFFSET   72u
#define VM_DATA_OFF   1032u
#define VCPU_DATA_OFF 2952u
#define DESC_STRIDE   (16u + NAME_SIZE)

/* Header fields and descriptor fields, as byte offsets. */
enum {
	H_FLAGS = 0,
	H_NAME_SIZE = 4,
	H_NUM_DESC = 8,
	H_ID_OFFSET = 12,
	H_DESC_OFFSET = 16,
	H_DATA_OFFSET = 20,
};
enum {
	D_FLAGS = 0,
	D_EXPONENT = 4,
	D_SIZE = 6,
	D_OFFSET = 8,
	D_BUCKET_SIZE = 12,
	D_NAME = 16,
};

#define FLAGS(type, unit, base) ((uint32_t)(type) | (uint32_t)(unit) << 4 | (uint32_t)(base) << 8)

static struct blob vm_blob, vcpu_blob;

static int group_setup(void **state)
{
	(void)state;
	if (load_data_blob(VM_BLOB, &vm_blob) < 0 || load_data_blob(VCPU_BLOB, &vcpu_blob) < 0)
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

/* A private copy to patch; exactly len bytes so that ASan sees any overread. */
static uint8_t *copy_blob(const struct blob *b)
{
	uint8_t *p = malloc(b->len);

	assert_non_null(p);
	memcpy(p, b->data, b->len);
	return p;
}

static void put_le(uint8_t *p, uint64_t v, unsigned width)
{
	uint8_t b8 = (uint8_t)v;
	uint16_t b16 = (uint16_t)v;
	uint32_t b32 = (uint32_t)v;

	switch (width) {
	case 1:
		memcpy(p, &b8, 1);
		break;
	case 2:
		memcpy(p, &b16, 2);
		break;
	case 4:
		memcpy(p, &b32, 4);
		break;
	default:
		memcpy(p, &v, 8);
		break;
	}
}

static size_t desc_at(unsigned i)
{
	return DESC_OFFSET + (size_t)i * DESC_STRIDE;
}

static const struct kvmstats_desc *find_desc(const struct kvmstats_schema *s, const char *name,
					     unsigned *ret_index)
{
	for (unsigned i = 0; i < s->num_desc; i++)
		if (strcmp(s->descs[i].name, name) == 0) {
			if (ret_index)
				*ret_index = i;
			return &s->descs[i];
		}
	fail_msg("no descriptor %s", name);
	return NULL;
}

static uint64_t value_of(const struct kvmstats_file *f, const char *name, unsigned i)
{
	return kvmstats_file_value(f, find_desc(f->schema, name, NULL), i);
}

static struct kvmstats_file *open_ok(const uint8_t *buf, size_t len)
{
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	char msg[256];
	int r;

	r = kvmstats_file_open_blob(buf, len, &f, &err);
	if (r < 0) {
		if (r == -EBADMSG)
			kvmstats_error_format(&err, msg, sizeof(msg));
		else
			snprintf(msg, sizeof(msg), "%s", strerror(-r));
		fail_msg("open_blob: %d: %s", r, msg);
	}
	assert_non_null(f);
	return f;
}

/* ---- the real blobs ---------------------------------------------------- */

static void test_real_vm(void **state)
{
	struct kvmstats_file *f;
	const struct kvmstats_schema *s;
	const struct kvmstats_desc *d;

	(void)state;
	assert_int_equal(vm_blob.len, VM_LEN);
	f = open_ok(vm_blob.data, vm_blob.len);
	s = f->schema;

	assert_string_equal(f->id, "kvm-5702");
	assert_int_equal(f->kind, KVMSTATS_KIND_VM);
	assert_int_equal(f->id_pid, 5702);
	assert_int_equal(f->vcpu, -1);
	assert_int_equal(f->fd, -1);
	assert_int_equal(f->blob_size, VM_LEN);
	assert_int_equal(s->kind, KVMSTATS_KIND_VM);
	assert_int_equal(s->n_ref, 1);
	assert_int_equal(s->num_desc, 15);
	assert_int_equal(s->name_size, NAME_SIZE);
	assert_int_equal(s->data_offset, VM_DATA_OFF);
	assert_int_equal(s->data_size, 15 * 8);
	assert_int_equal(s->data_offset + s->data_size, VM_LEN);
	assert_int_equal(s->n_unsupported, 0);

	for (unsigned i = 0; i < s->num_desc; i++) {
		d = &s->descs[i];
		assert_true(d->supported);
		assert_int_equal(d->size, 1);
		assert_int_equal(d->unit, KVMSTATS_UNIT_NONE);
		assert_int_equal(d->base, KVMSTATS_BASE_POW10);
		assert_int_equal(d->exponent, 0);
		assert_int_equal(d->bucket_size, 0);
	}
	assert_string_equal(s->descs[0].name, "remote_tlb_flush");
	assert_string_equal(s->descs[14].name, "max_mmu_page_hash_collisions");
	assert_int_equal(find_desc(s, "mmu_cache_miss", NULL)->type, KVMSTATS_TYPE_CUMULATIVE);
	assert_int_equal(find_desc(s, "pages_4k", NULL)->type, KVMSTATS_TYPE_INSTANT);
	d = find_desc(s, "max_mmu_rmap_size", NULL);
	assert_int_equal(d->type, KVMSTATS_TYPE_PEAK);
	/* Offsets need not follow descriptor order: the kernel's last two are swapped. */
	assert_int_equal(d->offset, 112);
	assert_int_equal(find_desc(s, "max_mmu_page_hash_collisions", NULL)->offset, 104);

	/* README: the VM file has mmu_cache_miss 4 and zero everywhere else. */
	for (unsigned i = 0; i < s->num_desc; i++)
		assert_int_equal(kvmstats_file_value(f, &s->descs[i], 0),
				 strcmp(s->descs[i].name, "mmu_cache_miss") == 0 ? 4 : 0);

	/* A blob re-reads from its own copy. */
	assert_int_equal(kvmstats_file_read(f), 0);
	assert_int_equal(value_of(f, "mmu_cache_miss", 0), 4);
	assert_null(kvmstats_file_free(f));
}

static void test_real_vcpu(void **state)
{
	static const char *const hists[] = {
		"halt_poll_success_hist",
		"halt_poll_fail_hist",
		"halt_wait_hist",
	};
	struct kvmstats_file *f;
	const struct kvmstats_schema *s;
	unsigned n_hist = 0, idx;

	(void)state;
	assert_int_equal(vcpu_blob.len, VCPU_LEN);
	f = open_ok(vcpu_blob.data, vcpu_blob.len);
	s = f->schema;

	assert_string_equal(f->id, "kvm-5702/vcpu-0");
	assert_int_equal(f->kind, KVMSTATS_KIND_VCPU);
	assert_int_equal(f->id_pid, 5702);
	assert_int_equal(f->vcpu, 0);
	assert_int_equal(s->kind, KVMSTATS_KIND_VCPU);
	assert_int_equal(s->num_desc, 45);
	assert_int_equal(s->name_size, NAME_SIZE);
	assert_int_equal(s->data_offset, VCPU_DATA_OFF);
	/* 42 scalars and 3 histograms of 32 buckets. */
	assert_int_equal(s->data_size, (42 + 3 * 32) * 8);
	assert_int_equal(s->data_offset + s->data_size, VCPU_LEN);
	assert_int_equal(s->n_unsupported, 0);

	for (unsigned i = 0; i < s->num_desc; i++) {
		const struct kvmstats_desc *d = &s->descs[i];

		assert_true(d->supported);
		if (d->type == KVMSTATS_TYPE_LOG_HIST) {
			n_hist++;
			continue;
		}
		assert_int_equal(d->size, 1);
		assert_true(d->type == KVMSTATS_TYPE_CUMULATIVE ||
			    d->type == KVMSTATS_TYPE_INSTANT);
	}
	assert_int_equal(n_hist, 3);

	for (size_t h = 0; h < ELEMENTSOF(hists); h++) {
		const struct kvmstats_desc *d = find_desc(s, hists[h], &idx);

		assert_int_equal(idx, 7 + h);
		assert_int_equal(d->type, KVMSTATS_TYPE_LOG_HIST);
		assert_int_equal(d->unit, KVMSTATS_UNIT_SECONDS);
		assert_int_equal(d->base, KVMSTATS_BASE_POW10);
		assert_int_equal(d->exponent, -9);
		assert_int_equal(d->size, 32);
		assert_int_equal(d->bucket_size, 0);
		assert_int_equal(kvmstats_desc_radix(d), 10);
	}
	assert_int_equal(find_desc(s, "halt_wait_ns", NULL)->unit, KVMSTATS_UNIT_SECONDS);
	assert_int_equal(find_desc(s, "halt_wait_ns", NULL)->exponent, -9);
	assert_int_equal(find_desc(s, "blocking", NULL)->unit, KVMSTATS_UNIT_BOOLEAN);
	assert_int_equal(find_desc(s, "guest_mode", NULL)->unit, KVMSTATS_UNIT_BOOLEAN);

	/* Values from tests/data/README.md. */
	assert_int_equal(value_of(f, "halt_exits", 0), 50);
	assert_int_equal(value_of(f, "exits", 0), 101);
	assert_int_equal(value_of(f, "signal_exits", 0), 50);
	assert_int_equal(value_of(f, "insn_emulation", 0), 152);
	assert_int_equal(value_of(f, "halt_poll_success_ns", 0), 2689347);
	assert_int_equal(value_of(f, "halt_poll_fail_ns", 0), 60410);
	assert_int_equal(value_of(f, "halt_wait_ns", 0), 128351);
	assert_int_equal(value_of(f, "halt_poll_success_hist", 15), 1);
	assert_int_equal(value_of(f, "halt_poll_success_hist", 16), 31);
	assert_int_equal(value_of(f, "halt_poll_success_hist", 17), 14);
	assert_int_equal(value_of(f, "halt_poll_fail_hist", 8), 1);
	assert_int_equal(value_of(f, "halt_wait_hist", 15), 1);
	assert_int_equal(value_of(f, "halt_wait_hist", 16), 2);
	assert_int_equal(value_of(f, "halt_wait_hist", 0), 0);
	assert_int_equal(value_of(f, "halt_wait_hist", 31), 0);
	assert_null(kvmstats_file_free(f));
}

static void test_open_blob_null(void **state)
{
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;

	(void)state;
	assert_int_equal(kvmstats_file_open_blob(NULL, 10, &f, &err), -EINVAL);
	assert_null(f);
	/* ret_err is optional. */
	assert_int_equal(kvmstats_file_open_blob(vm_blob.data, 3, &f, NULL), -EBADMSG);
	assert_null(f);
	f = NULL;
	assert_int_equal(kvmstats_file_open_blob(vm_blob.data, vm_blob.len, &f, NULL), 0);
	kvmstats_file_free(f);
	assert_null(kvmstats_file_free(NULL));
	assert_null(kvmstats_schema_unref(NULL));
}

/* ---- malformed files: one or more variants per rule ---------------------- */

enum patch_kind {
	AT_HEADER,   /* write `value` into header field `field` */
	AT_DESC,     /* write `value` into field `field` of descriptor `desc` */
	AT_BYTES,    /* memset `width` bytes at absolute offset `field` to `value` */
	AT_KEEP,     /* keep only the first `value` bytes */
	AT_ALL_DESC, /* write `value` into field `field` of every descriptor */
};

struct variant {
	enum kvmstats_rule rule;
	const char *what;
	bool vcpu;
	enum patch_kind kind;
	int desc; /* descriptor patched (AT_DESC) and expected in err.desc; else -1 */
	size_t field;
	unsigned width;
	uint64_t value;
	size_t field2; /* AT_HEADER: a second u32 header field to set, if value2 != 0 */
	uint64_t value2;
	const char *desc_name; /* expected err.desc_name, or NULL not to check */
};

#define HDR(r, w, f, v)                                                                            \
	{                                                                                          \
		.rule = r, .what = w, .kind = AT_HEADER, .desc = -1, .field = f, .width = 4,       \
		.value = v                                                                         \
	}
#define DSC(r, w, vc, i, f, n, v, dn)                                                              \
	{                                                                                          \
		.rule = r, .what = w, .vcpu = vc, .kind = AT_DESC, .desc = i, .field = f,          \
		.width = n, .value = v, .desc_name = dn                                            \
	}

static const struct variant variants[] = {
	{ .rule = KVMSTATS_RULE_SHORT_HEADER,
	  .what = "23-byte file",
	  .kind = AT_KEEP,
	  .desc = -1,
	  .value = 23 },
	{ .rule = KVMSTATS_RULE_SHORT_HEADER,
	  .what = "empty file",
	  .kind = AT_KEEP,
	  .desc = -1,
	  .value = 0 },
	HDR(KVMSTATS_RULE_HEADER_FLAGS, "flags 1", H_FLAGS, 1),
	HDR(KVMSTATS_RULE_HEADER_FLAGS, "flags 0x80000000", H_FLAGS, 0x80000000u),
	HDR(KVMSTATS_RULE_NAME_SIZE, "name_size 0", H_NAME_SIZE, 0),
	HDR(KVMSTATS_RULE_NAME_SIZE, "name_size 4097", H_NAME_SIZE, KVMSTATS_MAX_NAME_SIZE + 1),
	HDR(KVMSTATS_RULE_NAME_SIZE, "name_size 0xffffffff", H_NAME_SIZE, 0xffffffffu),
	HDR(KVMSTATS_RULE_NUM_DESC, "num_desc 65537", H_NUM_DESC, KVMSTATS_MAX_NUM_DESC + 1),
	HDR(KVMSTATS_RULE_NUM_DESC, "num_desc 0xffffffff", H_NUM_DESC, 0xffffffffu),
	/* 65536 descriptors are allowed, but not 65536 * (16 + 100) bytes of them (> 4 MiB). */
	{ .rule = KVMSTATS_RULE_NUM_DESC,
	  .what = "descriptor block over 4 MiB",
	  .kind = AT_HEADER,
	  .desc = -1,
	  .field = H_NUM_DESC,
	  .width = 4,
	  .value = KVMSTATS_MAX_NUM_DESC,
	  .field2 = H_NAME_SIZE,
	  .value2 = 100 },
	HDR(KVMSTATS_RULE_ID_READ, "id past the end", H_ID_OFFSET, VM_LEN - 10),
	HDR(KVMSTATS_RULE_ID_READ, "id offset 0xffffffff", H_ID_OFFSET, 0xffffffffu),
	{ .rule = KVMSTATS_RULE_ID_READ,
	  .what = "file ends inside the id",
	  .kind = AT_KEEP,
	  .desc = -1,
	  .value = ID_OFFSET + NAME_SIZE - 1 },
	{ .rule = KVMSTATS_RULE_ID_UNTERMINATED,
	  .what = "id without NUL",
	  .kind = AT_BYTES,
	  .desc = -1,
	  .field = ID_OFFSET,
	  .width = NAME_SIZE,
	  .value = 'k' },
	{ .rule = KVMSTATS_RULE_ID_PREFIX,
	  .what = "id \"xvm-5702\"",
	  .kind = AT_BYTES,
	  .desc = -1,
	  .field = ID_OFFSET,
	  .width = 1,
	  .value = 'x' },
	{ .rule = KVMSTATS_RULE_ID_PREFIX,
	  .what = "id \"kvx-5702\"",
	  .kind = AT_BYTES,
	  .desc = -1,
	  .field = ID_OFFSET + 2,
	  .width = 1,
	  .value = 'x' },
	{ .rule = KVMSTATS_RULE_ID_PREFIX,
	  .what = "empty id",
	  .kind = AT_BYTES,
	  .desc = -1,
	  .field = ID_OFFSET,
	  .width = 1,
	  .value = 0 },
	HDR(KVMSTATS_RULE_OFFSETS, "desc_offset 23", H_DESC_OFFSET, 23),
	HDR(KVMSTATS_RULE_OFFSETS, "data_offset 0", H_DATA_OFFSET, 0),
	HDR(KVMSTATS_RULE_DESC_OVERLAP, "data block starts in the descriptor block", H_DATA_OFFSET,
	    DESC_OFFSET + DESC_STRIDE),
	HDR(KVMSTATS_RULE_DESC_OVERLAP, "data block starts with the descriptor block",
	    H_DATA_OFFSET, DESC_OFFSET),
	{ .rule = KVMSTATS_RULE_DESC_READ,
	  .what = "file ends inside the descriptors",
	  .kind = AT_KEEP,
	  .desc = -1,
	  .value = 500 },
	HDR(KVMSTATS_RULE_DESC_READ, "descriptor block past the end", H_DESC_OFFSET, VM_LEN),
	{ .rule = KVMSTATS_RULE_NAME_UNTERMINATED,
	  .what = "name without NUL",
	  .kind = AT_BYTES,
	  .desc = 3,
	  .field = DESC_OFFSET + 3 * DESC_STRIDE + D_NAME,
	  .width = NAME_SIZE,
	  .value = 'a' },
	DSC(KVMSTATS_RULE_NAME_EMPTY, "empty name", false, 5, D_NAME, 1, 0, NULL),
	DSC(KVMSTATS_RULE_EXPONENT, "NONE with exponent -1", false, 7, D_EXPONENT, 2, 0xffff,
	    "mmu_cache_miss"),
	DSC(KVMSTATS_RULE_EXPONENT, "SECONDS with exponent +1", true, 6, D_EXPONENT, 2, 1,
	    "halt_wait_ns"),
	DSC(KVMSTATS_RULE_EXPONENT, "BOOLEAN with exponent 1", true, 10, D_EXPONENT, 2, 1,
	    "blocking"),
	DSC(KVMSTATS_RULE_EXPONENT, "BYTES with exponent -3", false, 9, D_FLAGS, 8,
	    FLAGS(KVMSTATS_TYPE_INSTANT, KVMSTATS_UNIT_BYTES, 0) | (uint64_t)0xfffd << 32 |
		    (uint64_t)1 << 48 /* size 1 */,
	    "pages_4k"),
	DSC(KVMSTATS_RULE_SIZE_ZERO, "size 0", false, 2, D_SIZE, 2, 0, "mmu_shadow_zapped"),
	DSC(KVMSTATS_RULE_SIZE_ZERO, "histogram of size 0", true, 9, D_SIZE, 2, 0,
	    "halt_wait_hist"),
	DSC(KVMSTATS_RULE_BUCKET_SIZE, "bucket_size on a counter", false, 4, D_BUCKET_SIZE, 4, 8,
	    "mmu_pde_zapped"),
	DSC(KVMSTATS_RULE_BUCKET_SIZE, "bucket_size on a log histogram", true, 9, D_BUCKET_SIZE, 4,
	    1, "halt_wait_hist"),
	DSC(KVMSTATS_RULE_BUCKET_SIZE, "linear histogram without bucket_size", true, 9, D_FLAGS, 4,
	    FLAGS(KVMSTATS_TYPE_LINEAR_HIST, KVMSTATS_UNIT_SECONDS, 0), "halt_wait_hist"),
	DSC(KVMSTATS_RULE_VALUE_RANGE, "offset at the data size bound", false, 6, D_OFFSET, 4,
	    KVMSTATS_MAX_DATA_SIZE, "mmu_recycled"),
	DSC(KVMSTATS_RULE_VALUE_RANGE, "offset 0xfffffff8", false, 6, D_OFFSET, 4, 0xfffffff8u,
	    "mmu_recycled"),
	HDR(KVMSTATS_RULE_DATA_OVERLAP, "data block runs into the descriptor block", H_DATA_OFFSET,
	    30),
	{ .rule = KVMSTATS_RULE_DATA_SIZE,
	  .what = "every value at offset 0",
	  .kind = AT_ALL_DESC,
	  .desc = -1,
	  .field = D_OFFSET,
	  .width = 4,
	  .value = 0 },
	{ .rule = KVMSTATS_RULE_DATA_READ,
	  .what = "file one byte short",
	  .kind = AT_KEEP,
	  .desc = -1,
	  .value = VM_LEN - 1 },
	{ .rule = KVMSTATS_RULE_DATA_READ,
	  .what = "file ends at the data block",
	  .kind = AT_KEEP,
	  .desc = -1,
	  .value = VM_DATA_OFF },
	/* Within every bound, but past the end of this file. */
	{ .rule = KVMSTATS_RULE_DATA_READ,
	  .what = "last value range grown to 65535 values",
	  .vcpu = true,
	  .kind = AT_BYTES,
	  .desc = -1,
	  .field = DESC_OFFSET + 44 * DESC_STRIDE + D_SIZE,
	  .width = 2,
	  .value = 0xff },
};

static void apply(const struct variant *v, uint8_t *buf, size_t *len)
{
	switch (v->kind) {
	case AT_HEADER:
		put_le(buf + v->field, v->value, v->width);
		if (v->value2)
			put_le(buf + v->field2, v->value2, 4);
		break;
	case AT_DESC:
		put_le(buf + desc_at((unsigned)v->desc) + v->field, v->value, v->width);
		break;
	case AT_BYTES:
		memset(buf + v->field, (int)v->value, v->width);
		break;
	case AT_KEEP:
		*len = (size_t)v->value;
		break;
	case AT_ALL_DESC: {
		uint32_t n;

		memcpy(&n, buf + H_NUM_DESC, sizeof(n));
		for (unsigned i = 0; i < n; i++)
			put_le(buf + desc_at(i) + v->field, v->value, v->width);
		break;
	}
	}
}

static void check_variant(const struct variant *v)
{
	const struct blob *b = v->vcpu ? &vcpu_blob : &vm_blob;
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	uint8_t *buf = copy_blob(b), *exact;
	size_t len = b->len;
	char msg[512];
	int r;

	apply(v, buf, &len);
	/* An exactly sized copy: reading one byte past the end is an ASan report. */
	exact = malloc(len ? len : 1);
	assert_non_null(exact);
	memcpy(exact, buf, len);
	memset(&err, 0xa5, sizeof(err));
	r = kvmstats_file_open_blob(exact, len, &f, &err);
	kvmstats_error_format(&err, msg, sizeof(msg));
	if (r != -EBADMSG || err.rule != v->rule || err.desc != v->desc)
		fail_msg("%s: got %d, rule %d, desc %d (%s); want rule %d (%s), desc %d", v->what,
			 r, err.rule, err.desc, msg, v->rule, kvmstats_rule_to_string(v->rule),
			 v->desc);
	assert_null(f);
	/* The message names the rule and, for descriptor rules, the descriptor. */
	assert_non_null(strstr(msg, kvmstats_rule_to_string(v->rule)));
	if (v->desc >= 0) {
		char want[64];

		snprintf(want, sizeof(want), "descriptor %d", v->desc);
		assert_non_null(strstr(msg, want));
	}
	if (v->desc_name)
		assert_string_equal(err.desc_name, v->desc_name);
	if (v->desc < 0)
		assert_string_equal(err.desc_name, "");
	free(exact);
	free(buf);
}

static void test_malformed_every_rule(void **state)
{
	(void)state;
	/* Every rule has a variant here: a new rule without a test fails this. */
	for (int rule = KVMSTATS_RULE_NONE + 1; rule < KVMSTATS_RULE__MAX; rule++) {
		bool found = false;

		for (size_t i = 0; i < ELEMENTSOF(variants); i++)
			found = found || variants[i].rule == (enum kvmstats_rule)rule;
		if (!found)
			fail_msg("no malformed variant for rule %d (%s)", rule,
				 kvmstats_rule_to_string((enum kvmstats_rule)rule));
		assert_string_not_equal(kvmstats_rule_to_string((enum kvmstats_rule)rule),
					"unknown rule");
	}
	for (size_t i = 0; i < ELEMENTSOF(variants); i++)
		check_variant(&variants[i]);
}

/* Error values: the offending number is reported. */
static void test_error_values(void **state)
{
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	uint8_t *buf = copy_blob(&vm_blob);

	(void)state;
	put_le(buf + H_FLAGS, 7, 4);
	assert_int_equal(kvmstats_file_open_blob(buf, vm_blob.len, &f, &err), -EBADMSG);
	assert_int_equal(err.rule, KVMSTATS_RULE_HEADER_FLAGS);
	assert_int_equal(err.value, 7);
	memcpy(buf, vm_blob.data, vm_blob.len);

	put_le(buf + desc_at(7) + D_EXPONENT, (uint16_t)-4, 2);
	assert_int_equal(kvmstats_file_open_blob(buf, vm_blob.len, &f, &err), -EBADMSG);
	assert_int_equal(err.rule, KVMSTATS_RULE_EXPONENT);
	assert_int_equal(err.desc, 7);
	assert_int_equal(err.value, -4);
	memcpy(buf, vm_blob.data, vm_blob.len);

	assert_int_equal(kvmstats_file_open_blob(buf, 10, &f, &err), -EBADMSG);
	assert_int_equal(err.rule, KVMSTATS_RULE_SHORT_HEADER);
	assert_int_equal(err.value, 10);
	assert_null(f);
	free(buf);
}

/* ---- unknown type, unit or base: skipped, not fatal ---------------------- */

static void test_unsupported_not_fatal(void **state)
{
	static const struct {
		unsigned desc;
		uint32_t flags;
		uint32_t bucket_size;
		int16_t exponent;
	} cases[] = {
		{ 0, FLAGS(5, 0, 0), 0, 0 },
		{ 1, FLAGS(15, 0, 0), 99, 0 }, /* unknown type: bucket_size rule unknown too */
		{ 2, FLAGS(0, 5, 0), 0, -3 },  /* unknown unit: exponent rule unknown too */
		{ 3, FLAGS(0, 15, 0), 0, 7 },
		{ 4, FLAGS(0, 0, 2), 0, 0 },
		{ 5, FLAGS(1, 0, 15), 0, 0 },
		{ 6, 0xfff | 0xfff000, 0, 1 }, /* everything unknown, high bits set */
	};
	uint8_t *buf = copy_blob(&vm_blob);

	(void)state;
	/* One at a time, then all together. */
	for (size_t c = 0; c <= ELEMENTSOF(cases); c++) {
		struct kvmstats_file *f;

		memcpy(buf, vm_blob.data, vm_blob.len);
		for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
			if (c < ELEMENTSOF(cases) && i != c)
				continue;
			uint8_t *d = buf + desc_at(cases[i].desc);

			put_le(d + D_FLAGS, cases[i].flags, 4);
			put_le(d + D_BUCKET_SIZE, cases[i].bucket_size, 4);
			put_le(d + D_EXPONENT, (uint16_t)cases[i].exponent, 2);
		}
		f = open_ok(buf, vm_blob.len);
		assert_int_equal(f->schema->num_desc, 15);
		assert_int_equal(f->schema->n_unsupported,
				 c < ELEMENTSOF(cases) ? 1 : ELEMENTSOF(cases));
		for (unsigned i = 0; i < f->schema->num_desc; i++) {
			bool patched = false;

			for (size_t k = 0; k < ELEMENTSOF(cases); k++)
				patched = patched || (cases[k].desc == i &&
						      (c == ELEMENTSOF(cases) || c == k));
			assert_int_equal(f->schema->descs[i].supported, !patched);
		}
		/* The rest still reads. */
		assert_int_equal(value_of(f, "mmu_cache_miss", 0), 4);
		kvmstats_file_free(f);
	}
	free(buf);
}

/* ---- truncation at every length ----------------------------------------- */

static void check_truncations(const struct blob *b, uint32_t data_offset)
{
	for (size_t len = 0; len < b->len; len++) {
		struct kvmstats_file *f = NULL;
		struct kvmstats_error err;
		enum kvmstats_rule want;
		uint8_t *buf = malloc(len ? len : 1);
		int r;

		assert_non_null(buf);
		memcpy(buf, b->data, len);
		r = kvmstats_file_open_blob(buf, len, &f, &err);
		if (len < 24)
			want = KVMSTATS_RULE_SHORT_HEADER;
		else if (len < ID_OFFSET + NAME_SIZE)
			want = KVMSTATS_RULE_ID_READ;
		else if (len < data_offset)
			want = KVMSTATS_RULE_DESC_READ;
		else
			want = KVMSTATS_RULE_DATA_READ;
		if (r != -EBADMSG || err.rule != want)
			fail_msg("length %zu of %zu: got %d rule %d, want rule %d", len, b->len, r,
				 err.rule, want);
		assert_null(f);
		free(buf);
	}
}

static void test_truncated(void **state)
{
	(void)state;
	check_truncations(&vm_blob, VM_DATA_OFF);
	check_truncations(&vcpu_blob, VCPU_DATA_OFF);
}

/* Bytes after the data block (a longer dump) are ignored. */
static void test_trailing_bytes(void **state)
{
	uint8_t *buf = calloc(1, vm_blob.len + 100);
	struct kvmstats_file *f;

	(void)state;
	assert_non_null(buf);
	memcpy(buf, vm_blob.data, vm_blob.len);
	f = open_ok(buf, vm_blob.len + 100);
	assert_int_equal(f->schema->data_size, 120);
	assert_int_equal(value_of(f, "mmu_cache_miss", 0), 4);
	kvmstats_file_free(f);
	free(buf);
}

/* ---- ids ---------------------------------------------------------------- */

static void test_parse_id(void **state)
{
	static const struct {
		const char *id;
		enum kvmstats_kind kind;
		pid_t pid;
		int vcpu;
	} cases[] = {
		{ "kvm-5702", KVMSTATS_KIND_VM, 5702, -1 },
		{ "kvm-1", KVMSTATS_KIND_VM, 1, -1 },
		{ "kvm-2147483647", KVMSTATS_KIND_VM, 2147483647, -1 },
		{ "kvm-5702/vcpu-0", KVMSTATS_KIND_VCPU, 5702, 0 },
		{ "kvm-5702/vcpu-17", KVMSTATS_KIND_VCPU, 5702, 17 },
		{ "kvm-1/vcpu-2147483647", KVMSTATS_KIND_VCPU, 1, 2147483647 },
		{ "kvm-0", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-2147483648", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-99999999999999999999999", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-+5", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm- 5", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm--5", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12a", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "KVM-12", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12 ", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12/", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12/vcpu-", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12/vcpu--1", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12/vcpu-+1", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12/vcpu-3x", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12/vcpu-3/", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12/vcpu-2147483648", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12/vcpu-99999999999999999999999", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12/cpu-3", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvm-12/vcpu3", KVMSTATS_KIND_UNKNOWN, 0, 0 },
		{ "kvmx-12", KVMSTATS_KIND_UNKNOWN, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		pid_t pid = -7;
		int vcpu = -7;
		enum kvmstats_kind k = kvmstats_parse_id(cases[i].id, &pid, &vcpu);

		if (k != cases[i].kind)
			fail_msg("\"%s\": kind %d, want %d", cases[i].id, k, cases[i].kind);
		if (k == KVMSTATS_KIND_UNKNOWN)
			continue;
		assert_int_equal(pid, cases[i].pid);
		assert_int_equal(vcpu, cases[i].vcpu);
		/* Output pointers are optional. */
		assert_int_equal(kvmstats_parse_id(cases[i].id, NULL, NULL), k);
	}
}

/* A file whose id is "kvm..." but neither form loads, with kind UNKNOWN. */
static void test_unknown_kind_loads(void **state)
{
	uint8_t *buf = copy_blob(&vm_blob);
	struct kvmstats_file *f;

	(void)state;
	memcpy(buf + ID_OFFSET, "kvm-abc", 8);
	f = open_ok(buf, vm_blob.len);
	assert_string_equal(f->id, "kvm-abc");
	assert_int_equal(f->kind, KVMSTATS_KIND_UNKNOWN);
	assert_int_equal(f->schema->kind, KVMSTATS_KIND_UNKNOWN);
	assert_int_equal(f->vcpu, -1);
	assert_int_equal(f->id_pid, 0);
	kvmstats_file_free(f);
	free(buf);
}

/* ---- error messages ---------------------------------------------------- */

static void test_error_format(void **state)
{
	struct kvmstats_error err = { .rule = KVMSTATS_RULE_EXPONENT, .desc = 7, .value = -1 };
	struct kvmstats_file *f = NULL;
	uint8_t *buf = copy_blob(&vm_blob);
	char msg[256];
	int r;

	(void)state;
	snprintf(err.desc_name, sizeof(err.desc_name), "mmu_cache_miss");
	r = kvmstats_error_format(&err, msg, sizeof(msg));
	assert_string_equal(msg, "descriptor exponent has the wrong sign for its unit "
				 "(descriptor 7 \"mmu_cache_miss\", value -1)");
	assert_int_equal(r, (int)strlen(msg));

	/* From a real failure: rule sentence and descriptor name. */
	put_le(buf + desc_at(13) + D_SIZE, 0, 2);
	assert_int_equal(kvmstats_file_open_blob(buf, vm_blob.len, &f, &err), -EBADMSG);
	kvmstats_error_format(&err, msg, sizeof(msg));
	assert_string_equal(msg, "descriptor size is zero (descriptor 13 \"max_mmu_rmap_size\", "
				 "value 0)");

	/* A file-level rule has no descriptor part. */
	err = (struct kvmstats_error){ .rule = KVMSTATS_RULE_ID_PREFIX, .desc = -1, .value = -1 };
	kvmstats_error_format(&err, msg, sizeof(msg));
	assert_string_equal(msg, "id string does not start with \"kvm\" (value -1)");

	/* A descriptor whose name is unknown (empty name rule). */
	err = (struct kvmstats_error){ .rule = KVMSTATS_RULE_NAME_EMPTY, .desc = 3 };
	kvmstats_error_format(&err, msg, sizeof(msg));
	assert_string_equal(msg, "descriptor name is empty (descriptor 3, value 0)");

	/* Out-of-range rules have a sentence too. */
	assert_string_equal(kvmstats_rule_to_string(KVMSTATS_RULE__MAX), "unknown rule");
	assert_string_equal(kvmstats_rule_to_string((enum kvmstats_rule) - 1), "unknown rule");

	/* A short buffer truncates (snprintf semantics) and reports the full length. */
	err = (struct kvmstats_error){ .rule = KVMSTATS_RULE_ID_PREFIX, .desc = -1, .value = -1 };
	r = kvmstats_error_format(&err, msg, 10);
	assert_int_equal(strlen(msg), 9);
	assert_int_equal(r, (int)strlen("id string does not start with \"kvm\" (value -1)"));

	/* Hostile names are made printable and shortened in the error. */
	memcpy(buf, vm_blob.data, vm_blob.len);
	memcpy(buf + desc_at(2) + D_NAME, "a\"b\nc\x7f\xff", 8);
	put_le(buf + desc_at(2) + D_SIZE, 0, 2);
	assert_int_equal(kvmstats_file_open_blob(buf, vm_blob.len, &f, &err), -EBADMSG);
	assert_int_equal(err.rule, KVMSTATS_RULE_SIZE_ZERO);
	assert_string_equal(err.desc_name, "a?b?c??");
	free(buf);
}

static void test_error_long_name(void **state)
{
	/* A 200-byte name_size so that the name exceeds desc_name[64]. */
	enum { NS = 200 };
	size_t len = 24 + NS + (16 + NS) + 8;
	uint8_t *buf = calloc(1, len);
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	uint8_t *d;

	(void)state;
	assert_non_null(buf);
	put_le(buf + H_NAME_SIZE, NS, 4);
	put_le(buf + H_NUM_DESC, 1, 4);
	put_le(buf + H_ID_OFFSET, 24, 4);
	put_le(buf + H_DESC_OFFSET, 24 + NS, 4);
	put_le(buf + H_DATA_OFFSET, 24 + NS + 16 + NS, 4);
	memcpy(buf + 24, "kvm-1", 5);
	d = buf + 24 + NS;
	put_le(d + D_EXPONENT, (uint16_t)-1, 2); /* NONE with a negative exponent */
	put_le(d + D_SIZE, 1, 2);
	memset(d + D_NAME, 'n', NS - 1);
	assert_int_equal(kvmstats_file_open_blob(buf, len, &f, &err), -EBADMSG);
	assert_int_equal(err.rule, KVMSTATS_RULE_EXPONENT);
	assert_int_equal(strlen(err.desc_name), sizeof(err.desc_name) - 1);
	assert_int_equal(err.desc_name[0], 'n');

	/* The same file with a valid exponent loads, with the full name. */
	put_le(d + D_EXPONENT, 0, 2);
	f = open_ok(buf, len);
	assert_int_equal(strlen(f->schema->descs[0].name), NS - 1);
	kvmstats_file_free(f);
	free(buf);
}

/* ---- schemas ----------------------------------------------------------- */

static unsigned userdata_frees;

static void count_userdata_free(void *p)
{
	(void)p;
	userdata_frees++;
}

static void test_schema_cache(void **state)
{
	struct kvmstats_schema_cache *c = kvmstats_schema_cache_new();
	struct kvmstats_file *a, *b, *v0, *v1;
	struct kvmstats_schema *shared;
	uint8_t *buf = copy_blob(&vcpu_blob);

	(void)state;
	assert_non_null(c);
	a = open_ok(vm_blob.data, vm_blob.len);
	b = open_ok(vm_blob.data, vm_blob.len);
	v0 = open_ok(vcpu_blob.data, vcpu_blob.len);
	/* Another vCPU of the same VM: different id, same schema. */
	memcpy(buf + ID_OFFSET, "kvm-5702/vcpu-1", 16);
	v1 = open_ok(buf, vcpu_blob.len);
	assert_int_equal(v1->vcpu, 1);

	assert_ptr_not_equal(a->schema, b->schema);
	assert_true(kvmstats_schema_equal(a->schema, b->schema));
	assert_true(kvmstats_schema_equal(v0->schema, v1->schema));
	assert_false(kvmstats_schema_equal(a->schema, v0->schema));

	assert_int_equal(kvmstats_schema_cache_intern(c, a), 0);
	shared = a->schema;
	assert_int_equal(shared->n_ref, 2); /* a and the cache */
	shared->userdata = shared;
	shared->userdata_free = count_userdata_free;
	assert_int_equal(kvmstats_schema_cache_intern(c, b), 0);
	assert_ptr_equal(b->schema, shared);
	assert_int_equal(shared->n_ref, 3);
	/* Interning twice is harmless. */
	assert_int_equal(kvmstats_schema_cache_intern(c, b), 0);
	assert_ptr_equal(b->schema, shared);
	assert_int_equal(shared->n_ref, 3);

	assert_int_equal(kvmstats_schema_cache_intern(c, v0), 0);
	assert_int_equal(kvmstats_schema_cache_intern(c, v1), 0);
	assert_ptr_equal(v0->schema, v1->schema);
	assert_ptr_not_equal(v0->schema, shared);
	v0->schema->userdata_free = count_userdata_free;
	assert_int_equal(v0->schema->n_ref, 3);

	/* Values stay per file: the schema is shared, the data is not. */
	assert_int_equal(value_of(a, "mmu_cache_miss", 0), 4);
	assert_int_equal(value_of(v1, "exits", 0), 101);

	/* In use: prune keeps both. */
	kvmstats_schema_cache_prune(c);
	assert_int_equal(userdata_frees, 0);

	kvmstats_file_free(a);
	kvmstats_file_free(b);
	assert_int_equal(shared->n_ref, 1);
	kvmstats_schema_cache_prune(c);
	assert_int_equal(userdata_frees, 1); /* the VM schema, and only it */

	kvmstats_file_free(v0);
	assert_int_equal(v1->schema->n_ref, 2);
	kvmstats_schema_cache_prune(c);
	assert_int_equal(userdata_frees, 1);

	/* A new file of a pruned schema gets a fresh cache entry. */
	a = open_ok(vm_blob.data, vm_blob.len);
	assert_int_equal(kvmstats_schema_cache_intern(c, a), 0);
	assert_int_equal(a->schema->n_ref, 2);

	/* The cache's references go with it; the files keep theirs. */
	assert_null(kvmstats_schema_cache_free(c));
	assert_int_equal(userdata_frees, 1);
	assert_int_equal(v1->schema->n_ref, 1);
	assert_int_equal(a->schema->n_ref, 1);
	kvmstats_file_free(v1);
	assert_int_equal(userdata_frees, 2);
	kvmstats_file_free(a);
	assert_null(kvmstats_schema_cache_free(NULL));
	free(buf);
}

static void test_schema_equal(void **state)
{
	static const struct {
		const char *what;
		unsigned desc;
		size_t field;
		unsigned width;
		uint64_t value;
	} changes[] = {
		{ "type", 8, D_FLAGS, 4, FLAGS(KVMSTATS_TYPE_PEAK, 0, 0) },
		{ "unknown unit", 8, D_FLAGS, 4, FLAGS(KVMSTATS_TYPE_INSTANT, 9, 0) },
		{ "exponent", 0, D_EXPONENT, 2, 3 },
		{ "name", 9, D_NAME + 7, 1, 'K' },
	};
	struct kvmstats_file *a, *b;
	uint8_t *buf = copy_blob(&vm_blob);

	(void)state;
	a = open_ok(vm_blob.data, vm_blob.len);
	assert_true(kvmstats_schema_equal(a->schema, a->schema));

	/* Another VM (other id, other values): same schema. */
	memcpy(buf + ID_OFFSET, "kvm-77", 7);
	put_le(buf + VM_DATA_OFF, 12345, 8);
	b = open_ok(buf, vm_blob.len);
	assert_true(kvmstats_schema_equal(a->schema, b->schema));
	assert_true(kvmstats_schema_equal(b->schema, a->schema));
	kvmstats_file_free(b);

	for (size_t i = 0; i < ELEMENTSOF(changes); i++) {
		memcpy(buf, vm_blob.data, vm_blob.len);
		put_le(buf + desc_at(changes[i].desc) + changes[i].field, changes[i].value,
		       changes[i].width);
		b = open_ok(buf, vm_blob.len);
		if (kvmstats_schema_equal(a->schema, b->schema) ||
		    kvmstats_schema_equal(b->schema, a->schema))
			fail_msg("schemas equal despite a different %s", changes[i].what);
		kvmstats_file_free(b);
	}

	/* The last two values swapped (no overlap): a different layout. */
	memcpy(buf, vm_blob.data, vm_blob.len);
	put_le(buf + desc_at(13) + D_OFFSET, 104, 4);
	put_le(buf + desc_at(14) + D_OFFSET, 112, 4);
	b = open_ok(buf, vm_blob.len);
	assert_false(kvmstats_schema_equal(a->schema, b->schema));
	kvmstats_file_free(b);

	/* A kind change (vCPU id on VM descriptors) is a different schema. */
	memcpy(buf, vm_blob.data, vm_blob.len);
	memcpy(buf + ID_OFFSET, "kvm-5702/vcpu-0", 16);
	b = open_ok(buf, vm_blob.len);
	assert_false(kvmstats_schema_equal(a->schema, b->schema));
	kvmstats_file_free(b);

	/* The data block moved: different layout. */
	{
		uint8_t *moved = calloc(1, vm_blob.len + 8);

		assert_non_null(moved);
		memcpy(moved, vm_blob.data, VM_DATA_OFF);
		memcpy(moved + VM_DATA_OFF + 8, vm_blob.data + VM_DATA_OFF, 120);
		put_le(moved + H_DATA_OFFSET, VM_DATA_OFF + 8, 4);
		b = open_ok(moved, vm_blob.len + 8);
		assert_int_equal(value_of(b, "mmu_cache_miss", 0), 4);
		assert_false(kvmstats_schema_equal(a->schema, b->schema));
		kvmstats_file_free(b);
		free(moved);
	}

	/*
	 * The full comparison, not only the hash: with equal hashes, every field
	 * still decides.
	 */
	b = open_ok(vm_blob.data, vm_blob.len);
	for (int field = 0; field < 6; field++) {
		struct kvmstats_desc *d = &b->schema->descs[11];
		struct kvmstats_desc saved = *d;
		char *name = d->name;

		switch (field) {
		case 0:
			d->flags ^= 1u << 9;
			break;
		case 1:
			d->exponent = 1;
			break;
		case 2:
			d->size = 2;
			break;
		case 3:
			d->offset += 8;
			break;
		case 4:
			d->bucket_size = 4;
			break;
		case 5:
			d->name = (char *)"pages_1G";
			break;
		}
		assert_int_equal(b->schema->hash, a->schema->hash);
		if (kvmstats_schema_equal(a->schema, b->schema))
			fail_msg("equal with descriptor field %d changed", field);
		*d = saved;
		d->name = name;
		assert_true(kvmstats_schema_equal(a->schema, b->schema));
	}
	b->schema->data_size += 8;
	assert_false(kvmstats_schema_equal(a->schema, b->schema));
	b->schema->data_size -= 8;
	b->schema->kind = KVMSTATS_KIND_VCPU;
	assert_false(kvmstats_schema_equal(a->schema, b->schema));
	b->schema->kind = KVMSTATS_KIND_VM;
	b->schema->name_size++;
	assert_false(kvmstats_schema_equal(a->schema, b->schema));
	b->schema->name_size--;
	assert_true(kvmstats_schema_equal(a->schema, b->schema));

	kvmstats_file_free(b);
	kvmstats_file_free(a);
	free(buf);
}

/* ---- fds ---------------------------------------------------------------- */

static int memfd_with(const uint8_t *p, size_t len)
{
	int fd = memfd_create("kvmstats-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	return fd;
}

/* A saved blob behind a plain fd reads like a live stats fd, and dumps to itself. */
static void test_fd_of_blob(void **state)
{
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	uint8_t *dump = NULL;
	size_t dump_len = 0;
	int fd;

	(void)state;
	fd = memfd_with(vcpu_blob.data, vcpu_blob.len);
	assert_int_equal(kvmstats_dump_fd(fd, &dump, &dump_len), 0);
	assert_int_equal(dump_len, vcpu_blob.len);
	assert_memory_equal(dump, vcpu_blob.data, dump_len);
	free(dump);

	assert_int_equal(kvmstats_file_open_fd(fd, &f, &err), 0);
	assert_int_equal(f->fd, fd);
	assert_null(f->blob);
	assert_int_equal(value_of(f, "halt_wait_hist", 16), 2);
	/* A change to the data block shows on the next read (one pread). */
	{
		uint64_t v = 1000;
		unsigned idx;
		const struct kvmstats_desc *d = find_desc(f->schema, "exits", &idx);

		assert_int_equal(pwrite(fd, &v, 8, VCPU_DATA_OFF + d->offset), 8);
		assert_int_equal(value_of(f, "exits", 0), 101);
		assert_int_equal(kvmstats_file_read(f), 0);
		assert_int_equal(value_of(f, "exits", 0), 1000);
	}
	/* The file closes the fd it owns. */
	kvmstats_file_free(f);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
}

/* On failure the fd stays the caller's. */
static void test_fd_failures_keep_fd(void **state)
{
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	uint8_t *dump = NULL;
	size_t dump_len = 0;
	int fd;

	(void)state;
	/* Empty: short header. */
	fd = memfd_create("empty", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(kvmstats_file_open_fd(fd, &f, &err), -EBADMSG);
	assert_int_equal(err.rule, KVMSTATS_RULE_SHORT_HEADER);
	assert_null(f);
	assert_int_equal(kvmstats_dump_fd(fd, &dump, &dump_len), -EBADMSG);
	assert_null(dump);
	assert_true(fcntl(fd, F_GETFD) >= 0);
	close(fd);

	/* Data block cut short: the first read fails, the fd is not taken. */
	fd = memfd_with(vm_blob.data, vm_blob.len - 8);
	assert_int_equal(kvmstats_file_open_fd(fd, &f, &err), -EBADMSG);
	assert_int_equal(err.rule, KVMSTATS_RULE_DATA_READ);
	assert_int_equal(err.desc, -1);
	assert_null(f);
	assert_true(fcntl(fd, F_GETFD) >= 0);
	assert_true(kvmstats_dump_fd(fd, &dump, &dump_len) < 0);
	close(fd);

	/* Not readable at all: the errno comes back. */
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(kvmstats_file_open_fd(fd, &f, &err), -EBADF);
	assert_null(f);
	assert_true(fcntl(fd, F_GETFD) >= 0);
	close(fd);

	assert_int_equal(kvmstats_file_open_fd(-1, &f, &err), -EBADF);
	assert_null(f);
}

/* ---- a live stats fd ---------------------------------------------------- */

static void check_live(int stats_fd, enum kvmstats_kind kind, const char *want_id)
{
	struct kvmstats_file *f = NULL, *g = NULL;
	struct kvmstats_error err;
	uint8_t *dump = NULL;
	size_t dump_len = 0;
	char msg[256];
	int r;

	r = kvmstats_file_open_fd(stats_fd, &f, &err);
	if (r < 0) {
		if (r == -EBADMSG)
			kvmstats_error_format(&err, msg, sizeof(msg));
		fail_msg("open_fd: %d %s", r, r == -EBADMSG ? msg : strerror(-r));
	}
	assert_string_equal(f->id, want_id);
	assert_int_equal(f->kind, kind);
	assert_int_equal(f->id_pid, getpid());
	assert_int_equal(f->vcpu, kind == KVMSTATS_KIND_VCPU ? 0 : -1);
	assert_int_equal(f->schema->n_unsupported, 0);

	assert_int_equal(kvmstats_dump_fd(f->fd, &dump, &dump_len), 0);
	assert_int_equal(dump_len, (size_t)f->schema->data_offset + f->schema->data_size);
	g = open_ok(dump, dump_len);
	/* Nothing runs in this VM, so the values cannot move between the two reads. */
	assert_int_equal(kvmstats_file_read(f), 0);
	assert_string_equal(g->id, f->id);
	assert_int_equal(g->kind, f->kind);
	assert_true(kvmstats_schema_equal(f->schema, g->schema));
	assert_memory_equal(f->values, g->values, f->schema->data_size);

	/* How this kernel compares with the saved 6.18 blobs; a difference is not an error. */
	{
		const struct blob *saved = kind == KVMSTATS_KIND_VM ? &vm_blob : &vcpu_blob;
		struct kvmstats_file *s = open_ok(saved->data, saved->len);

		print_message("live %s: %u descriptors, data_offset %u, data_size %u; %s the "
			      "saved blob's schema\n",
			      want_id, f->schema->num_desc, f->schema->data_offset,
			      f->schema->data_size,
			      kvmstats_schema_equal(f->schema, s->schema) ? "same as"
									  : "differs from");
		kvmstats_file_free(s);
	}

	kvmstats_file_free(g);
	free(dump);
	kvmstats_file_free(f); /* closes stats_fd */
}

static void test_live_fd(void **state)
{
	_cleanup_close_ int kvm = -1, vm = -1, vcpu = -1;
	int vm_stats, vcpu_stats;
	char want[64];

	(void)state;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		print_message("SKIP live stats fd: cannot open /dev/kvm: %s\n", strerror(errno));
		skip();
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		fail_msg("/dev/kvm opened but KVM_CREATE_VM failed: %s", strerror(errno));
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		fail_msg("KVM_CREATE_VCPU: %s", strerror(errno));
	vm_stats = ioctl(vm, KVM_GET_STATS_FD, 0);
	if (vm_stats < 0)
		fail_msg("KVM_GET_STATS_FD (VM): %s", strerror(errno));
	vcpu_stats = ioctl(vcpu, KVM_GET_STATS_FD, 0);
	if (vcpu_stats < 0)
		fail_msg("KVM_GET_STATS_FD (vCPU): %s", strerror(errno));

	snprintf(want, sizeof(want), "kvm-%d", (int)getpid());
	check_live(vm_stats, KVMSTATS_KIND_VM, want);
	snprintf(want, sizeof(want), "kvm-%d/vcpu-0", (int)getpid());
	check_live(vcpu_stats, KVMSTATS_KIND_VCPU, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_vm),        cmocka_unit_test(test_real_vcpu),
		cmocka_unit_test(test_open_blob_null), cmocka_unit_test(test_malformed_every_rule),
		cmocka_unit_test(test_error_values),   cmocka_unit_test(test_unsupported_not_fatal),
		cmocka_unit_test(test_truncated),      cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_parse_id),       cmocka_unit_test(test_unknown_kind_loads),
		cmocka_unit_test(test_error_format),   cmocka_unit_test(test_error_long_name),
		cmocka_unit_test(test_schema_cache),   cmocka_unit_test(test_schema_equal),
		cmocka_unit_test(test_fd_of_blob),     cmocka_unit_test(test_fd_failures_keep_fd),
		cmocka_unit_test(test_live_fd),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
