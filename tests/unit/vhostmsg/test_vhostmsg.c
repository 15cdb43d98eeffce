/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vhostmsg.h"

#define PAGE   ((uint64_t)VHOSTMSG_PAGE_SIZE)
#define MIB    (1024ull * 1024ull)
#define V1     VHOSTMSG_VERSION
#define NOFD   VHOSTMSG_VRING_NOFD
#define BIT(r) VHOSTMSG_REASON_BIT(r)

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static struct vhostmsg_header hdr(uint32_t request, uint32_t flags, uint32_t size)
{
	return (struct vhostmsg_header){ .request = request, .flags = flags, .size = size };
}

/* ---- names ---- */

static bool label_value_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* Every defined name is a clean label value and unique on its channel. */
static void check_channel_names(enum vhostmsg_channel ch)
{
	const char *seen[128];
	size_t n = 0;

	for (uint32_t r = 0; r < 1100; r++) {
		const char *name = vhostmsg_request_name(ch, r);
		if (!name)
			continue;
		assert_true(label_value_ok(name));
		for (size_t i = 0; i < n; i++)
			assert_string_not_equal(seen[i], name);
		assert_true(n < 128);
		seen[n++] = name;
	}
	assert_true(n > 10);
}

static void test_names_frontend(void **state)
{
	(void)state;
	enum vhostmsg_channel f = VHOSTMSG_CHANNEL_FRONTEND;
	assert_string_equal(vhostmsg_request_name(f, 1), "get_features");
	assert_string_equal(vhostmsg_request_name(f, 5), "set_mem_table");
	assert_string_equal(vhostmsg_request_name(f, 9), "set_vring_addr");
	assert_string_equal(vhostmsg_request_name(f, VHOSTMSG_GET_PROTOCOL_FEATURES),
			    "get_protocol_features");
	assert_string_equal(vhostmsg_request_name(f, VHOSTMSG_SET_BACKEND_REQ_FD),
			    "set_backend_req_fd");
	assert_string_equal(vhostmsg_request_name(f, 38), "rem_mem_reg");
	assert_string_equal(vhostmsg_request_name(f, 43), "check_device_state");
	assert_string_equal(vhostmsg_request_name(f, 44), "get_shmem_config");
	assert_string_equal(vhostmsg_request_name(f, 1000), "sleep");
	assert_string_equal(vhostmsg_request_name(f, 1004), "get_shared_memory_regions");
	assert_null(vhostmsg_request_name(f, 0));
	assert_null(vhostmsg_request_name(f, 45));
	assert_null(vhostmsg_request_name(f, 999));
	assert_null(vhostmsg_request_name(f, 1005));
	assert_null(vhostmsg_request_name(f, UINT32_MAX));
	for (uint32_t r = 1; r <= 44; r++)
		assert_non_null(vhostmsg_request_name(f, r));
	check_channel_names(f);
}

static void test_names_backend(void **state)
{
	(void)state;
	enum vhostmsg_channel b = VHOSTMSG_CHANNEL_BACKEND;
	assert_string_equal(vhostmsg_request_name(b, 1), "iotlb_msg");
	assert_string_equal(vhostmsg_request_name(b, 3), "vring_host_notifier_msg");
	assert_string_equal(vhostmsg_request_name(b, 8), "shared_object_lookup");
	assert_string_equal(vhostmsg_request_name(b, VHOSTMSG_BACKEND_SHMEM_MAP), "shmem_map");
	assert_string_equal(vhostmsg_request_name(b, VHOSTMSG_BACKEND_SHMEM_UNMAP), "shmem_unmap");
	assert_string_equal(vhostmsg_request_name(b, 1000), "shmem_map_legacy");
	assert_string_equal(vhostmsg_request_name(b, 1002), "fs_map");
	assert_string_equal(vhostmsg_request_name(b, VHOSTMSG_BACKEND_GPU_MAP), "gpu_map");
	assert_string_equal(vhostmsg_request_name(b, VHOSTMSG_BACKEND_EXTERNAL_MAP),
			    "external_map");
	assert_null(vhostmsg_request_name(b, 0));
	assert_null(vhostmsg_request_name(b, 11));
	assert_null(vhostmsg_request_name(b, 1008));
	assert_null(vhostmsg_request_name(b, UINT32_MAX));
	check_channel_names(b);
}

static void test_reason_and_channel_names(void **state)
{
	(void)state;
	assert_string_equal(vhostmsg_reason_name(VHOSTMSG_BAD_VERSION), "bad_version");
	assert_string_equal(vhostmsg_reason_name(VHOSTMSG_RESERVED_FLAGS), "reserved_flags");
	assert_string_equal(vhostmsg_reason_name(VHOSTMSG_SIZE_MISMATCH), "size_mismatch");
	assert_string_equal(vhostmsg_reason_name(VHOSTMSG_LEN_ZERO), "len_zero");
	assert_string_equal(vhostmsg_reason_name(VHOSTMSG_NONCANONICAL_PTR), "noncanonical_ptr");
	assert_string_equal(vhostmsg_reason_name(VHOSTMSG_OUT_OF_PROCESS), "out_of_process");
	assert_string_equal(vhostmsg_reason_name(VHOSTMSG_NOT_MAPPED), "not_mapped");
	assert_string_equal(vhostmsg_reason_name(VHOSTMSG_BAD_MAP_FLAGS), "bad_map_flags");
	assert_null(vhostmsg_reason_name(VHOSTMSG_REASON__MAX));
	for (int r = 0; r < VHOSTMSG_REASON__MAX; r++) {
		assert_true(label_value_ok(vhostmsg_reason_name((enum vhostmsg_reason)r)));
		for (int q = 0; q < r; q++)
			assert_string_not_equal(vhostmsg_reason_name((enum vhostmsg_reason)q),
						vhostmsg_reason_name((enum vhostmsg_reason)r));
	}
	assert_string_equal(vhostmsg_channel_name(VHOSTMSG_CHANNEL_FRONTEND), "frontend");
	assert_string_equal(vhostmsg_channel_name(VHOSTMSG_CHANNEL_BACKEND), "backend");
}

/* ---- header ---- */

static void test_header_roundtrip(void **state)
{
	(void)state;
	const struct vhostmsg_header cases[] = {
		hdr(0, 0, 0),
		hdr(VHOSTMSG_BACKEND_EXTERNAL_MAP, V1 | VHOSTMSG_FLAG_NEED_REPLY, 32),
		hdr(UINT32_MAX, UINT32_MAX, UINT32_MAX),
		hdr(0x01020304, 0x05060708, 0x090a0b0c),
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t raw[VHOSTMSG_HEADER_SIZE], want[VHOSTMSG_HEADER_SIZE];
		struct vhostmsg_header back;

		vhostmsg_header_encode(&cases[i], raw);
		/* Native endian, request-flags-size, no padding. */
		put32(want, cases[i].request);
		put32(want + 4, cases[i].flags);
		put32(want + 8, cases[i].size);
		assert_memory_equal(raw, want, sizeof(raw));
		vhostmsg_header_decode(raw, &back);
		assert_int_equal(back.request, cases[i].request);
		assert_int_equal(back.flags, cases[i].flags);
		assert_int_equal(back.size, cases[i].size);
	}
}

