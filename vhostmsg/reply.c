/* SPDX-License-Identifier: MIT */
/* Which requests get a reply, and the u64 result a REPLY_ACK-style reply carries. */
#include <errno.h>

#include "vhostmsg.h"
#include "wire.h"

/* Front-end requests the spec answers whatever the flags say. */
static bool frontend_always_answered(uint32_t request, uint64_t protocol_features)
{
	switch (request) {
	case VHOSTMSG_GET_FEATURES:
	case VHOSTMSG_GET_PROTOCOL_FEATURES:
	case VHOSTMSG_GET_VRING_BASE:
	case VHOSTMSG_GET_QUEUE_NUM:
	case VHOSTMSG_IOTLB_MSG:
	case VHOSTMSG_GET_CONFIG:
	case VHOSTMSG_CREATE_CRYPTO_SESSION:
	case VHOSTMSG_POSTCOPY_ADVISE:
	case VHOSTMSG_POSTCOPY_END:
	case VHOSTMSG_GET_INFLIGHT_FD:
	case VHOSTMSG_GET_MAX_MEM_SLOTS:
	case VHOSTMSG_GET_STATUS:
	case VHOSTMSG_GET_SHARED_OBJECT:
	case VHOSTMSG_SET_DEVICE_STATE_FD:
	case VHOSTMSG_CHECK_DEVICE_STATE:
	case VHOSTMSG_GET_SHMEM_CONFIG:
	case VHOSTMSG_GET_SHARED_MEMORY_REGIONS:
		return true;
	case VHOSTMSG_SET_LOG_BASE:
		/* With a shared log fd the back-end acknowledges the new log. */
		return protocol_features & (1ull << VHOSTMSG_PROTOCOL_F_LOG_SHMFD);
	default:
		return false;
	}
}

/* Back-end requests the front-end answers whatever the flags say. */
static bool backend_always_answered(uint32_t request)
{
	switch (request) {
	case VHOSTMSG_BACKEND_SHARED_OBJECT_LOOKUP:
	/* crosvm's front-end always answers its own mapping requests. */
	case VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY:
	case VHOSTMSG_BACKEND_SHMEM_UNMAP_LEGACY:
	case VHOSTMSG_BACKEND_GPU_MAP:
	case VHOSTMSG_BACKEND_EXTERNAL_MAP:
		return true;
	default:
		return false;
	}
}

bool vhostmsg_needs_reply(enum vhostmsg_channel ch, const struct vhostmsg_header *h,
			  uint64_t protocol_features)
{
	if (h->flags & VHOSTMSG_FLAG_REPLY)
		return false;
	if (h->flags & VHOSTMSG_FLAG_NEED_REPLY)
		return true;
	switch (ch) {
	case VHOSTMSG_CHANNEL_FRONTEND:
		return frontend_always_answered(h->request, protocol_features);
	case VHOSTMSG_CHANNEL_BACKEND:
		return backend_always_answered(h->request);
	}
	return false;
}

int vhostmsg_reply_result(const struct vhostmsg_header *h, const void *payload, uint64_t *ret)
{
	if (!(h->flags & VHOSTMSG_FLAG_REPLY))
		return -EINVAL;
	if (h->size != sizeof(uint64_t) || !payload)
		return -EBADMSG;
	*ret = wire_u64(payload);
	return 0;
}
