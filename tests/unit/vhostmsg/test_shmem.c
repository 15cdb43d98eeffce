/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory mapping tracker of vhostmsg (shmem.c, shmem_check.c):
 * which SHMEM_MAP, GPU_MAP and EXTERNAL_MAP requests are valid against the
 * regions and the live mappings, what applying them does, its bounds, and
 * the regions learnt from the frontend's replies.
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

#include "payload.h"
#include "vhostmsg.h"

#define PAGE   ((uint64_t)VHOSTMSG_PAGE_SIZE)
#define MIB    (1024ull * 1024ull)
#define BIT(r) VHOSTMSG_REASON_BIT(r)

#define SHMEM_TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

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

int main(void)
{
	const struct CMUnitTest tests[] = {
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