static void test_check_header(void **state)
{
	(void)state;
	struct vhostmsg_header h = hdr(1, V1, 0);

	assert_int_equal(vhostmsg_check_header(&h, 0), VHOSTMSG_VALID);
	h.flags = V1 | VHOSTMSG_FLAG_REPLY | VHOSTMSG_FLAG_NEED_REPLY;
	assert_int_equal(vhostmsg_check_header(&h, 0), VHOSTMSG_VALID);
	for (uint32_t v = 0; v < 4; v++) {
		h.flags = v;
		assert_int_equal(vhostmsg_check_header(&h, 0),
				 v == 1 ? VHOSTMSG_VALID : VHOSTMSG_BAD_VERSION);
	}
	h.flags = V1 | (1u << 4);
	assert_int_equal(vhostmsg_check_header(&h, 0), VHOSTMSG_RESERVED_FLAGS);
	h.flags = V1 | (1u << 31);
	assert_int_equal(vhostmsg_check_header(&h, 0), VHOSTMSG_RESERVED_FLAGS);
	/* The version is judged first. */
	h.flags = 2 | (1u << 31);
	assert_int_equal(vhostmsg_check_header(&h, 0), VHOSTMSG_BAD_VERSION);

	h = hdr(1, V1, VHOSTMSG_MAX_PAYLOAD);
	assert_int_equal(vhostmsg_check_header(&h, 0), VHOSTMSG_VALID);
	h.size = VHOSTMSG_MAX_PAYLOAD + 1;
	assert_int_equal(vhostmsg_check_header(&h, 0), VHOSTMSG_TOO_LARGE);
	h.size = UINT32_MAX;
	assert_int_equal(vhostmsg_check_header(&h, 0), VHOSTMSG_TOO_LARGE);

	h.size = 0;
	assert_int_equal(vhostmsg_check_header(&h, VHOSTMSG_MAX_FDS), VHOSTMSG_VALID);
	assert_int_equal(vhostmsg_check_header(&h, VHOSTMSG_MAX_FDS + 1), VHOSTMSG_FD_COUNT);
}

/* ---- decode_map ---- */

static void shmem_map_payload(uint8_t p[40], uint8_t shmid, uint64_t fd_offset, uint64_t shm_offset,
			      uint64_t len, uint64_t flags)
{
	memset(p, 0, 40);
	p[0] = shmid;
	put64(p + 8, fd_offset);
	put64(p + 16, shm_offset);
	put64(p + 24, len);
	put64(p + 32, flags);
}

static void external_map_payload(uint8_t p[32], uint8_t shmid, uint64_t shm_offset, uint64_t len,
				 uint64_t ptr)
{
	memset(p, 0, 32);
	p[0] = shmid;
	put64(p + 8, shm_offset);
	put64(p + 16, len);
	put64(p + 24, ptr);
}

static void test_decode_map_shmem(void **state)
{
	(void)state;
	uint8_t p[48];
	struct vhostmsg_map m;
	struct vhostmsg_header h = hdr(VHOSTMSG_BACKEND_SHMEM_MAP, V1, 40);

	shmem_map_payload(p, 7, 0x3000, 0x10000, 0x2000, VHOSTMSG_MAP_FLAG_RW);
	memset(&m, 0xaa, sizeof(m));
	assert_int_equal(vhostmsg_decode_map(&h, p, 1, &m), 1);
	assert_int_equal(m.request, VHOSTMSG_BACKEND_SHMEM_MAP);
	assert_int_equal(m.shmid, 7);
	assert_int_equal(m.fd_offset, 0x3000);
	assert_int_equal(m.shm_offset, 0x10000);
	assert_int_equal(m.len, 0x2000);
	assert_int_equal(m.flags, VHOSTMSG_MAP_FLAG_RW);
	assert_int_equal(m.ptr, 0);

	/* SHMEM_MAP carries exactly one fd. */
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), -VHOSTMSG_FD_COUNT);
	assert_int_equal(vhostmsg_decode_map(&h, p, 2, &m), -VHOSTMSG_FD_COUNT);
	h.size = 39;
	assert_int_equal(vhostmsg_decode_map(&h, p, 1, &m), -VHOSTMSG_SIZE_MISMATCH);
	h.size = 41;
	assert_int_equal(vhostmsg_decode_map(&h, p, 1, &m), -VHOSTMSG_SIZE_MISMATCH);
	/* Size is judged before fds. */
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), -VHOSTMSG_SIZE_MISMATCH);

	/* SHMEM_UNMAP: same layout, no fd. */
	h = hdr(VHOSTMSG_BACKEND_SHMEM_UNMAP, V1, 40);
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), 1);
	assert_int_equal(m.request, VHOSTMSG_BACKEND_SHMEM_UNMAP);
	assert_int_equal(m.shm_offset, 0x10000);
	assert_int_equal(m.len, 0x2000);
	assert_int_equal(vhostmsg_decode_map(&h, p, 1, &m), -VHOSTMSG_FD_COUNT);
	h.size = 0;
	assert_int_equal(vhostmsg_decode_map(&h, NULL, 0, &m), -VHOSTMSG_SIZE_MISMATCH);

	/* Not a mapping request, or a reply: 0, *ret untouched. */
	memset(&m, 0x55, sizeof(m));
	h = hdr(VHOSTMSG_BACKEND_IOTLB_MSG, V1, 32);
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), 0);
	h = hdr(VHOSTMSG_BACKEND_SHMEM_MAP, V1 | VHOSTMSG_FLAG_REPLY, 8);
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), 0);
	assert_int_equal(m.shmid, 0x55);
}

static void test_decode_map_gpu(void **state)
{
	(void)state;
	uint8_t p[64] = { 0 };
	struct vhostmsg_map m;
	struct vhostmsg_header h = hdr(VHOSTMSG_BACKEND_GPU_MAP, V1, 64);

	p[0] = 3;
	put64(p + 8, 0x200000);
	put64(p + 16, 0x100000);
	put32(p + 24, 2);    /* memory_idx */
	put32(p + 28, 0x10); /* handle_type */
	memset(p + 32, 0xd1, 16);
	memset(p + 48, 0xd2, 16);
	assert_int_equal(vhostmsg_decode_map(&h, p, 1, &m), 1);
	assert_int_equal(m.request, VHOSTMSG_BACKEND_GPU_MAP);
	assert_int_equal(m.shmid, 3);
	assert_int_equal(m.shm_offset, 0x200000);
	assert_int_equal(m.len, 0x100000);
	assert_int_equal(m.fd_offset, 0);
	assert_int_equal(m.ptr, 0);
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), -VHOSTMSG_FD_COUNT);
	h.size = 32;
	assert_int_equal(vhostmsg_decode_map(&h, p, 1, &m), -VHOSTMSG_SIZE_MISMATCH);
}

static void test_decode_map_external(void **state)
{
	(void)state;
	uint8_t p[40];
	struct vhostmsg_map m;
	struct vhostmsg_header h = hdr(VHOSTMSG_BACKEND_EXTERNAL_MAP, V1, 32);

	external_map_payload(p, 1, 0x4000, 0x8000, 0x7f1234560000ull);
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), 1);
	assert_int_equal(m.request, VHOSTMSG_BACKEND_EXTERNAL_MAP);
	assert_int_equal(m.shmid, 1);
	assert_int_equal(m.shm_offset, 0x4000);
	assert_int_equal(m.len, 0x8000);
	assert_int_equal(m.ptr, 0x7f1234560000ull);
	/* Exactly 32 bytes and no fd. */
	assert_int_equal(vhostmsg_decode_map(&h, p, 1, &m), -VHOSTMSG_FD_COUNT);
	h.size = 31;
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), -VHOSTMSG_SIZE_MISMATCH);
	h.size = 40;
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), -VHOSTMSG_SIZE_MISMATCH);
}

