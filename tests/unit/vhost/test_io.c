/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the tap's message framing (vhost/io.c) over socket pairs:
 * whole messages with their fds, messages in pieces, the bounds, peers that
 * stop mid-message, and no fd left behind by any of it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vhost/io.h"

static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* Sends bytes with n fds (copies of fd) attached. */
static void send_with_fds(int sock, const void *buf, size_t len, int fd, unsigned n)
{
	char control[CMSG_SPACE(sizeof(int) * 32)] = { 0 };
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	assert_true(n <= 32);
	if (n > 0) {
		mh.msg_control = control;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		for (unsigned i = 0; i < n; i++)
			memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(int));
	}
	assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)len);
}

static size_t header(uint8_t *buf, uint32_t request, uint32_t flags, uint32_t size)
{
	struct vhostmsg_header h = { .request = request, .flags = flags, .size = size };

	vhostmsg_header_encode(&h, buf);
	return VHOSTMSG_HEADER_SIZE;
}

static void test_round_trip(void **state)
{
	struct vhost_msg *out = calloc(1, sizeof(*out)), *in = calloc(1, sizeof(*in));
	enum vhost_io_fault fault;
	unsigned before = count_fds();
	int sv[2], fd;

	pair(sv);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	out->hdr = (struct vhostmsg_header){ .request = 5, .flags = 1, .size = 40 };
	vhostmsg_header_encode(&out->hdr, out->raw);
	for (unsigned i = 0; i < 40; i++)
		out->raw[VHOSTMSG_HEADER_SIZE + i] = (uint8_t)i;
	out->fds[0] = fd;
	out->fds[1] = fd;
	out->n_fds = 2;
	assert_int_equal(vhost_msg_send(sv[0], out), 0);
	assert_int_equal(vhost_msg_recv(sv[1], in, &fault), 1);
	assert_int_equal(fault, VHOST_IO_OK);
	assert_int_equal(in->hdr.request, 5);
	assert_int_equal(in->hdr.size, 40);
	assert_memory_equal(in->raw, out->raw, VHOSTMSG_HEADER_SIZE + 40);
	assert_int_equal(in->n_fds, 2);
	assert_true(fcntl(in->fds[0], F_GETFD) & FD_CLOEXEC);
	vhost_msg_close_fds(in);
	assert_int_equal(in->n_fds, 0);
	close(fd);

	/* End of stream between messages is clean. */
	close(sv[0]);
	assert_int_equal(vhost_msg_recv(sv[1], in, &fault), 0);
	close(sv[1]);
	assert_int_equal(count_fds(), before);
	free(out);
	free(in);
}

static void test_pieces(void **state)
{
	struct vhost_msg *in = calloc(1, sizeof(*in));
	enum vhost_io_fault fault;
	uint8_t buf[VHOSTMSG_HEADER_SIZE + 8] = { 0 };
	int sv[2], fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	pair(sv);
	header(buf, 13, 1, 8);
	/* Header in two writes, fds attached to the payload instead of the header. */
	assert_int_equal(write(sv[0], buf, 5), 5);
	assert_int_equal(write(sv[0], buf + 5, 7), 7);
	send_with_fds(sv[0], buf + VHOSTMSG_HEADER_SIZE, 3, fd, 1);
	assert_int_equal(write(sv[0], buf + VHOSTMSG_HEADER_SIZE + 3, 5), 5);
	assert_int_equal(vhost_msg_recv(sv[1], in, &fault), 1);
	assert_int_equal(in->hdr.request, 13);
	assert_int_equal(in->n_fds, 1);
	vhost_msg_close_fds(in);

	/* 8 fds on the header and one more on the payload: beyond the bound. */
	send_with_fds(sv[0], buf, VHOSTMSG_HEADER_SIZE, fd, 8);
	send_with_fds(sv[0], buf + VHOSTMSG_HEADER_SIZE, 8, fd, 1);
	assert_int_equal(vhost_msg_recv(sv[1], in, &fault), -EBADMSG);
	assert_int_equal(fault, VHOST_IO_FD_COUNT);
	assert_int_equal(in->n_fds, 0);
	close(fd);
	close(sv[0]);
	close(sv[1]);
	free(in);
}

