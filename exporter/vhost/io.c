/* SPDX-License-Identifier: MIT */
/* Receiving and sending whole vhost-user messages with their fds. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"
#include "vhost/io.h"

/* Room for one fd more than allowed, so that "too many" is seen, not just cut. */
#define CONTROL_FDS (VHOSTMSG_MAX_FDS + 1)

void vhost_msg_close_fds(struct vhost_msg *m)
{
	for (unsigned i = 0; i < m->n_fds; i++)
		safe_close(m->fds[i]);
	m->n_fds = 0;
}

/* Takes the fds of every SCM_RIGHTS in mh; false when they did not all fit in m. */
static bool take_fds(struct msghdr *mh, struct vhost_msg *m)
{
	bool fit = true;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (m->n_fds < VHOSTMSG_MAX_FDS) {
				m->fds[m->n_fds++] = fd;
			} else {
				close(fd);
				fit = false;
			}
		}
	}
	return fit;
}

/*
 * Reads exactly n bytes into buf, taking the fds that come with them.
 * 0, -ENODATA at end of stream (*ret_got says after how many bytes),
 * -ETOOMANYREFS when fds were cut or beyond the bound, or -errno.
 */
static int recv_exact(int fd, uint8_t *buf, size_t n, struct vhost_msg *m, size_t *ret_got)
{
	size_t got = 0;

	while (got < n) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * CONTROL_FDS)];
		} control;
		struct iovec iov = { .iov_base = buf + got, .iov_len = n - got };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = control.buf,
				     .msg_controllen = sizeof(control.buf) };
		ssize_t k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		/* Fds first: whatever happens next, they are ours to close. */
		if (!take_fds(&mh, m) || (mh.msg_flags & MSG_CTRUNC))
			return -ETOOMANYREFS;
		if (k == 0) {
			*ret_got = got;
			return -ENODATA;
		}
		got += (size_t)k;
	}
	return 0;
}

int vhost_msg_recv(int fd, struct vhost_msg *m, enum vhost_io_fault *ret_fault)
{
	size_t got = 0;
	int r;

	*ret_fault = VHOST_IO_OK;
	m->n_fds = 0;
	r = recv_exact(fd, m->raw, VHOSTMSG_HEADER_SIZE, m, &got);
	if (r == -ENODATA && got == 0)
		return 0;
	if (r == 0) {
		vhostmsg_header_decode(m->raw, &m->hdr);
		if (m->hdr.size > VHOSTMSG_MAX_PAYLOAD) {
			*ret_fault = VHOST_IO_TOO_LARGE;
			r = -EBADMSG;
		} else {
			r = recv_exact(fd, m->raw + VHOSTMSG_HEADER_SIZE, m->hdr.size, m, &got);
		}
	}
	if (r == -ENODATA) {
		*ret_fault = VHOST_IO_TRUNCATED;
		r = -EBADMSG;
	} else if (r == -ETOOMANYREFS) {
		*ret_fault = VHOST_IO_FD_COUNT;
		r = -EBADMSG;
	}
	if (r < 0) {
		vhost_msg_close_fds(m);
		return r;
	}
	return 1;
}

int vhost_msg_send(int fd, const struct vhost_msg *m)
{
	size_t len = VHOSTMSG_HEADER_SIZE + m->hdr.size, sent = 0;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VHOSTMSG_MAX_FDS)];
	} control;

	while (sent < len) {
		struct iovec iov = { .iov_base = (void *)(m->raw + sent), .iov_len = len - sent };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t k;

		/* The fds go with the first byte, as the sender attached them. */
		if (sent == 0 && m->n_fds > 0) {
			struct cmsghdr *c;

			memset(&control, 0, sizeof(control));
			mh.msg_control = control.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * m->n_fds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * m->n_fds);
			memcpy(CMSG_DATA(c), m->fds, sizeof(int) * m->n_fds);
		}
		k = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		sent += (size_t)k;
	}
	return 0;
}