static void test_decode_map_legacy(void **state)
{
	(void)state;
	uint8_t p[32] = { 0 };
	struct vhostmsg_map m;
	struct vhostmsg_header h = hdr(VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY, V1, 32);

	p[0] = 3; /* read | write */
	p[1] = 9;
	put64(p + 8, 0x5000);
	put64(p + 16, 0x1000);
	put64(p + 24, 0x3000);
	assert_int_equal(vhostmsg_decode_map(&h, p, 1, &m), 1);
	assert_int_equal(m.flags, 3);
	assert_int_equal(m.shmid, 9);
	assert_int_equal(m.shm_offset, 0x5000);
	assert_int_equal(m.fd_offset, 0x1000);
	assert_int_equal(m.len, 0x3000);

	h = hdr(VHOSTMSG_BACKEND_SHMEM_UNMAP_LEGACY, V1, 24);
	p[0] = 9;
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), 1);
	assert_int_equal(m.shmid, 9);
	assert_int_equal(m.shm_offset, 0x5000);
	assert_int_equal(m.len, 0x1000);
	h.size = 40;
	assert_int_equal(vhostmsg_decode_map(&h, p, 0, &m), -VHOSTMSG_SIZE_MISMATCH);
}

/* ---- shmem tracker ---- */

struct fixture {
	struct vhostmsg_shmem *s;
};

#define REGION0 (1 * MIB)
#define REGION1 (64 * MIB)

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->s = vhostmsg_shmem_new();
	if (!f->s) {
		free(f);
		return -1;
	}
	vhostmsg_shmem_set_region(f->s, 0, REGION0);
	vhostmsg_shmem_set_region(f->s, 1, REGION1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(vhostmsg_shmem_verify(f->s), 0);
	assert_null(vhostmsg_shmem_free(f->s));
	free(f);
	return 0;
}

static struct vhostmsg_map map_req(uint32_t request, uint8_t shmid, uint64_t off, uint64_t len)
{
	return (struct vhostmsg_map){
		.request = request, .shmid = shmid, .shm_offset = off, .len = len
	};
}

static struct vhostmsg_map shmem_map(uint8_t shmid, uint64_t off, uint64_t len)
{
	return map_req(VHOSTMSG_BACKEND_SHMEM_MAP, shmid, off, len);
}

static struct vhostmsg_map shmem_unmap(uint8_t shmid, uint64_t off, uint64_t len)
{
	return map_req(VHOSTMSG_BACKEND_SHMEM_UNMAP, shmid, off, len);
}

static struct vhostmsg_map external_map(uint8_t shmid, uint64_t off, uint64_t len, uint64_t ptr)
{
	struct vhostmsg_map m = map_req(VHOSTMSG_BACKEND_EXTERNAL_MAP, shmid, off, len);

	m.ptr = ptr;
	return m;
}

static enum vhostmsg_reason check(struct fixture *f, struct vhostmsg_map m)
{
	return vhostmsg_shmem_check(f->s, &m, false);
}

/* Validates then applies, as the tap does with an accepted request. */
static void map_ok(struct fixture *f, struct vhostmsg_map m)
{
	assert_int_equal(vhostmsg_shmem_check(f->s, &m, true), VHOSTMSG_VALID);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &m), 0);
	assert_int_equal(vhostmsg_shmem_verify(f->s), 0);
}

static void assert_stats(struct fixture *f, uint8_t shmid, uint64_t mappings, uint64_t bytes)
{
	uint64_t n = 99, b = 99;

	vhostmsg_shmem_stats(f->s, shmid, &n, &b);
	assert_int_equal(n, mappings);
	assert_int_equal(b, bytes);
}

static void test_shmem_valid(void **state)
{
	struct fixture *f = *state;
	struct vhostmsg_map m = shmem_map(0, 0x10000, 0x4000);

	m.fd_offset = 0x2000;
	m.flags = VHOSTMSG_MAP_FLAG_RW;
	assert_int_equal(check(f, m), VHOSTMSG_VALID);
	assert_int_equal(vhostmsg_shmem_check_all(f->s, &m, false), 0);
	/* Read-only, and the last page of the region. */
	assert_int_equal(check(f, shmem_map(0, REGION0 - PAGE, PAGE)), VHOSTMSG_VALID);
	assert_int_equal(check(f, shmem_map(1, 0, REGION1)), VHOSTMSG_VALID);
	/* GPU_MAP follows the same range rules. */
	assert_int_equal(check(f, map_req(VHOSTMSG_BACKEND_GPU_MAP, 1, MIB, MIB)), VHOSTMSG_VALID);
	/* Requests that are no mapping pass untouched. */
	assert_int_equal(check(f, map_req(VHOSTMSG_BACKEND_IOTLB_MSG, 0, 0, 0)), VHOSTMSG_VALID);
}

static void test_shmem_len_zero(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(check(f, shmem_map(0, 0, 0)), VHOSTMSG_LEN_ZERO);
	assert_int_equal(check(f, shmem_unmap(0, 0, 0)), VHOSTMSG_LEN_ZERO);
	assert_int_equal(check(f, external_map(0, 0, 0, 0x10000)), VHOSTMSG_LEN_ZERO);
}

static void test_shmem_overflow(void **state)
{
	struct fixture *f = *state;
	struct vhostmsg_map m = shmem_map(0, UINT64_MAX - PAGE + 1, 2 * PAGE);

	assert_int_equal(check(f, m), VHOSTMSG_OVERFLOW);
	/* fd_offset + len wraps, shm range fine. */
	m = shmem_map(0, 0, PAGE);
	m.fd_offset = UINT64_MAX - PAGE + 1;
	assert_int_equal(check(f, m), VHOSTMSG_OVERFLOW);
	assert_int_equal(check(f, map_req(VHOSTMSG_BACKEND_GPU_MAP, 0, UINT64_MAX & ~(PAGE - 1),
					  PAGE)),
			 VHOSTMSG_OVERFLOW);
	/* Ending exactly at 2^64 would wrap to 0: that is overflow too. */
	assert_int_equal(check(f, shmem_unmap(0, UINT64_MAX - PAGE + 1, PAGE)), VHOSTMSG_OVERFLOW);
}

static void test_shmem_unaligned_offset(void **state)
{
	struct fixture *f = *state;
	struct vhostmsg_map m;

	assert_int_equal(check(f, shmem_map(0, 0x800, PAGE)), VHOSTMSG_UNALIGNED);
	assert_int_equal(check(f, shmem_unmap(0, 1, PAGE)), VHOSTMSG_UNALIGNED);
	m = shmem_map(0, 0, PAGE);
	m.fd_offset = 0x10;
	assert_int_equal(check(f, m), VHOSTMSG_UNALIGNED);
}

static void test_shmem_unaligned_len(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(check(f, shmem_map(0, 0, PAGE + 1)), VHOSTMSG_UNALIGNED);
	assert_int_equal(check(f, map_req(VHOSTMSG_BACKEND_GPU_MAP, 0, 0, 100)),
			 VHOSTMSG_UNALIGNED);
}