static void test_bounds(void **state)
{
	struct vhost_msg *in = calloc(1, sizeof(*in));
	enum vhost_io_fault fault;
	uint8_t buf[VHOSTMSG_HEADER_SIZE + 8] = { 0 };
	unsigned before = count_fds();
	int sv[2], fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* Payload above the bound: refused before reading it. */
	pair(sv);
	header(buf, 25, 1, VHOSTMSG_MAX_PAYLOAD + 1);
	assert_int_equal(write(sv[0], buf, VHOSTMSG_HEADER_SIZE), VHOSTMSG_HEADER_SIZE);
	assert_int_equal(vhost_msg_recv(sv[1], in, &fault), -EBADMSG);
	assert_int_equal(fault, VHOST_IO_TOO_LARGE);
	close(sv[0]);
	close(sv[1]);

	/* The bound itself is fine. */
	pair(sv);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &(int){ 1 << 16 }, sizeof(int)),
			 0);
	{
		uint8_t *big = calloc(1, VHOSTMSG_HEADER_SIZE + VHOSTMSG_MAX_PAYLOAD);

		header(big, 25, 1, VHOSTMSG_MAX_PAYLOAD);
		assert_int_equal(write(sv[0], big, VHOSTMSG_HEADER_SIZE + VHOSTMSG_MAX_PAYLOAD),
				 VHOSTMSG_HEADER_SIZE + VHOSTMSG_MAX_PAYLOAD);
		assert_int_equal(vhost_msg_recv(sv[1], in, &fault), 1);
		free(big);
	}
	close(sv[0]);
	close(sv[1]);

	/* 8 fds are allowed; 9 and 20 are not, and none of them stays open. */
	for (unsigned n = 8; n <= 20; n += n == 8 ? 1 : 11) {
		pair(sv);
		header(buf, 5, 1, 8);
		send_with_fds(sv[0], buf, sizeof(buf), fd, n);
		if (n == 8) {
			assert_int_equal(vhost_msg_recv(sv[1], in, &fault), 1);
			assert_int_equal(in->n_fds, 8);
			vhost_msg_close_fds(in);
		} else {
			assert_int_equal(vhost_msg_recv(sv[1], in, &fault), -EBADMSG);
			assert_int_equal(fault, VHOST_IO_FD_COUNT);
		}
		close(sv[0]);
		close(sv[1]);
	}
	close(fd);
	assert_int_equal(count_fds(), before);
	free(in);
}

static void test_truncated(void **state)
{
	struct vhost_msg *in = calloc(1, sizeof(*in));
	enum vhost_io_fault fault;
	uint8_t buf[VHOSTMSG_HEADER_SIZE + 8] = { 0 };
	unsigned before = count_fds();
	int sv[2], fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* In the header. */
	pair(sv);
	header(buf, 1, 1, 0);
	assert_int_equal(write(sv[0], buf, 6), 6);
	close(sv[0]);
	assert_int_equal(vhost_msg_recv(sv[1], in, &fault), -EBADMSG);
	assert_int_equal(fault, VHOST_IO_TRUNCATED);
	close(sv[1]);

	/* In the payload, with an fd already received: it is closed. */
	pair(sv);
	header(buf, 13, 1, 8);
	send_with_fds(sv[0], buf, VHOSTMSG_HEADER_SIZE + 4, fd, 1);
	close(sv[0]);
	assert_int_equal(vhost_msg_recv(sv[1], in, &fault), -EBADMSG);
	assert_int_equal(fault, VHOST_IO_TRUNCATED);
	assert_int_equal(in->n_fds, 0);
	close(sv[1]);
	close(fd);
	assert_int_equal(count_fds(), before);

	/* A shut-down socket is an end, not a peer's fault. */
	pair(sv);
	shutdown(sv[1], SHUT_RDWR);
	assert_int_equal(vhost_msg_recv(sv[1], in, &fault), 0);
	assert_int_equal(fault, VHOST_IO_OK);
	assert_true(vhost_msg_send(sv[1], in) < 0);
	close(sv[0]);
	close(sv[1]);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_pieces),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_truncated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
