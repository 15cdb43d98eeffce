/* SPDX-License-Identifier: MIT */
/* The 12-byte header: framing and the rules every message obeys. */
#include "vhostmsg.h"
#include "wire.h"

#define FLAGS_KNOWN (VHOSTMSG_FLAG_VERSION_MASK | VHOSTMSG_FLAG_REPLY | VHOSTMSG_FLAG_NEED_REPLY)

void vhostmsg_header_decode(const uint8_t raw[VHOSTMSG_HEADER_SIZE], struct vhostmsg_header *ret)
{
	ret->request = wire_u32(raw);
	ret->flags = wire_u32(raw + 4);
	ret->size = wire_u32(raw + 8);
}

void vhostmsg_header_encode(const struct vhostmsg_header *h, uint8_t raw[VHOSTMSG_HEADER_SIZE])
{
	wire_put_u32(raw, h->request);
	wire_put_u32(raw + 4, h->flags);
	wire_put_u32(raw + 8, h->size);
}

enum vhostmsg_reason vhostmsg_check_header(const struct vhostmsg_header *h, unsigned n_fds)
{
	if ((h->flags & VHOSTMSG_FLAG_VERSION_MASK) != VHOSTMSG_VERSION)
		return VHOSTMSG_BAD_VERSION;
	if (h->flags & ~FLAGS_KNOWN)
		return VHOSTMSG_RESERVED_FLAGS;
	if (h->size > VHOSTMSG_MAX_PAYLOAD)
		return VHOSTMSG_TOO_LARGE;
	if (n_fds > VHOSTMSG_MAX_FDS)
		return VHOSTMSG_FD_COUNT;
	return VHOSTMSG_VALID;
}