static void test_shmem_unknown_shmid(void **state)
{
	struct fixture *f = *state;

	assert_false(vhostmsg_shmem_known(f->s, 2));
	assert_true(vhostmsg_shmem_known(f->s, 1));
	assert_int_equal(check(f, shmem_map(2, 0, PAGE)), VHOSTMSG_UNKNOWN_SHMID);
	assert_int_equal(check(f, shmem_map(255, 0, PAGE)), VHOSTMSG_UNKNOWN_SHMID);
	vhostmsg_shmem_set_region(f->s, 255, PAGE);
	assert_true(vhostmsg_shmem_known(f->s, 255));
	assert_int_equal(check(f, shmem_map(255, 0, PAGE)), VHOSTMSG_VALID);
}

static void test_shmem_beyond_region(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(check(f, shmem_map(0, REGION0, PAGE)), VHOSTMSG_UNKNOWN_SHMID);
	assert_int_equal(check(f, shmem_map(0, REGION0 - PAGE, 2 * PAGE)), VHOSTMSG_UNKNOWN_SHMID);
	assert_int_equal(check(f, shmem_map(0, 0, REGION0 + PAGE)), VHOSTMSG_UNKNOWN_SHMID);
	assert_int_equal(check(f, shmem_unmap(0, REGION0, PAGE)), VHOSTMSG_UNKNOWN_SHMID);
}

static void test_shmem_overlap(void **state)
{
	struct fixture *f = *state;

	map_ok(f, shmem_map(0, 0x10000, 0x4000)); /* [0x10000, 0x14000) */
	/* Exact. */
	assert_int_equal(check(f, shmem_map(0, 0x10000, 0x4000)), VHOSTMSG_OVERLAP);
	/* Partial on either side, inside, around. */
	assert_int_equal(check(f, shmem_map(0, 0xe000, 0x4000)), VHOSTMSG_OVERLAP);
	assert_int_equal(check(f, shmem_map(0, 0x13000, 0x4000)), VHOSTMSG_OVERLAP);
	assert_int_equal(check(f, shmem_map(0, 0x11000, 0x1000)), VHOSTMSG_OVERLAP);
	assert_int_equal(check(f, shmem_map(0, 0x8000, 0x10000)), VHOSTMSG_OVERLAP);
	/* Adjacent on either side is not an overlap. */
	assert_int_equal(check(f, shmem_map(0, 0xc000, 0x4000)), VHOSTMSG_VALID);
	assert_int_equal(check(f, shmem_map(0, 0x14000, 0x4000)), VHOSTMSG_VALID);
	/* Another shmid does not overlap. */
	assert_int_equal(check(f, shmem_map(1, 0x10000, 0x4000)), VHOSTMSG_VALID);
	/* Every mapping request counts: EXTERNAL_MAP and GPU_MAP too. */
	assert_int_equal(check(f, map_req(VHOSTMSG_BACKEND_GPU_MAP, 0, 0x12000, PAGE)),
			 VHOSTMSG_OVERLAP);
	struct vhostmsg_map e = external_map(0, 0x12000, PAGE, 0x7f0000000000ull);
	assert_int_equal(vhostmsg_shmem_check(f->s, &e, true), VHOSTMSG_OVERLAP);

	/* Between two neighbours, touching both: fine; one page more: overlap. */
	map_ok(f, shmem_map(0, 0x18000, 0x4000));
	assert_int_equal(check(f, shmem_map(0, 0x14000, 0x4000)), VHOSTMSG_VALID);
	assert_int_equal(check(f, shmem_map(0, 0x14000, 0x5000)), VHOSTMSG_OVERLAP);
}

static void test_shmem_noncanonical_ptr(void **state)
{
	struct fixture *f = *state;

	/* The lowest non-canonical address, and one in the middle of the hole. */
	struct vhostmsg_map m = external_map(0, 0, PAGE, 0x0000800000000000ull);
	assert_int_equal(vhostmsg_shmem_check(f->s, &m, true), VHOSTMSG_NONCANONICAL_PTR);
	m = external_map(0, 0, PAGE, 0x1234000000000000ull);
	assert_int_equal(vhostmsg_shmem_check(f->s, &m, true), VHOSTMSG_NONCANONICAL_PTR);
	/* A range running off the top of the lower half. */
	m = external_map(0, 0, 2 * PAGE, 0x00007ffffffff000ull);
	assert_int_equal(vhostmsg_shmem_check(f->s, &m, true), VHOSTMSG_NONCANONICAL_PTR);
	/* Canonical: lower half up to its last page, upper half. */
	m = external_map(0, 0, PAGE, 0x00007ffffffff000ull);
	assert_int_equal(vhostmsg_shmem_check(f->s, &m, true), VHOSTMSG_VALID);
	m = external_map(0, 0, PAGE, 0xffff800000000000ull);
	assert_int_equal(vhostmsg_shmem_check(f->s, &m, true), VHOSTMSG_VALID);
	/* Both ends canonical, the range across the hole between the halves. */
	m = external_map(0, 0, 0xffff000000002000ull, 0x00007ffffffff000ull);
	assert_int_equal(vhostmsg_shmem_check_all(f->s, &m, true) & BIT(VHOSTMSG_NONCANONICAL_PTR),
			 BIT(VHOSTMSG_NONCANONICAL_PTR));
	/* A range that wraps past 2^64. */
	m = external_map(0, 0, 2 * PAGE, 0xfffffffffffff000ull);
	assert_int_equal(vhostmsg_shmem_check(f->s, &m, true), VHOSTMSG_NONCANONICAL_PTR);
	/* An unaligned pointer is unaligned. */
	m = external_map(0, 0, PAGE, 0x7f0000000010ull);
	assert_int_equal(vhostmsg_shmem_check(f->s, &m, true), VHOSTMSG_UNALIGNED);
}

static void test_shmem_out_of_process(void **state)
{
	struct fixture *f = *state;
	struct vhostmsg_map m = external_map(0, 0x20000, 0x4000, 0x7f0000000000ull);

	assert_int_equal(vhostmsg_shmem_check(f->s, &m, true), VHOSTMSG_VALID);
	assert_int_equal(vhostmsg_shmem_check(f->s, &m, false), VHOSTMSG_OUT_OF_PROCESS);
	assert_int_equal(vhostmsg_shmem_check_all(f->s, &m, false), BIT(VHOSTMSG_OUT_OF_PROCESS));
	/* Only EXTERNAL_MAP carries a pointer: other requests ignore in_process. */
	assert_int_equal(check(f, shmem_map(0, 0x20000, 0x4000)), VHOSTMSG_VALID);
}

