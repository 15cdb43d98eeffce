/* SPDX-License-Identifier: MIT */
/*
 * The saved stats blobs of tests/data (a 6.18 x86-64 kernel's VM and vCPU
 * stats files): their layout, loading them for a test group, and patching
 * private copies. Include after cmocka.h; one test program per file.
 */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "kvmstats.h"

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

static inline int blobs_setup(void **state)
{
	(void)state;
	if (load_data_blob(VM_BLOB, &vm_blob) < 0 || load_data_blob(VCPU_BLOB, &vcpu_blob) < 0)
		return -1;
	return 0;
}

static inline int blobs_teardown(void **state)
{
	(void)state;
	free(vm_blob.data);
	free(vcpu_blob.data);
	return 0;
}

/* A private copy to patch; exactly len bytes so that ASan sees any overread. */
static inline uint8_t *copy_blob(const struct blob *b)
{
	uint8_t *p = malloc(b->len);

	assert_non_null(p);
	memcpy(p, b->data, b->len);
	return p;
}

static inline void put_le(uint8_t *p, uint64_t v, unsigned width)
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

static inline size_t desc_at(unsigned i)
{
	return DESC_OFFSET + (size_t)i * DESC_STRIDE;
}

static inline const struct kvmstats_desc *find_desc(const struct kvmstats_schema *s,
						    const char *name, unsigned *ret_index)
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

static inline uint64_t value_of(const struct kvmstats_file *f, const char *name, unsigned i)
{
	return kvmstats_file_value(f, find_desc(f->schema, name, NULL), i);
}

static inline struct kvmstats_file *open_ok(const uint8_t *buf, size_t len)
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
