/* SPDX-License-Identifier: MIT */
/* The rules a mapping request must satisfy before the front-end acts on it. */
#include "shmem_internal.h"

/*
 * x86-64 with 4-level paging: bits 63..47 of an address all equal. We take
 * this 48-bit rule everywhere, the stricter choice: with la57 (5-level
 * paging) a process may own addresses up to bit 56, but Linux hands those out
 * only to a process that asks for them with an mmap hint above 2^47, which
 * VMMs do not do, so a VMM pointer above 47 bits is suspect anyway. Other
 * 64-bit architectures' user addresses also fit in 48 bits by default.
 */
static bool canonical48(uint64_t addr)
{
	uint64_t top = addr >> 47; /* 17 bits */

	return top == 0 || top == (1ull << 17) - 1;
}

/* [ptr, ptr + len) canonical throughout: both ends in the same half, no wrap. */
static bool canonical_range(uint64_t ptr, uint64_t len)
{
	uint64_t last = ptr + (len ? len - 1 : 0);

	if (last < ptr)
		return false;
	return canonical48(ptr) && canonical48(last) && (ptr >> 47) == (last >> 47);
}

static bool overlaps_live(const struct shmem_region *r, uint64_t offset, uint64_t end)
{
	uint32_t i = shmem_first_ending_after(r, offset);

	return i < r->n && r->maps[i].offset < end;
}

/* [offset, end) is exactly one or more live mappings laid end to end. */
static bool tiled_by_live(const struct shmem_region *r, uint64_t offset, uint64_t end)
{
	uint32_t i = shmem_first_ending_after(r, offset);
	uint64_t cur = offset;

	while (cur < end) {
		if (i >= r->n || r->maps[i].offset != cur)
			return false;
		cur = shmem_range_end(&r->maps[i++]);
	}
	return cur == end;
}

static bool has_fd_offset(uint32_t request)
{
	return request == VHOSTMSG_BACKEND_SHMEM_MAP ||
	       request == VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY;
}

static uint64_t reserved_map_flags(uint32_t request)
{
	switch (request) {
	case VHOSTMSG_BACKEND_SHMEM_MAP:
		return ~VHOSTMSG_MAP_FLAG_RW;
	case VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY:
		return ~0x3ull; /* crosvm's old read (1) and write (2) */
	default:
		return 0;
	}
}

uint32_t vhostmsg_shmem_check_all(const struct vhostmsg_shmem *s, const struct vhostmsg_map *m,
				  bool in_process)
{
	enum shmem_kind kind = shmem_kind_of(m->request);
	const struct shmem_region *r = &s->regions[m->shmid];
	uint64_t end = m->shm_offset + m->len;
	bool wraps = end < m->shm_offset;
	uint32_t mask = 0;

	if (kind == SHMEM_KIND_NONE)
		return 0;

	if (m->len == 0)
		mask |= VHOSTMSG_REASON_BIT(VHOSTMSG_LEN_ZERO);
	if (has_fd_offset(m->request) && m->fd_offset + m->len < m->fd_offset)
		mask |= VHOSTMSG_REASON_BIT(VHOSTMSG_OVERFLOW);
	if (wraps)
		mask |= VHOSTMSG_REASON_BIT(VHOSTMSG_OVERFLOW);

	if (m->shm_offset % VHOSTMSG_PAGE_SIZE || m->len % VHOSTMSG_PAGE_SIZE ||
	    (has_fd_offset(m->request) && m->fd_offset % VHOSTMSG_PAGE_SIZE) ||
	    (m->request == VHOSTMSG_BACKEND_EXTERNAL_MAP && m->ptr % VHOSTMSG_PAGE_SIZE))
		mask |= VHOSTMSG_REASON_BIT(VHOSTMSG_UNALIGNED);

	if (m->flags & reserved_map_flags(m->request))
		mask |= VHOSTMSG_REASON_BIT(VHOSTMSG_BAD_MAP_FLAGS);

	if (m->request == VHOSTMSG_BACKEND_EXTERNAL_MAP) {
		if (!canonical_range(m->ptr, m->len))
			mask |= VHOSTMSG_REASON_BIT(VHOSTMSG_NONCANONICAL_PTR);
		/* A remote backend's pointer means nothing in the front-end (crosvm: EPERM). */
		if (!in_process)
			mask |= VHOSTMSG_REASON_BIT(VHOSTMSG_OUT_OF_PROCESS);
	}

	if (wraps)
		return mask;
	if (!r->known || end > r->size)
		mask |= VHOSTMSG_REASON_BIT(VHOSTMSG_UNKNOWN_SHMID);
	if (m->len == 0)
		return mask;
	if (kind == SHMEM_KIND_MAP && overlaps_live(r, m->shm_offset, end))
		mask |= VHOSTMSG_REASON_BIT(VHOSTMSG_OVERLAP);
	if (kind == SHMEM_KIND_UNMAP && !tiled_by_live(r, m->shm_offset, end))
		mask |= VHOSTMSG_REASON_BIT(VHOSTMSG_NOT_MAPPED);
	return mask;
}

enum vhostmsg_reason vhostmsg_shmem_check(const struct vhostmsg_shmem *s,
					  const struct vhostmsg_map *m, bool in_process)
{
	uint32_t mask = vhostmsg_shmem_check_all(s, m, in_process);

	if (mask == 0)
		return VHOSTMSG_VALID;
	return (enum vhostmsg_reason)__builtin_ctz(mask);
}
