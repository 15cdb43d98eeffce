/* SPDX-License-Identifier: MIT */
/* The shared-memory tracker's state, shared by its storage and its rules. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "vhostmsg.h"

struct shmem_range {
	uint64_t offset, len; /* offset + len never wraps, len != 0 */
};

struct shmem_region {
	struct shmem_range *maps; /* live mappings sorted by offset, never overlapping */
	uint32_t n, cap;
	uint64_t bytes; /* sum of the lens */
	uint64_t size;  /* when known */
	bool known;
};

struct vhostmsg_shmem {
	struct shmem_region regions[VHOSTMSG_MAX_SHMEM_REGIONS];
	uint32_t n_total; /* over all regions, <= VHOSTMSG_MAX_MAPPINGS */
};

enum shmem_kind {
	SHMEM_KIND_NONE,
	SHMEM_KIND_MAP,
	SHMEM_KIND_UNMAP,
};

static inline enum shmem_kind shmem_kind_of(uint32_t request)
{
	switch (request) {
	case VHOSTMSG_BACKEND_SHMEM_MAP:
	case VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY:
	case VHOSTMSG_BACKEND_GPU_MAP:
	case VHOSTMSG_BACKEND_EXTERNAL_MAP:
		return SHMEM_KIND_MAP;
	case VHOSTMSG_BACKEND_SHMEM_UNMAP:
	case VHOSTMSG_BACKEND_SHMEM_UNMAP_LEGACY:
		return SHMEM_KIND_UNMAP;
	default:
		return SHMEM_KIND_NONE;
	}
}

static inline uint64_t shmem_range_end(const struct shmem_range *r)
{
	return r->offset + r->len;
}

/* The first mapping of r ending after offset (r->n when none). */
uint32_t shmem_first_ending_after(const struct shmem_region *r, uint64_t offset);
/* The first mapping of r starting at or after offset (r->n when none). */
uint32_t shmem_first_starting_from(const struct shmem_region *r, uint64_t offset);