static void test_shmem_unmap(void **state)
{
	struct fixture *f = *state;

	/* Nothing mapped yet. */
	assert_int_equal(check(f, shmem_unmap(0, 0x10000, 0x4000)), VHOSTMSG_NOT_MAPPED);
	map_ok(f, shmem_map(0, 0x10000, 0x4000));
	map_ok(f, shmem_map(0, 0x14000, 0x2000));
	map_ok(f, shmem_map(0, 0x20000, 0x1000));
	assert_stats(f, 0, 3, 0x7000);

	/* Parts of a mapping, or more than it, are not mapped ranges. */
	assert_int_equal(check(f, shmem_unmap(0, 0x10000, 0x1000)), VHOSTMSG_NOT_MAPPED);
	assert_int_equal(check(f, shmem_unmap(0, 0x11000, 0x3000)), VHOSTMSG_NOT_MAPPED);
	assert_int_equal(check(f, shmem_unmap(0, 0xf000, 0x5000)), VHOSTMSG_NOT_MAPPED);
	assert_int_equal(check(f, shmem_unmap(0, 0x10000, 0x7000)), VHOSTMSG_NOT_MAPPED);
	/* Across a gap. */
	assert_int_equal(check(f, shmem_unmap(0, 0x14000, 0xd000)), VHOSTMSG_NOT_MAPPED);
	/* Same range, other shmid. */
	assert_int_equal(check(f, shmem_unmap(1, 0x10000, 0x4000)), VHOSTMSG_NOT_MAPPED);
	/* Exactly one mapping, or two laid end to end. */
	assert_int_equal(check(f, shmem_unmap(0, 0x10000, 0x4000)), VHOSTMSG_VALID);
	assert_int_equal(check(f, shmem_unmap(0, 0x10000, 0x6000)), VHOSTMSG_VALID);

	/* Unmap after map: the mapping goes, the range is free again. */
	map_ok(f, shmem_unmap(0, 0x10000, 0x4000));
	assert_stats(f, 0, 2, 0x3000);
	assert_int_equal(check(f, shmem_unmap(0, 0x10000, 0x4000)), VHOSTMSG_NOT_MAPPED);
	assert_int_equal(check(f, shmem_map(0, 0x10000, 0x4000)), VHOSTMSG_VALID);
	map_ok(f, shmem_unmap(0, 0x14000, 0x2000));
	map_ok(f, shmem_unmap(0, 0x20000, 0x1000));
	assert_stats(f, 0, 0, 0);
}

static void test_shmem_bad_map_flags(void **state)
{
	struct fixture *f = *state;
	struct vhostmsg_map m = shmem_map(0, 0, PAGE);

	m.flags = 2;
	assert_int_equal(check(f, m), VHOSTMSG_BAD_MAP_FLAGS);
	m.flags = 1ull << 63;
	assert_int_equal(check(f, m), VHOSTMSG_BAD_MAP_FLAGS);
	m.flags = VHOSTMSG_MAP_FLAG_RW;
	assert_int_equal(check(f, m), VHOSTMSG_VALID);
	/* crosvm's legacy map had read (1) and write (2). */
	m.request = VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY;
	m.flags = 3;
	assert_int_equal(check(f, m), VHOSTMSG_VALID);
	m.flags = 4;
	assert_int_equal(check(f, m), VHOSTMSG_BAD_MAP_FLAGS);
}

static void test_shmem_check_all(void **state)
{
	struct fixture *f = *state;
	/* Unaligned, out of process, beyond an unknown region and non-canonical. */
	struct vhostmsg_map m = external_map(7, 0x800, PAGE, 0x0000900000000000ull);
	uint32_t want = BIT(VHOSTMSG_UNALIGNED) | BIT(VHOSTMSG_UNKNOWN_SHMID) |
			BIT(VHOSTMSG_NONCANONICAL_PTR) | BIT(VHOSTMSG_OUT_OF_PROCESS);

	assert_int_equal(vhostmsg_shmem_check_all(f->s, &m, false), want);
	/* check() reports the first in enum order. */
	assert_int_equal(vhostmsg_shmem_check(f->s, &m, false), VHOSTMSG_UNALIGNED);
	m = shmem_map(0, 0, 0);
	m.flags = 4;
	assert_int_equal(vhostmsg_shmem_check_all(f->s, &m, false),
			 BIT(VHOSTMSG_LEN_ZERO) | BIT(VHOSTMSG_BAD_MAP_FLAGS));
}

static void test_shmem_apply_bound(void **state)
{
	struct fixture *f = *state;
	uint64_t n, b;

	/* Fill the global bound with one-page mappings, every other page of region 1. */
	for (uint64_t i = 0; i < VHOSTMSG_MAX_MAPPINGS; i++) {
		struct vhostmsg_map m = shmem_map(1, 2 * i * PAGE, PAGE);
		assert_int_equal(vhostmsg_shmem_apply(f->s, &m), 0);
	}
	assert_stats(f, 1, VHOSTMSG_MAX_MAPPINGS, VHOSTMSG_MAX_MAPPINGS * PAGE);
	assert_int_equal(vhostmsg_shmem_verify(f->s), 0);
	/* One more, in any shmid, is refused and changes nothing. */
	struct vhostmsg_map extra = shmem_map(1, 2 * VHOSTMSG_MAX_MAPPINGS * PAGE, PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &extra), -ENOSPC);
	extra = shmem_map(0, 0, PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &extra), -ENOSPC);
	/* So is an unmap that would split one mapping in two. */
	vhostmsg_shmem_set_region(f->s, 2, MIB);
	struct vhostmsg_map first = shmem_unmap(1, 0, PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &first), 0);
	struct vhostmsg_map big = shmem_map(2, 0, 3 * PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &big), 0);
	struct vhostmsg_map middle = shmem_unmap(2, PAGE, PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &middle), -ENOSPC);
	vhostmsg_shmem_totals(f->s, &n, &b);
	assert_int_equal(n, VHOSTMSG_MAX_MAPPINGS);
	assert_int_equal(b, (VHOSTMSG_MAX_MAPPINGS - 1) * PAGE + 3 * PAGE);
	assert_int_equal(vhostmsg_shmem_verify(f->s), 0);

	/* Reset forgets the mappings, keeps the regions. */
	vhostmsg_shmem_reset(f->s);
	vhostmsg_shmem_totals(f->s, &n, &b);
	assert_int_equal(n, 0);
	assert_int_equal(b, 0);
	assert_true(vhostmsg_shmem_known(f->s, 1));
	assert_true(vhostmsg_shmem_known(f->s, 2));
	assert_int_equal(vhostmsg_shmem_apply(f->s, &extra), 0);
}

static void test_shmem_apply_semantics(void **state)
{
	struct fixture *f = *state;
	struct vhostmsg_map m;

	/* Not representable: refused, nothing changes. */
	m = shmem_map(0, 0, 0);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &m), -EINVAL);
	m = shmem_map(0, UINT64_MAX - PAGE + 1, 2 * PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &m), -EINVAL);
	m = map_req(VHOSTMSG_BACKEND_IOTLB_MSG, 0, 0, PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &m), -EINVAL);
	assert_stats(f, 0, 0, 0);

	/* An unmap of nothing is a no-op. */
	m = shmem_unmap(0, 0, PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &m), 0);

	/* A front-end that accepted an overlap replaced what it covered. */
	map_ok(f, shmem_map(0, 0, 4 * PAGE));
	m = shmem_map(0, PAGE, PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &m), 0);
	assert_stats(f, 0, 3, 4 * PAGE); /* [0,1) [1,2) [2,4) */
	m = external_map(0, 3 * PAGE, 2 * PAGE, 0x7f0000000000ull);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &m), 0);
	assert_stats(f, 0, 4, 5 * PAGE); /* [0,1) [1,2) [2,3) [3,5) */
	assert_int_equal(vhostmsg_shmem_verify(f->s), 0);
	assert_int_equal(check(f, shmem_unmap(0, 2 * PAGE, PAGE)), VHOSTMSG_VALID);
	assert_int_equal(check(f, shmem_unmap(0, 3 * PAGE, 2 * PAGE)), VHOSTMSG_VALID);
	/* An accepted partial unmap cuts, as munmap does. */
	m = shmem_unmap(0, PAGE, 3 * PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &m), 0);
	assert_stats(f, 0, 2, 2 * PAGE); /* [0,1) [4,5) */
	assert_int_equal(check(f, shmem_unmap(0, 4 * PAGE, PAGE)), VHOSTMSG_VALID);
	/* Mappings are tracked in regions not (yet) known. */
	m = shmem_map(9, 0, PAGE);
	assert_int_equal(vhostmsg_shmem_apply(f->s, &m), 0);
	assert_stats(f, 9, 1, PAGE);
	assert_int_equal(vhostmsg_shmem_verify(f->s), 0);
}

