/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory tracker's storage: per shmid, a sorted array of live
 * mappings, bounded in all by VHOSTMSG_MAX_MAPPINGS. Arrays shrink as they
 * empty, so memory follows the live mappings rather than their history.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shmem_internal.h"

#define MIN_CAP 8u

struct vhostmsg_shmem *vhostmsg_shmem_new(void)
{
	return calloc(1, sizeof(struct vhostmsg_shmem));
}

struct vhostmsg_shmem *vhostmsg_shmem_free(struct vhostmsg_shmem *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < VHOSTMSG_MAX_SHMEM_REGIONS; i++)
		free(s->regions[i].maps);
	free(s);
	return NULL;
}

void vhostmsg_shmem_set_region(struct vhostmsg_shmem *s, uint8_t shmid, uint64_t size)
{
	s->regions[shmid].known = true;
	s->regions[shmid].size = size;
}

bool vhostmsg_shmem_known(const struct vhostmsg_shmem *s, uint8_t shmid)
{
	return s->regions[shmid].known;
}

void vhostmsg_shmem_reset(struct vhostmsg_shmem *s)
{
	for (size_t i = 0; i < VHOSTMSG_MAX_SHMEM_REGIONS; i++) {
		struct shmem_region *r = &s->regions[i];
		free(r->maps);
		r->maps = NULL;
		r->n = r->cap = 0;
		r->bytes = 0;
	}
	s->n_total = 0;
}

uint32_t shmem_first_ending_after(const struct shmem_region *r, uint64_t offset)
{
	uint32_t lo = 0, hi = r->n;

	/* Ends increase with offsets: the mappings never overlap. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (shmem_range_end(&r->maps[mid]) > offset)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

uint32_t shmem_first_starting_from(const struct shmem_region *r, uint64_t offset)
{
	uint32_t lo = 0, hi = r->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (r->maps[mid].offset >= offset)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Room for n mappings; grows by doubling, halves once three quarters are unused. */
static int region_fit(struct shmem_region *r, uint32_t n)
{
	uint32_t cap = r->cap;
	struct shmem_range *maps;

	if (n == 0) {
		free(r->maps);
		r->maps = NULL;
		r->cap = 0;
		return 0;
	}
	if (cap < MIN_CAP)
		cap = MIN_CAP;
	while (cap < n)
		cap *= 2;
	while (cap > MIN_CAP && n < cap / 4)
		cap /= 2;
	if (cap == r->cap)
		return 0;
	maps = realloc(r->maps, (size_t)cap * sizeof(*maps));
	if (!maps) {
		/* Shrinking is optional; growing is not. */
		return cap < r->cap ? 0 : -ENOMEM;
	}
	r->maps = maps;
	r->cap = cap;
	return 0;
}

/*
 * Replaces mappings [lo, hi) of r with the n_ins ranges ins (sorted, fitting
 * between the neighbours), within the global bound. Unchanged on error.
 */
static int region_splice(struct vhostmsg_shmem *s, struct shmem_region *r, uint32_t lo, uint32_t hi,
			 const struct shmem_range *ins, uint32_t n_ins)
{
	uint32_t removed = hi - lo;
	uint32_t n_new = r->n - removed + n_ins;
	uint64_t total = (uint64_t)s->n_total - removed + n_ins;
	uint64_t bytes = r->bytes;
	int ret;

	if (total > VHOSTMSG_MAX_MAPPINGS)
		return -ENOSPC;
	for (uint32_t i = lo; i < hi; i++)
		bytes -= r->maps[i].len;
	for (uint32_t i = 0; i < n_ins; i++)
		bytes += ins[i].len;

	if (n_new > r->cap) {
		ret = region_fit(r, n_new);
		if (ret < 0)
			return ret;
	}
	if (n_ins != removed)
		memmove(r->maps + lo + n_ins, r->maps + hi, (size_t)(r->n - hi) * sizeof(*r->maps));
	if (n_ins)
		memcpy(r->maps + lo, ins, (size_t)n_ins * sizeof(*ins));
	r->n = n_new;
	r->bytes = bytes;
	s->n_total = (uint32_t)total;
	if (n_new < r->cap)
		(void)region_fit(r, n_new);
	return 0;
}

int vhostmsg_shmem_apply(struct vhostmsg_shmem *s, const struct vhostmsg_map *m)
{
	enum shmem_kind kind = shmem_kind_of(m->request);
	struct shmem_region *r = &s->regions[m->shmid];
	uint64_t start = m->shm_offset, end = m->shm_offset + m->len;
	struct shmem_range ins[3];
	uint32_t lo, hi, n_ins = 0;

	if (kind == SHMEM_KIND_NONE || m->len == 0 || end < start)
		return -EINVAL;

	/* Live mappings touching [start, end): keep what lies outside it. */
	lo = shmem_first_ending_after(r, start);
	hi = shmem_first_starting_from(r, end);
	if (lo < hi && r->maps[lo].offset < start)
		ins[n_ins++] =
			(struct shmem_range){ r->maps[lo].offset, start - r->maps[lo].offset };
	if (kind == SHMEM_KIND_MAP)
		ins[n_ins++] = (struct shmem_range){ start, m->len };
	if (lo < hi && shmem_range_end(&r->maps[hi - 1]) > end)
		ins[n_ins++] = (struct shmem_range){ end, shmem_range_end(&r->maps[hi - 1]) - end };

	if (lo == hi && n_ins == 0)
		return 0; /* an unmap of nothing */
	return region_splice(s, r, lo, hi, ins, n_ins);
}

void vhostmsg_shmem_stats(const struct vhostmsg_shmem *s, uint8_t shmid, uint64_t *ret_mappings,
			  uint64_t *ret_bytes)
{
	if (ret_mappings)
		*ret_mappings = s->regions[shmid].n;
	if (ret_bytes)
		*ret_bytes = s->regions[shmid].bytes;
}

void vhostmsg_shmem_totals(const struct vhostmsg_shmem *s, uint64_t *ret_mappings,
			   uint64_t *ret_bytes)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < VHOSTMSG_MAX_SHMEM_REGIONS; i++)
		bytes += s->regions[i].bytes;
	if (ret_mappings)
		*ret_mappings = s->n_total;
	if (ret_bytes)
		*ret_bytes = bytes;
}

int vhostmsg_shmem_verify(const struct vhostmsg_shmem *s)
{
	uint64_t total = 0;

	for (size_t i = 0; i < VHOSTMSG_MAX_SHMEM_REGIONS; i++) {
		const struct shmem_region *r = &s->regions[i];
		uint64_t bytes = 0;

		if (r->n > r->cap || (r->cap && !r->maps))
			return -EUCLEAN;
		for (uint32_t j = 0; j < r->n; j++) {
			const struct shmem_range *x = &r->maps[j];
			if (x->len == 0 || shmem_range_end(x) < x->offset)
				return -EUCLEAN;
			if (j > 0 && shmem_range_end(&r->maps[j - 1]) > x->offset)
				return -EUCLEAN;
			if (bytes + x->len < bytes)
				return -EUCLEAN;
			bytes += x->len;
		}
		if (bytes != r->bytes)
			return -EUCLEAN;
		total += r->n;
	}
	if (total != s->n_total || total > VHOSTMSG_MAX_MAPPINGS)
		return -EUCLEAN;
	return 0;
}
