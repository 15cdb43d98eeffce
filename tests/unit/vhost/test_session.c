/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for one session of the vhost-user tap (vhost/session.c,
 * channel.c, relay.c) without the proxies around it: a hand-made proxy, a
 * frontend on a socket pair, a backend listening on a unix socket, raw
 * bytes written and read on both sides (not the tap's own framing code).
 * Relayed bytes must be identical, counters must say what passed, a peer
 * that breaks a bound ends the session, and SET_BACKEND_REQ_FD gets the
 * tap's own socket in place of the frontend's, through which backend
 * requests still arrive unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "vhost/proxy.h"
#include "vhost/session.h"

#define V1    0x1u /* version 1 */
#define REPLY 0x4u

struct fixture {
	char dir[64];
	struct vhost_proxy p;
	int backend_listen;
	int frontend; /* our end of the frontend's connection */
	int backend;  /* the connection the tap made to "the backend" */
	pthread_t session;
	int session_fd; /* the tap's end, until the session takes it */
};

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
		return -1;
	return fd;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[128];
	int pair[2];

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_session.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(path, sizeof(path), "%s/backend.sock", f->dir);
	f->backend_listen = listen_at(path);
	f->p.cfg.name = strdup("p0");
	f->p.cfg.backend = strdup(path);
	snprintf(path, sizeof(path), "%s/listen.sock", f->dir);
	f->p.listen_fd = listen_at(path);
	f->p.stop_fd = eventfd(0, EFD_CLOEXEC);
	f->p.policy = VHOST_POLICY_OBSERVE;
	pthread_mutex_init(&f->p.lock, NULL);
	if (f->backend_listen < 0 || f->p.listen_fd < 0 || f->p.stop_fd < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
		return -1;
	f->frontend = pair[0];
	f->session_fd = pair[1];
	f->backend = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char path[128];

	close(f->frontend);
	close(f->backend);
	close(f->backend_listen);
	close(f->p.listen_fd);
	close(f->p.stop_fd);
	pthread_mutex_destroy(&f->p.lock);
	snprintf(path, sizeof(path), "%s/backend.sock", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/listen.sock", f->dir);
	unlink(path);
	rmdir(f->dir);
	free(f->p.cfg.name);
	free(f->p.cfg.backend);
	free(f);
	return 0;
}

static void *session_main(void *arg)
{
	struct fixture *f = arg;

	vhost_session_run(&f->p, f->session_fd);
	return NULL;
}

/* Starts the session and takes the backend connection it makes. */
static void start(struct fixture *f)
{
	assert_int_equal(pthread_create(&f->session, NULL, session_main, f), 0);
	f->backend = accept4(f->backend_listen, NULL, NULL, SOCK_CLOEXEC);
	assert_true(f->backend >= 0);
}

/* Waits for the session to end (it closes every fd of its own). */
static void join(struct fixture *f)
{
	assert_int_equal(pthread_join(f->session, NULL), 0);
}

/* A message of header + payload, with an optional fd. */
static size_t message(uint8_t *buf, uint32_t request, uint32_t flags, const void *payload,
		      uint32_t size)
{
	memcpy(buf, &request, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	if (size)
		memcpy(buf + 12, payload, size);
	return 12 + size;
}

static void send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads exactly len bytes (and an fd, if one comes), with a timeout. */
static void recv_exact(int sock, uint8_t *buf, size_t len, int *ret_fd)
{
	size_t got = 0;

	if (ret_fd)
		*ret_fd = -1;
	while (got < len) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 8)];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = buf + got, .iov_len = len - got };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = u.buf,
				     .msg_controllen = sizeof(u.buf) };
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&pfd, 1, 5000), 1);
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		assert_true(n > 0);
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_type == SCM_RIGHTS && ret_fd)
				memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
		got += (size_t)n;
	}
}

/* Whether the peer closed (read returns 0 within the timeout). */
static bool closed_by_peer(int sock)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	char c;

	return poll(&pfd, 1, 5000) == 1 && read(sock, &c, 1) == 0;
}

static uint64_t requests_counted(struct vhost_proxy *p, enum vhostmsg_channel ch, uint32_t request)
{
	uint64_t n = 0;

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->stats.n_requests; i++)
		if (p->stats.requests[i].channel == ch && p->stats.requests[i].request == request)
			n = p->stats.requests[i].count;
	pthread_mutex_unlock(&p->lock);
	return n;
}