static void test_shmem_stats(void **state)
{
	struct fixture *f = *state;
	uint64_t n, b;

	assert_stats(f, 0, 0, 0);
	map_ok(f, shmem_map(0, 0, 2 * PAGE));
	map_ok(f, map_req(VHOSTMSG_BACKEND_GPU_MAP, 0, 4 * PAGE, PAGE));
	map_ok(f, external_map(1, MIB, MIB, 0x7f0000000000ull));
	assert_stats(f, 0, 2, 3 * PAGE);
	assert_stats(f, 1, 1, MIB);
	assert_stats(f, 200, 0, 0);
	vhostmsg_shmem_totals(f->s, &n, &b);
	assert_int_equal(n, 3);
	assert_int_equal(b, 3 * PAGE + MIB);
	/* NULL outputs are allowed. */
	vhostmsg_shmem_stats(f->s, 0, NULL, &b);
	assert_int_equal(b, 3 * PAGE);
	vhostmsg_shmem_totals(f->s, &n, NULL);
	assert_int_equal(n, 3);
	/* The free function takes and returns NULL. */
	assert_null(vhostmsg_shmem_free(NULL));
}

/* ---- region learning ---- */

struct learnt {
	unsigned n;
	uint8_t ids[8];
	uint64_t sizes[8];
	struct vhostmsg_shmem *s;
};

static void learn(void *ud, uint8_t shmid, uint64_t size)
{
	struct learnt *l = ud;

	if (l->n < 8) {
		l->ids[l->n] = shmid;
		l->sizes[l->n] = size;
	}
	l->n++;
	if (l->s)
		vhostmsg_shmem_set_region(l->s, shmid, size);
}

static void test_regions_shmem_config(void **state)
{
	(void)state;
	uint8_t p[VHOSTMSG_SHMEM_CONFIG_SIZE] = { 0 };
	struct learnt l = { .s = vhostmsg_shmem_new() };
	enum vhostmsg_channel fe = VHOSTMSG_CHANNEL_FRONTEND;

	assert_non_null(l.s);
	assert_int_equal(sizeof(p), 2056);
	put32(p, 2);
	put64(p + 8 + 8 * 0, MIB);
	put64(p + 8 + 8 * 3, 2 * MIB);
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, VHOSTMSG_GET_SHMEM_CONFIG, true, p,
						       sizeof(p), learn, &l),
			 2);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.ids[0], 0);
	assert_int_equal(l.sizes[0], MIB);
	assert_int_equal(l.ids[1], 3);
	assert_int_equal(l.sizes[1], 2 * MIB);
	assert_true(vhostmsg_shmem_known(l.s, 0));
	assert_true(vhostmsg_shmem_known(l.s, 3));
	assert_false(vhostmsg_shmem_known(l.s, 1));
	struct vhostmsg_map m = shmem_map(3, MIB, MIB);
	assert_int_equal(vhostmsg_shmem_check(l.s, &m, false), VHOSTMSG_VALID);

	/* The last shmid, 255. */
	l.n = 0;
	put64(p + 8 + 8 * 255, PAGE);
	put32(p, 3);
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, VHOSTMSG_GET_SHMEM_CONFIG, true, p,
						       sizeof(p), learn, &l),
			 3);
	assert_int_equal(l.ids[2], 255);

	/* Not this reply: the request, the other channel, another request. */
	l.n = 0;
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, VHOSTMSG_GET_SHMEM_CONFIG, false, p,
						       sizeof(p), learn, &l),
			 -ENOMSG);
	assert_int_equal(vhostmsg_decode_shmem_regions(VHOSTMSG_CHANNEL_BACKEND,
						       VHOSTMSG_GET_SHMEM_CONFIG, true, p,
						       sizeof(p), learn, &l),
			 -ENOMSG);
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, VHOSTMSG_GET_CONFIG, true, p, sizeof(p),
						       learn, &l),
			 -ENOMSG);
	/* Malformed: not whole u64s, nregions out of range; nothing reported. */
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, VHOSTMSG_GET_SHMEM_CONFIG, true, p,
						       sizeof(p) - 1, learn, &l),
			 -EBADMSG);
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, VHOSTMSG_GET_SHMEM_CONFIG, true, p, 4,
						       learn, &l),
			 -EBADMSG);
	put32(p, 257);
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, VHOSTMSG_GET_SHMEM_CONFIG, true, p,
						       sizeof(p), learn, &l),
			 -EBADMSG);
	assert_int_equal(l.n, 0);
	/* An early draft's 8 entries. */
	put32(p, 1);
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, VHOSTMSG_GET_SHMEM_CONFIG, true, p,
						       8 + 8 * 8, learn, &l),
			 2);
	assert_int_equal(l.n, 2);
	/* No callback: only counted. */
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, VHOSTMSG_GET_SHMEM_CONFIG, true, p,
						       sizeof(p), NULL, NULL),
			 3);
	vhostmsg_shmem_free(l.s);
}

static void test_regions_crosvm(void **state)
{
	(void)state;
	uint8_t p[8 + 3 * 16] = { 0 };
	struct learnt l = { 0 };
	enum vhostmsg_channel fe = VHOSTMSG_CHANNEL_FRONTEND;
	const uint32_t req = VHOSTMSG_GET_SHARED_MEMORY_REGIONS;

	put64(p, 2);
	p[8] = 0;
	put64(p + 16, 8 * MIB);
	p[24] = 5;
	put64(p + 32, 4 * MIB);
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, req, true, p, 8 + 2 * 16, learn, &l), 2);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.ids[0], 0);
	assert_int_equal(l.sizes[0], 8 * MIB);
	assert_int_equal(l.ids[1], 5);
	assert_int_equal(l.sizes[1], 4 * MIB);

	l.n = 0;
	/* The size must be exactly 8 + 16 * count. */
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, req, true, p, sizeof(p), learn, &l),
			 -EBADMSG);
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, req, true, p, 8 + 16, learn, &l),
			 -EBADMSG);
	/* A shmid twice. */
	p[24] = 0;
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, req, true, p, 8 + 2 * 16, learn, &l),
			 -EBADMSG);
	/* A huge count. */
	put64(p, UINT64_MAX / 16);
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, req, true, p, sizeof(p), learn, &l),
			 -EBADMSG);
	assert_int_equal(l.n, 0);
	/* None. */
	put64(p, 0);
	assert_int_equal(vhostmsg_decode_shmem_regions(fe, req, true, p, 8, learn, &l), 0);
}

/* ---- replies ---- */

