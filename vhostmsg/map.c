/* SPDX-License-Identifier: MIT */
/*
 * Decoding the back-end's mapping requests. Layouts (native endian):
 *   SHMEM_MAP/UNMAP (9/10, spec)   {u8 shmid; u8 pad[7]; u64 fd_offset; u64 shm_offset;
 *                                   u64 len; u64 flags}, MAP with one fd
 *   GPU_MAP (1006, crosvm)         {u8 shmid; u8 pad[7]; u64 shm_offset; u64 len;
 *                                   u32 memory_idx; u32 handle_type; u8 device_uuid[16];
 *                                   u8 driver_uuid[16]}, one fd (the exported GPU memory)
 *   EXTERNAL_MAP (1007, crosvm)    {u8 shmid; u8 pad[7]; u64 shm_offset; u64 len; u64 ptr}
 *   SHMEM_MAP_LEGACY (1000)        {u8 flags; u8 shmid; u8 pad[6]; u64 shm_offset;
 *                                   u64 fd_offset; u64 len}, one fd
 *   SHMEM_UNMAP_LEGACY (1001)      {u8 shmid; u8 pad[7]; u64 shm_offset; u64 len}
 */
#include <string.h>

#include "vhostmsg.h"
#include "wire.h"

struct map_layout {
	uint32_t size;
	unsigned n_fds;
};

static bool layout_of(uint32_t request, struct map_layout *ret)
{
	switch (request) {
	case VHOSTMSG_BACKEND_SHMEM_MAP:
		*ret = (struct map_layout){ VHOSTMSG_SHMEM_MAP_SIZE, 1 };
		return true;
	case VHOSTMSG_BACKEND_SHMEM_UNMAP:
		*ret = (struct map_layout){ VHOSTMSG_SHMEM_MAP_SIZE, 0 };
		return true;
	case VHOSTMSG_BACKEND_GPU_MAP:
		*ret = (struct map_layout){ VHOSTMSG_GPU_MAP_SIZE, 1 };
		return true;
	case VHOSTMSG_BACKEND_EXTERNAL_MAP:
		*ret = (struct map_layout){ VHOSTMSG_EXTERNAL_MAP_SIZE, 0 };
		return true;
	case VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY:
		*ret = (struct map_layout){ VHOSTMSG_SHMEM_MAP_LEGACY_SIZE, 1 };
		return true;
	case VHOSTMSG_BACKEND_SHMEM_UNMAP_LEGACY:
		*ret = (struct map_layout){ VHOSTMSG_SHMEM_UNMAP_LEGACY_SIZE, 0 };
		return true;
	default:
		return false;
	}
}

int vhostmsg_decode_map(const struct vhostmsg_header *h, const void *payload, unsigned n_fds,
			struct vhostmsg_map *ret)
{
	const uint8_t *p = payload;
	struct vhostmsg_map m = { .request = h->request };
	struct map_layout l;

	if (h->flags & VHOSTMSG_FLAG_REPLY)
		return 0;
	if (!layout_of(h->request, &l))
		return 0;
	if (h->size != l.size || !p)
		return -VHOSTMSG_SIZE_MISMATCH;
	if (n_fds != l.n_fds)
		return -VHOSTMSG_FD_COUNT;

	switch (h->request) {
	case VHOSTMSG_BACKEND_SHMEM_MAP:
	case VHOSTMSG_BACKEND_SHMEM_UNMAP:
		m.shmid = p[0];
		m.fd_offset = wire_u64(p + 8);
		m.shm_offset = wire_u64(p + 16);
		m.len = wire_u64(p + 24);
		m.flags = wire_u64(p + 32);
		break;
	case VHOSTMSG_BACKEND_GPU_MAP:
		m.shmid = p[0];
		m.shm_offset = wire_u64(p + 8);
		m.len = wire_u64(p + 16);
		break;
	case VHOSTMSG_BACKEND_EXTERNAL_MAP:
		m.shmid = p[0];
		m.shm_offset = wire_u64(p + 8);
		m.len = wire_u64(p + 16);
		m.ptr = wire_u64(p + 24);
		break;
	case VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY:
		m.flags = p[0];
		m.shmid = p[1];
		m.shm_offset = wire_u64(p + 8);
		m.fd_offset = wire_u64(p + 16);
		m.len = wire_u64(p + 24);
		break;
	case VHOSTMSG_BACKEND_SHMEM_UNMAP_LEGACY:
		m.shmid = p[0];
		m.shm_offset = wire_u64(p + 8);
		m.len = wire_u64(p + 16);
		break;
	}
	*ret = m;
	return 1;
}
