/* SPDX-License-Identifier: MIT */
/* How many fds each message carries in its SCM_RIGHTS (both channels, both directions). */
#include "vhostmsg.h"
#include "wire.h"

struct fd_range {
	unsigned min, max;
};

static const struct fd_range NONE = { 0, 0 };
static const struct fd_range ONE = { 1, 1 };
static const struct fd_range OPTIONAL = { 0, 1 };
static const struct fd_range ANY = { 0, VHOSTMSG_MAX_FDS };

/* The nofd bit (8) of a leading u64 says whether the one fd is there. */
static struct fd_range by_nofd_bit(const void *payload, uint32_t size)
{
	if (size < sizeof(uint64_t) || !payload)
		return OPTIONAL;
	return (wire_u64(payload) & VHOSTMSG_VRING_NOFD) ? NONE : ONE;
}

static struct fd_range frontend_request(uint32_t request, const void *payload, uint32_t size)
{
	switch (request) {
	case VHOSTMSG_SET_MEM_TABLE:
		/* One fd per region, in order; nregions leads the payload. */
		if (size >= sizeof(uint32_t) && payload) {
			uint32_t n = wire_u32(payload);
			if (n <= VHOSTMSG_MAX_FDS)
				return (struct fd_range){ n, n };
		}
		return ANY;
	case VHOSTMSG_SET_LOG_BASE: /* the fd only with LOG_SHMFD */
	case VHOSTMSG_REM_MEM_REG:  /* none, but the spec tolerates a stray one */
		return OPTIONAL;
	case VHOSTMSG_SET_LOG_FD:
	case VHOSTMSG_SET_BACKEND_REQ_FD:
	case VHOSTMSG_SET_INFLIGHT_FD:
	case VHOSTMSG_GPU_SET_SOCKET:
	case VHOSTMSG_ADD_MEM_REG:
	case VHOSTMSG_SET_DEVICE_STATE_FD:
		return ONE;
	case VHOSTMSG_SET_VRING_KICK:
	case VHOSTMSG_SET_VRING_CALL:
	case VHOSTMSG_SET_VRING_ERR:
		return by_nofd_bit(payload, size);
	default:
		if (vhostmsg_request_name(VHOSTMSG_CHANNEL_FRONTEND, request))
			return NONE;
		return ANY;
	}
}

static struct fd_range frontend_reply(uint32_t request, const void *payload, uint32_t size)
{
	switch (request) {
	case VHOSTMSG_POSTCOPY_ADVISE:   /* the userfaultfd */
	case VHOSTMSG_GET_INFLIGHT_FD:   /* the inflight buffer */
	case VHOSTMSG_GET_SHARED_OBJECT: /* the dma-buf, when found */
		return OPTIONAL;
	case VHOSTMSG_SET_DEVICE_STATE_FD: /* the back-end's own channel, unless nofd */
		return by_nofd_bit(payload, size);
	default:
		if (vhostmsg_request_name(VHOSTMSG_CHANNEL_FRONTEND, request))
			return NONE;
		return ANY;
	}
}

static struct fd_range backend_request(uint32_t request, const void *payload, uint32_t size)
{
	switch (request) {
	case VHOSTMSG_BACKEND_VRING_HOST_NOTIFIER_MSG: /* no fd: de-register */
		return by_nofd_bit(payload, size);
	case VHOSTMSG_BACKEND_SHMEM_MAP:
	case VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY:
	case VHOSTMSG_BACKEND_GPU_MAP:
		return ONE;
	case VHOSTMSG_BACKEND_FS_MAP: /* the draft's one fd per entry */
	case VHOSTMSG_BACKEND_FS_IO:
		return ANY;
	default:
		if (vhostmsg_request_name(VHOSTMSG_CHANNEL_BACKEND, request))
			return NONE;
		return ANY;
	}
}

static struct fd_range backend_reply(uint32_t request)
{
	switch (request) {
	case VHOSTMSG_BACKEND_SHARED_OBJECT_LOOKUP: /* the dma-buf, when found */
		return OPTIONAL;
	default:
		if (vhostmsg_request_name(VHOSTMSG_CHANNEL_BACKEND, request))
			return NONE;
		return ANY;
	}
}

void vhostmsg_expected_fds(enum vhostmsg_channel ch, const struct vhostmsg_header *h,
			   const void *payload, unsigned *ret_min, unsigned *ret_max)
{
	bool reply = h->flags & VHOSTMSG_FLAG_REPLY;
	struct fd_range r = ANY;

	switch (ch) {
	case VHOSTMSG_CHANNEL_FRONTEND:
		r = reply ? frontend_reply(h->request, payload, h->size)
			  : frontend_request(h->request, payload, h->size);
		break;
	case VHOSTMSG_CHANNEL_BACKEND:
		r = reply ? backend_reply(h->request)
			  : backend_request(h->request, payload, h->size);
		break;
	}
	*ret_min = r.min;
	*ret_max = r.max;
}

enum vhostmsg_reason vhostmsg_check_fds(enum vhostmsg_channel ch, const struct vhostmsg_header *h,
					const void *payload, unsigned n_fds)
{
	unsigned min, max;

	vhostmsg_expected_fds(ch, h, payload, &min, &max);
	return n_fds >= min && n_fds <= max ? VHOSTMSG_VALID : VHOSTMSG_FD_COUNT;
}