static void test_relay(void **state)
{
	struct fixture *f = *state;
	uint8_t out[64], in[64];
	uint64_t features = 0x140000000ull;
	size_t n;

	start(f);
	/* Frontend -> backend: a request, byte for byte. */
	n = message(out, VHOSTMSG_GET_FEATURES, V1, NULL, 0);
	send_with_fd(f->frontend, out, n, -1);
	recv_exact(f->backend, in, n, NULL);
	assert_memory_equal(in, out, n);
	/* Backend -> frontend: its reply, byte for byte. */
	n = message(out, VHOSTMSG_GET_FEATURES, V1 | REPLY, &features, 8);
	send_with_fd(f->backend, out, n, -1);
	recv_exact(f->frontend, in, n, NULL);
	assert_memory_equal(in, out, n);
	/* A header that breaks a rule is relayed (policy observe) and counted. */
	n = message(out, VHOSTMSG_GET_FEATURES, 0x2, NULL, 0);
	send_with_fd(f->frontend, out, n, -1);
	recv_exact(f->backend, in, n, NULL);
	assert_memory_equal(in, out, n);

	pthread_mutex_lock(&f->p.lock);
	assert_true(f->p.stats.connected);
	assert_int_equal(f->p.stats.connections, 1);
	assert_int_equal(f->p.stats.invalid[VHOSTMSG_CHANNEL_FRONTEND][VHOSTMSG_BAD_VERSION], 1);
	pthread_mutex_unlock(&f->p.lock);
	/* Replies are not requests: two GET_FEATURES requests, one reply. */
	assert_int_equal(requests_counted(&f->p, VHOSTMSG_CHANNEL_FRONTEND, VHOSTMSG_GET_FEATURES),
			 2);

	/* The frontend hangs up: the session ends and lets go of the backend. */
	close(f->frontend);
	f->frontend = -1;
	assert_true(closed_by_peer(f->backend));
	join(f);
	assert_false(f->p.stats.connected);
	assert_null(f->p.tracker);
}

/* A header announcing more than any message may carry ends the session; nothing is relayed. */
static void test_bound(void **state)
{
	struct fixture *f = *state;
	uint8_t out[16];
	size_t n;

	start(f);
	n = message(out, VHOSTMSG_GET_FEATURES, V1, NULL, 0);
	memcpy(out + 8, &(uint32_t){ VHOSTMSG_MAX_PAYLOAD + 1 }, 4);
	send_with_fd(f->frontend, out, n, -1);
	assert_true(closed_by_peer(f->backend));
	assert_true(closed_by_peer(f->frontend));
	join(f);
	assert_int_equal(f->p.stats.invalid[VHOSTMSG_CHANNEL_FRONTEND][VHOSTMSG_TOO_LARGE], 1);
	assert_int_equal(requests_counted(&f->p, VHOSTMSG_CHANNEL_FRONTEND, VHOSTMSG_GET_FEATURES),
			 0);
}

/* No backend listening: the frontend sees its connection close, as without the tap. */
static void test_no_backend(void **state)
{
	struct fixture *f = *state;

	close(f->backend_listen);
	f->backend_listen = -1;
	assert_int_equal(pthread_create(&f->session, NULL, session_main, f), 0);
	join(f);
	assert_true(closed_by_peer(f->frontend));
	assert_int_equal(f->p.stats.connections, 0);
}

static void test_backend_channel(void **state)
{
	struct fixture *f = *state;
	uint8_t out[64], in[64];
	int chan[2], got_fd = -1;
	pid_t self = getpid();
	size_t n;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan), 0);
	start(f);
	/* The frontend hands the backend channel over; the backend gets the tap's socket instead.
	 */
	n = message(out, VHOSTMSG_SET_BACKEND_REQ_FD, V1, NULL, 0);
	send_with_fd(f->frontend, out, n, chan[1]);
	close(chan[1]);
	recv_exact(f->backend, in, n, &got_fd);
	assert_memory_equal(in, out, n);
	assert_true(got_fd >= 0);
	assert_int_not_equal(syscall(SYS_kcmp, self, self, KCMP_FILE, got_fd, chan[0]), 0);

	/* A backend request on it reaches the frontend's socket unchanged. */
	n = message(out, VHOSTMSG_GET_FEATURES, V1, NULL, 0);
	send_with_fd(got_fd, out, n, -1);
	recv_exact(chan[0], in, n, NULL);
	assert_memory_equal(in, out, n);
	assert_int_equal(requests_counted(&f->p, VHOSTMSG_CHANNEL_BACKEND, VHOSTMSG_GET_FEATURES),
			 1);

	close(f->frontend);
	f->frontend = -1;
	join(f);
	/* The tap closed its end of the channel with the session. */
	assert_true(closed_by_peer(got_fd));
	close(got_fd);
	close(chan[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_relay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_channel, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