static void test_needs_reply(void **state)
{
	(void)state;
	enum vhostmsg_channel fe = VHOSTMSG_CHANNEL_FRONTEND, be = VHOSTMSG_CHANNEL_BACKEND;
	struct vhostmsg_header h;
	const uint64_t shmfd = 1ull << VHOSTMSG_PROTOCOL_F_LOG_SHMFD;

	h = hdr(VHOSTMSG_GET_FEATURES, V1, 0);
	assert_true(vhostmsg_needs_reply(fe, &h, 0));
	h = hdr(VHOSTMSG_GET_SHMEM_CONFIG, V1, 0);
	assert_true(vhostmsg_needs_reply(fe, &h, 0));
	h = hdr(VHOSTMSG_GET_VRING_BASE, V1, 8);
	assert_true(vhostmsg_needs_reply(fe, &h, 0));
	h = hdr(VHOSTMSG_SET_FEATURES, V1, 8);
	assert_false(vhostmsg_needs_reply(fe, &h, 0));
	h.flags |= VHOSTMSG_FLAG_NEED_REPLY;
	assert_true(vhostmsg_needs_reply(fe, &h, 0));
	/* A reply is never answered. */
	h.flags = V1 | VHOSTMSG_FLAG_REPLY | VHOSTMSG_FLAG_NEED_REPLY;
	assert_false(vhostmsg_needs_reply(fe, &h, 0));
	h = hdr(VHOSTMSG_GET_FEATURES, V1 | VHOSTMSG_FLAG_REPLY, 8);
	assert_false(vhostmsg_needs_reply(fe, &h, 0));
	/* SET_LOG_BASE only with a shared log fd. */
	h = hdr(VHOSTMSG_SET_LOG_BASE, V1, 16);
	assert_false(vhostmsg_needs_reply(fe, &h, 0));
	assert_true(vhostmsg_needs_reply(fe, &h, shmfd));

	/* Back-end channel: crosvm answers its own mapping requests always. */
	h = hdr(VHOSTMSG_BACKEND_EXTERNAL_MAP, V1, 32);
	assert_true(vhostmsg_needs_reply(be, &h, 0));
	h = hdr(VHOSTMSG_BACKEND_GPU_MAP, V1, 64);
	assert_true(vhostmsg_needs_reply(be, &h, 0));
	h = hdr(VHOSTMSG_BACKEND_SHMEM_MAP, V1, 40);
	assert_false(vhostmsg_needs_reply(be, &h, 0));
	h.flags |= VHOSTMSG_FLAG_NEED_REPLY;
	assert_true(vhostmsg_needs_reply(be, &h, 0));
	/* Numbers are per channel: 1 is GET_FEATURES only on the main socket. */
	h = hdr(1, V1, 32);
	assert_false(vhostmsg_needs_reply(be, &h, 0));
	h = hdr(VHOSTMSG_BACKEND_SHARED_OBJECT_LOOKUP, V1, 16);
	assert_true(vhostmsg_needs_reply(be, &h, 0));
	assert_false(vhostmsg_needs_reply(fe, &h, 0)); /* 8: SET_VRING_NUM */
}

static void test_reply_result(void **state)
{
	(void)state;
	uint8_t p[8];
	uint64_t v = 42;
	struct vhostmsg_header h = hdr(VHOSTMSG_BACKEND_EXTERNAL_MAP, V1 | VHOSTMSG_FLAG_REPLY, 8);

	put64(p, 0);
	assert_int_equal(vhostmsg_reply_result(&h, p, &v), 0);
	assert_int_equal(v, 0);
	put64(p, (uint64_t)-EPERM); /* crosvm's -errno */
	assert_int_equal(vhostmsg_reply_result(&h, p, &v), 0);
	assert_int_equal(v, (uint64_t)-EPERM);
	v = 42;
	h.flags = V1;
	assert_int_equal(vhostmsg_reply_result(&h, p, &v), -EINVAL);
	h.flags = V1 | VHOSTMSG_FLAG_REPLY;
	h.size = 4;
	assert_int_equal(vhostmsg_reply_result(&h, p, &v), -EBADMSG);
	h.size = 0;
	assert_int_equal(vhostmsg_reply_result(&h, NULL, &v), -EBADMSG);
	assert_int_equal(v, 42);
}

/* ---- fds ---- */

static void assert_fds(enum vhostmsg_channel ch, struct vhostmsg_header h, const void *payload,
		       unsigned min, unsigned max)
{
	unsigned lo = 99, hi = 99;

	vhostmsg_expected_fds(ch, &h, payload, &lo, &hi);
	assert_int_equal(lo, min);
	assert_int_equal(hi, max);
	for (unsigned n = 0; n <= VHOSTMSG_MAX_FDS + 1; n++)
		assert_int_equal(vhostmsg_check_fds(ch, &h, payload, n),
				 n >= min && n <= max ? VHOSTMSG_VALID : VHOSTMSG_FD_COUNT);
}

static void test_expected_fds(void **state)
{
	(void)state;
	enum vhostmsg_channel fe = VHOSTMSG_CHANNEL_FRONTEND, be = VHOSTMSG_CHANNEL_BACKEND;
	const uint32_t R = VHOSTMSG_FLAG_REPLY;
	uint8_t p[8 + 8 * 32] = { 0 };

	/* SET_MEM_TABLE: one fd per region. */
	put32(p, 3);
	assert_fds(fe, hdr(VHOSTMSG_SET_MEM_TABLE, V1, 8 + 3 * 32), p, 3, 3);
	put32(p, 9);
	assert_fds(fe, hdr(VHOSTMSG_SET_MEM_TABLE, V1, sizeof(p)), p, 0, VHOSTMSG_MAX_FDS);
	/* SET_VRING_KICK/CALL/ERR: by the nofd bit. */
	put64(p, 2);
	assert_fds(fe, hdr(VHOSTMSG_SET_VRING_KICK, V1, 8), p, 1, 1);
	put64(p, 2 | NOFD);
	assert_fds(fe, hdr(VHOSTMSG_SET_VRING_CALL, V1, 8), p, 0, 0);
	assert_fds(fe, hdr(VHOSTMSG_SET_VRING_ERR, V1, 0), NULL, 0, 1);
	assert_fds(fe, hdr(VHOSTMSG_SET_BACKEND_REQ_FD, V1, 0), NULL, 1, 1);
	assert_fds(fe, hdr(VHOSTMSG_SET_LOG_FD, V1, 0), NULL, 1, 1);
	assert_fds(fe, hdr(VHOSTMSG_SET_LOG_BASE, V1, 16), p, 0, 1);
	assert_fds(fe, hdr(VHOSTMSG_ADD_MEM_REG, V1, 40), p, 1, 1);
	assert_fds(fe, hdr(VHOSTMSG_SET_INFLIGHT_FD, V1, 24), p, 1, 1);
	assert_fds(fe, hdr(VHOSTMSG_SET_DEVICE_STATE_FD, V1, 8), p, 1, 1);
	assert_fds(fe, hdr(VHOSTMSG_GET_FEATURES, V1, 0), NULL, 0, 0);
	/* Replies. */
	assert_fds(fe, hdr(VHOSTMSG_GET_INFLIGHT_FD, V1 | R, 24), p, 0, 1);
	assert_fds(fe, hdr(VHOSTMSG_GET_FEATURES, V1 | R, 8), p, 0, 0);
	put64(p, NOFD);
	assert_fds(fe, hdr(VHOSTMSG_SET_DEVICE_STATE_FD, V1 | R, 8), p, 0, 0);
	put64(p, 0);
	assert_fds(fe, hdr(VHOSTMSG_SET_DEVICE_STATE_FD, V1 | R, 8), p, 1, 1);
	/* Nobody's request: anything up to the bound. */
	assert_fds(fe, hdr(777, V1, 0), NULL, 0, VHOSTMSG_MAX_FDS);

	/* Back-end channel. */
	assert_fds(be, hdr(VHOSTMSG_BACKEND_SHMEM_MAP, V1, 40), p, 1, 1);
	assert_fds(be, hdr(VHOSTMSG_BACKEND_SHMEM_UNMAP, V1, 40), p, 0, 0);
	assert_fds(be, hdr(VHOSTMSG_BACKEND_GPU_MAP, V1, 64), p, 1, 1);
	assert_fds(be, hdr(VHOSTMSG_BACKEND_EXTERNAL_MAP, V1, 32), p, 0, 0);
	assert_fds(be, hdr(VHOSTMSG_BACKEND_EXTERNAL_MAP, V1 | R, 8), p, 0, 0);
	put64(p, 1 | NOFD);
	assert_fds(be, hdr(VHOSTMSG_BACKEND_VRING_HOST_NOTIFIER_MSG, V1, 24), p, 0, 0);
	put64(p, 1);
	assert_fds(be, hdr(VHOSTMSG_BACKEND_VRING_HOST_NOTIFIER_MSG, V1, 24), p, 1, 1);
	assert_fds(be, hdr(VHOSTMSG_BACKEND_SHARED_OBJECT_LOOKUP, V1 | R, 8), p, 0, 1);
	/* 12 is SET_VRING_KICK on the main socket only. */
	assert_fds(be, hdr(12, V1, 8), p, 0, VHOSTMSG_MAX_FDS);
}

