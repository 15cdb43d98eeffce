/* SPDX-License-Identifier: MIT */
/*
 * Payload sizes of requests, per the spec's payload layouts (and crosvm's).
 * Lenient where real front-ends differ from the text: QEMU sends SET_LOG_BASE
 * as the 16-byte log description although the spec says u64, and some
 * front-ends send SET_MEM_TABLE's whole 8-region array.
 */
#include "vhostmsg.h"
#include "wire.h"

#define ANY_SIZE 0xffffffffu

struct size_range {
	uint32_t min, max;
};

#define EXACTLY(n) ((struct size_range){ (n), (n) })
/* Payloads whose own fields are impossible (too many regions, too much config). */
#define NOTHING_FITS ((struct size_range){ 1, 0 })

/* struct vhost_iotlb_msg: three u64, two u8, tail padding to 32. */
#define IOTLB_MIN 26u
#define IOTLB_MAX 32u
/* Inflight description: two u64, two u16, padding to 24. */
#define INFLIGHT_MIN 20u
#define INFLIGHT_MAX 24u
#define MEM_REGION   32u /* guest address, size, user address, mmap offset */
#define CONFIG_HDR   12u /* offset, size, flags */

static struct size_range frontend_request(uint32_t request, const void *payload, uint32_t size)
{
	switch (request) {
	case VHOSTMSG_GET_FEATURES:
	case VHOSTMSG_SET_OWNER:
	case VHOSTMSG_RESET_OWNER:
	case VHOSTMSG_SET_LOG_FD:
	case VHOSTMSG_GET_PROTOCOL_FEATURES:
	case VHOSTMSG_GET_QUEUE_NUM:
	case VHOSTMSG_SET_BACKEND_REQ_FD:
	case VHOSTMSG_POSTCOPY_ADVISE:
	case VHOSTMSG_POSTCOPY_LISTEN:
	case VHOSTMSG_POSTCOPY_END:
	case VHOSTMSG_GPU_SET_SOCKET:
	case VHOSTMSG_RESET_DEVICE:
	case VHOSTMSG_GET_MAX_MEM_SLOTS:
	case VHOSTMSG_GET_STATUS:
	case VHOSTMSG_CHECK_DEVICE_STATE:
	case VHOSTMSG_GET_SHMEM_CONFIG:
	case VHOSTMSG_GET_SHARED_MEMORY_REGIONS:
		return EXACTLY(0);
	/* u64, vring state {u32 index; u32 num}, device state parameters {u32; u32} */
	case VHOSTMSG_SET_FEATURES:
	case VHOSTMSG_SET_VRING_NUM:
	case VHOSTMSG_SET_VRING_BASE:
	case VHOSTMSG_GET_VRING_BASE:
	case VHOSTMSG_SET_VRING_KICK:
	case VHOSTMSG_SET_VRING_CALL:
	case VHOSTMSG_SET_VRING_ERR:
	case VHOSTMSG_SET_PROTOCOL_FEATURES:
	case VHOSTMSG_SET_VRING_ENABLE:
	case VHOSTMSG_SEND_RARP:
	case VHOSTMSG_NET_SET_MTU:
	case VHOSTMSG_SET_VRING_ENDIAN:
	case VHOSTMSG_CLOSE_CRYPTO_SESSION:
	case VHOSTMSG_VRING_KICK:
	case VHOSTMSG_SET_STATUS:
	case VHOSTMSG_SET_DEVICE_STATE_FD:
		return EXACTLY(8);
	case VHOSTMSG_SET_LOG_BASE:
		return (struct size_range){ 8, 16 };
	case VHOSTMSG_SET_VRING_ADDR:
		return EXACTLY(40); /* index, flags, four u64 addresses */
	case VHOSTMSG_SET_MEM_TABLE:
		/* {u32 nregions; u32 padding; regions[nregions]}, at most 8 regions. */
		if (size >= 8 && payload) {
			uint32_t n = wire_u32(payload);
			if (n > VHOSTMSG_MAX_FDS)
				return NOTHING_FITS;
			return (struct size_range){ 8 + n * MEM_REGION,
						    8 + VHOSTMSG_MAX_FDS * MEM_REGION };
		}
		return (struct size_range){ 8, 8 + VHOSTMSG_MAX_FDS * MEM_REGION };
	case VHOSTMSG_IOTLB_MSG:
		return (struct size_range){ IOTLB_MIN, IOTLB_MAX };
	case VHOSTMSG_GET_CONFIG:
	case VHOSTMSG_SET_CONFIG:
		/* {u32 offset; u32 size; u32 flags; u8 payload[size]} */
		if (size >= CONFIG_HDR && payload) {
			uint64_t want =
				(uint64_t)CONFIG_HDR + wire_u32((const uint8_t *)payload + 4);
			if (want > VHOSTMSG_MAX_PAYLOAD)
				return NOTHING_FITS;
			return EXACTLY((uint32_t)want);
		}
		return (struct size_range){ CONFIG_HDR, VHOSTMSG_MAX_PAYLOAD };
	case VHOSTMSG_GET_INFLIGHT_FD:
	case VHOSTMSG_SET_INFLIGHT_FD:
		return (struct size_range){ INFLIGHT_MIN, INFLIGHT_MAX };
	case VHOSTMSG_ADD_MEM_REG:
	case VHOSTMSG_REM_MEM_REG:
		return EXACTLY(8 + MEM_REGION); /* u64 padding, one region */
	case VHOSTMSG_GET_SHARED_OBJECT:
		return EXACTLY(16); /* a UUID */
	default:
		/* CREATE_CRYPTO_SESSION (variable), crosvm's retired ones, unknown */
		return (struct size_range){ 0, ANY_SIZE };
	}
}

