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

#include "payload.h"
#include "vhostmsg.h"

#define PAGE   ((uint64_t)VHOSTMSG_PAGE_SIZE)
#define MIB    (1024ull * 1024ull)
#define V1     VHOSTMSG_VERSION
#define NOFD   VHOSTMSG_VRING_NOFD
#define BIT(r) VHOSTMSG_REASON_BIT(r)

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
		cmocka_unit_test(test_needs_reply),
		cmocka_unit_test(test_reply_result),
		cmocka_unit_test(test_expected_fds),
		cmocka_unit_test(test_check_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
