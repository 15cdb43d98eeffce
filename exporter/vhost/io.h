/* SPDX-License-Identifier: MIT */
/*
 * Whole vhost-user messages over a unix stream socket: the 12-byte header,
 * the payload and the fds that came with them, received and sent unchanged.
 * Blocking I/O; a thread stops reading when another shuts the socket down.
 */
#pragma once

#include <stdint.h>

#include "vhostmsg.h"

/* Why a receive ended a session although no syscall failed. */
enum vhost_io_fault {
	VHOST_IO_OK,
	VHOST_IO_TOO_LARGE, /* payload above VHOSTMSG_MAX_PAYLOAD */
	VHOST_IO_FD_COUNT,  /* more than VHOSTMSG_MAX_FDS fds, or fds cut (MSG_CTRUNC) */
	VHOST_IO_TRUNCATED, /* the peer closed in the middle of a message */
};

struct vhost_msg {
	struct vhostmsg_header hdr;
	uint8_t raw[VHOSTMSG_HEADER_SIZE + VHOSTMSG_MAX_PAYLOAD]; /* header then payload */
	int fds[VHOSTMSG_MAX_FDS];
	unsigned n_fds;
};

/* The payload (h->size bytes after the header). */
static inline const uint8_t *vhost_msg_payload(const struct vhost_msg *m)
{
	return m->raw + VHOSTMSG_HEADER_SIZE;
}

/*
 * Receives one message into *m (fds with O_CLOEXEC). 1 with a message, 0 on
 * a clean end of stream (between messages), or a negative errno: -EBADMSG
 * with *ret_fault saying what the peer did wrong, else the failing call's
 * error (-EPIPE etc., *ret_fault = VHOST_IO_OK). Received fds are closed on
 * every failure.
 */
int vhost_msg_recv(int fd, struct vhost_msg *m, enum vhost_io_fault *ret_fault);

/*
 * Sends m (header, payload, fds) in one sendmsg when the socket takes it
 * whole, else in order. 0 or -errno. Does not close m's fds.
 */
int vhost_msg_send(int fd, const struct vhost_msg *m);

/* Closes m's fds and forgets them. */
void vhost_msg_close_fds(struct vhost_msg *m);
