/* SPDX-License-Identifier: MIT */
/*
 * Learning region sizes from the front-end channel: the replies to the spec's
 * GET_SHMEM_CONFIG and crosvm's older GET_SHARED_MEMORY_REGIONS.
 */
#include <errno.h>

#include "vhostmsg.h"
#include "wire.h"

#define CROSVM_REGION_SIZE 16u /* {u8 id; u8 padding[7]; u64 length} */

typedef void (*region_cb)(void *ud, uint8_t shmid, uint64_t size);

/*
 * {u32 nregions; u32 padding; u64 sizes[256]}: the shmid is the index, a zero
 * size is no region. Early drafts sent fewer entries, so any whole number up
 * to 256 is taken, the rest being zero. nregions counts the non-zero entries;
 * it is bounded but not matched against them (crosvm stops after nregions,
 * QEMU copies all): every non-zero entry is reported.
 */
static int shmem_config(const uint8_t *p, uint32_t size, region_cb cb, void *ud)
{
	uint32_t entries;
	int n = 0;

	if (size < 8 || (size - 8) % 8 != 0)
		return -EBADMSG;
	entries = (size - 8) / 8;
	if (entries > VHOSTMSG_MAX_SHMEM_REGIONS || wire_u32(p) > VHOSTMSG_MAX_SHMEM_REGIONS)
		return -EBADMSG;
	for (uint32_t i = 0; i < entries; i++)
		if (wire_u64(p + 8 + 8 * i) != 0)
			n++;
	if (cb)
		for (uint32_t i = 0; i < entries; i++) {
			uint64_t len = wire_u64(p + 8 + 8 * i);
			if (len != 0)
				cb(ud, (uint8_t)i, len);
		}
	return n;
}

/* {u64 count} then count regions; each shmid once. */
static int crosvm_regions(const uint8_t *p, uint32_t size, region_cb cb, void *ud)
{
	uint8_t seen[VHOSTMSG_MAX_SHMEM_REGIONS / 8] = { 0 };
	uint64_t count;

	if (size < 8)
		return -EBADMSG;
	count = wire_u64(p);
	if (count > VHOSTMSG_MAX_SHMEM_REGIONS || size != 8 + count * CROSVM_REGION_SIZE)
		return -EBADMSG;
	for (uint64_t i = 0; i < count; i++) {
		uint8_t id = p[8 + i * CROSVM_REGION_SIZE];
		if (seen[id / 8] & (1u << (id % 8)))
			return -EBADMSG;
		seen[id / 8] |= (uint8_t)(1u << (id % 8));
	}
	if (cb)
		for (uint64_t i = 0; i < count; i++) {
			const uint8_t *r = p + 8 + i * CROSVM_REGION_SIZE;
			cb(ud, r[0], wire_u64(r + 8));
		}
	return (int)count;
}

int vhostmsg_decode_shmem_regions(enum vhostmsg_channel ch, uint32_t request, bool reply,
				  const void *payload, uint32_t size,
				  void (*cb)(void *ud, uint8_t shmid, uint64_t size), void *ud)
{
	if (ch != VHOSTMSG_CHANNEL_FRONTEND || !reply)
		return -ENOMSG;
	if (request != VHOSTMSG_GET_SHMEM_CONFIG && request != VHOSTMSG_GET_SHARED_MEMORY_REGIONS)
		return -ENOMSG;
	if (size > VHOSTMSG_MAX_PAYLOAD || (size > 0 && !payload))
		return -EBADMSG;
	if (request == VHOSTMSG_GET_SHMEM_CONFIG)
		return shmem_config(payload, size, cb, ud);
	return crosvm_regions(payload, size, cb, ud);
}