static struct size_range backend_request(uint32_t request)
{
	switch (request) {
	case VHOSTMSG_BACKEND_IOTLB_MSG:
		return (struct size_range){ IOTLB_MIN, IOTLB_MAX };
	case VHOSTMSG_BACKEND_CONFIG_CHANGE_MSG:
		return EXACTLY(0);
	case VHOSTMSG_BACKEND_VRING_HOST_NOTIFIER_MSG:
		return EXACTLY(24); /* vring area: u64 index and flags, size, offset */
	case VHOSTMSG_BACKEND_VRING_CALL:
	case VHOSTMSG_BACKEND_VRING_ERR:
		return EXACTLY(8);
	case VHOSTMSG_BACKEND_SHARED_OBJECT_ADD:
	case VHOSTMSG_BACKEND_SHARED_OBJECT_REMOVE:
	case VHOSTMSG_BACKEND_SHARED_OBJECT_LOOKUP:
		return EXACTLY(16);
	case VHOSTMSG_BACKEND_SHMEM_MAP:
	case VHOSTMSG_BACKEND_SHMEM_UNMAP:
		return EXACTLY(VHOSTMSG_SHMEM_MAP_SIZE);
	case VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY:
		return EXACTLY(VHOSTMSG_SHMEM_MAP_LEGACY_SIZE);
	case VHOSTMSG_BACKEND_SHMEM_UNMAP_LEGACY:
		return EXACTLY(VHOSTMSG_SHMEM_UNMAP_LEGACY_SIZE);
	case VHOSTMSG_BACKEND_GPU_MAP:
		return EXACTLY(VHOSTMSG_GPU_MAP_SIZE);
	case VHOSTMSG_BACKEND_EXTERNAL_MAP:
		return EXACTLY(VHOSTMSG_EXTERNAL_MAP_SIZE);
	default:
		return (struct size_range){ 0, ANY_SIZE };
	}
}

enum vhostmsg_reason vhostmsg_check_size(enum vhostmsg_channel ch, const struct vhostmsg_header *h,
					 const void *payload)
{
	struct size_range r = { 0, ANY_SIZE };

	if (h->flags & VHOSTMSG_FLAG_REPLY)
		return VHOSTMSG_VALID;
	switch (ch) {
	case VHOSTMSG_CHANNEL_FRONTEND:
		r = frontend_request(h->request, payload, h->size);
		break;
	case VHOSTMSG_CHANNEL_BACKEND:
		r = backend_request(h->request);
		break;
	}
	return h->size >= r.min && h->size <= r.max ? VHOSTMSG_VALID : VHOSTMSG_SIZE_MISMATCH;
}