/* ---- sizes ---- */

static enum vhostmsg_reason size_of(enum vhostmsg_channel ch, uint32_t request, uint32_t size,
				    const void *payload)
{
	struct vhostmsg_header h = hdr(request, V1, size);

	return vhostmsg_check_size(ch, &h, payload);
}

static void test_check_size(void **state)
{
	(void)state;
	enum vhostmsg_channel fe = VHOSTMSG_CHANNEL_FRONTEND, be = VHOSTMSG_CHANNEL_BACKEND;
	uint8_t p[VHOSTMSG_MAX_PAYLOAD] = { 0 };
	struct vhostmsg_header h;

	assert_int_equal(size_of(fe, VHOSTMSG_SET_FEATURES, 8, p), VHOSTMSG_VALID);
	assert_int_equal(size_of(fe, VHOSTMSG_SET_FEATURES, 7, p), VHOSTMSG_SIZE_MISMATCH);
	assert_int_equal(size_of(fe, VHOSTMSG_GET_FEATURES, 0, NULL), VHOSTMSG_VALID);
	assert_int_equal(size_of(fe, VHOSTMSG_GET_FEATURES, 8, p), VHOSTMSG_SIZE_MISMATCH);
	assert_int_equal(size_of(fe, VHOSTMSG_SET_VRING_ADDR, 40, p), VHOSTMSG_VALID);
	assert_int_equal(size_of(fe, VHOSTMSG_SET_LOG_BASE, 16, p), VHOSTMSG_VALID);
	/* SET_MEM_TABLE: 8 + 32 per region, at most 8 regions. */
	put32(p, 2);
	assert_int_equal(size_of(fe, VHOSTMSG_SET_MEM_TABLE, 8 + 64, p), VHOSTMSG_VALID);
	assert_int_equal(size_of(fe, VHOSTMSG_SET_MEM_TABLE, 8 + 32, p), VHOSTMSG_SIZE_MISMATCH);
	assert_int_equal(size_of(fe, VHOSTMSG_SET_MEM_TABLE, 8 + 8 * 32, p), VHOSTMSG_VALID);
	put32(p, 9);
	assert_int_equal(size_of(fe, VHOSTMSG_SET_MEM_TABLE, 8 + 9 * 32, p),
			 VHOSTMSG_SIZE_MISMATCH);
	/* GET_CONFIG: 12-byte header plus its size field. */
	put32(p + 4, 10);
	assert_int_equal(size_of(fe, VHOSTMSG_GET_CONFIG, 22, p), VHOSTMSG_VALID);
	assert_int_equal(size_of(fe, VHOSTMSG_SET_CONFIG, 21, p), VHOSTMSG_SIZE_MISMATCH);
	put32(p + 4, UINT32_MAX);
	assert_int_equal(size_of(fe, VHOSTMSG_GET_CONFIG, 22, p), VHOSTMSG_SIZE_MISMATCH);
	/* Back-end mapping requests. */
	assert_int_equal(size_of(be, VHOSTMSG_BACKEND_EXTERNAL_MAP, 32, p), VHOSTMSG_VALID);
	assert_int_equal(size_of(be, VHOSTMSG_BACKEND_EXTERNAL_MAP, 33, p), VHOSTMSG_SIZE_MISMATCH);
	assert_int_equal(size_of(be, VHOSTMSG_BACKEND_SHMEM_MAP, 40, p), VHOSTMSG_VALID);
	assert_int_equal(size_of(be, VHOSTMSG_BACKEND_GPU_MAP, 64, p), VHOSTMSG_VALID);
	assert_int_equal(size_of(be, VHOSTMSG_BACKEND_CONFIG_CHANGE_MSG, 8, p),
			 VHOSTMSG_SIZE_MISMATCH);
	/* 1007 means nothing on the main socket: not judged there. */
	assert_int_equal(size_of(fe, 1007, 5, p), VHOSTMSG_VALID);
	/* Unknown requests and replies are not judged. */
	assert_int_equal(size_of(be, 4242, 17, p), VHOSTMSG_VALID);
	h = hdr(VHOSTMSG_SET_FEATURES, V1 | VHOSTMSG_FLAG_REPLY, 3);
	assert_int_equal(vhostmsg_check_size(fe, &h, p), VHOSTMSG_VALID);
}

#define SHMEM_TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_frontend),
		cmocka_unit_test(test_names_backend),
		cmocka_unit_test(test_reason_and_channel_names),
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_check_header),
		cmocka_unit_test(test_decode_map_shmem),
		cmocka_unit_test(test_decode_map_gpu),
		cmocka_unit_test(test_decode_map_external),
		cmocka_unit_test(test_decode_map_legacy),
		SHMEM_TEST(test_shmem_valid),
		SHMEM_TEST(test_shmem_len_zero),
		SHMEM_TEST(test_shmem_overflow),
		SHMEM_TEST(test_shmem_unaligned_offset),
		SHMEM_TEST(test_shmem_unaligned_len),
		SHMEM_TEST(test_shmem_unknown_shmid),
		SHMEM_TEST(test_shmem_beyond_region),
		SHMEM_TEST(test_shmem_overlap),
		SHMEM_TEST(test_shmem_noncanonical_ptr),
		SHMEM_TEST(test_shmem_out_of_process),
		SHMEM_TEST(test_shmem_unmap),
		SHMEM_TEST(test_shmem_bad_map_flags),
		SHMEM_TEST(test_shmem_check_all),
		SHMEM_TEST(test_shmem_apply_bound),
		SHMEM_TEST(test_shmem_apply_semantics),
		SHMEM_TEST(test_shmem_stats),
		cmocka_unit_test(test_regions_shmem_config),
		cmocka_unit_test(test_regions_crosvm),
		cmocka_unit_test(test_needs_reply),
		cmocka_unit_test(test_reply_result),
		cmocka_unit_test(test_expected_fds),
		cmocka_unit_test(test_check_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
