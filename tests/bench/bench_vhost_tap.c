/* SPDX-License-Identifier: MIT */
/*
 * What the vhost-user tap adds: request/reply round trips and one-way message
 * rates, directly to a backend and through a proxy of the tap, side by side,
 * interleaved round by round in one process (the tap's threads run here too,
 * started with vhost_taps_start() exactly as the exporter starts them).
 *
 *   main channel:     GET_FEATURES -> u64 reply (frontend -> backend -> frontend)
 *   backend channel:  EXTERNAL_MAP with NEED_REPLY -> u64 reply, decoded and
 *                     validated by the tap (backend -> frontend -> backend)
 *   streams:          SET_VRING_NUM without reply, and SET_VRING_CALL with one
 *                     eventfd each, N back to back, then one round trip
 *
 * usage: bench_vhost_tap [--round-trips N] [--stream N] [--rounds R] [--cpu N]
 * --cpu pins every thread to one CPU: the figures are then the CPU cost of the
 * tap's extra hops, without the cross-CPU wake-ups that a scheduler adds or not
 * from run to run. Prints medians over the rounds and the tap's added latency;
 * exits 1 when a reply is wrong (the smoke test's check), never on speed.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "vhost/tap.h"
#include "vhostmsg.h"

#define EXTERNAL_MAP_SIZE 32

struct msg {
	struct vhostmsg_header h;
	uint8_t payload[64];
	int fd; /* -1: none */
};

static void die(const char *what)
{
	fprintf(stderr, "bench_vhost_tap: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void send_msg(int fd, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
		     int pass_fd)
{
	uint8_t buf[VHOSTMSG_HEADER_SIZE + 64];
	struct vhostmsg_header h = { .request = request, .flags = flags, .size = size };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = VHOSTMSG_HEADER_SIZE + size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	vhostmsg_header_encode(&h, buf);
	if (size)
		memcpy(buf + VHOSTMSG_HEADER_SIZE, payload, size);
	if (pass_fd >= 0) {
		struct cmsghdr *c;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)iov.iov_len)
		die("sendmsg");
}

/* Reads exactly n bytes, taking an fd if one comes. False at end of stream. */
static bool recv_exact(int fd, void *buf, size_t n, int *ret_fd)
{
	size_t got = 0;

	while (got < n) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * 8)];
		} control;
		struct iovec iov = { .iov_base = (char *)buf + got, .iov_len = n - got };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = control.buf,
				     .msg_controllen = sizeof(control.buf) };
		ssize_t k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
				memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
		got += (size_t)k;
	}
	return true;
}

static bool recv_msg(int fd, struct msg *m)
{
	uint8_t raw[VHOSTMSG_HEADER_SIZE];

	m->fd = -1;
	if (!recv_exact(fd, raw, sizeof(raw), &m->fd))
		return false;
	vhostmsg_header_decode(raw, &m->h);
	if (m->h.size > sizeof(m->payload))
		return false;
	return m->h.size == 0 || recv_exact(fd, m->payload, m->h.size, &m->fd);
}

/* --- the backend: answers what wants an answer, hands the backend channel over --- */

static pthread_mutex_t channel_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t channel_cond = PTHREAD_COND_INITIALIZER;
static int channel_fd = -1; /* the backend's end of the latest backend channel */

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct msg m;
	uint64_t zero = 0;

	while (recv_msg(fd, &m)) {
		if (m.h.request == VHOSTMSG_SET_BACKEND_REQ_FD && m.fd >= 0) {
			pthread_mutex_lock(&channel_lock);
			channel_fd = m.fd;
			pthread_cond_signal(&channel_cond);
			pthread_mutex_unlock(&channel_lock);
			m.fd = -1;
		}
		if (m.fd >= 0)
			close(m.fd);
		if (m.h.request == VHOSTMSG_GET_FEATURES || (m.h.flags & VHOSTMSG_FLAG_NEED_REPLY))
			send_msg(fd, m.h.request, VHOSTMSG_VERSION | VHOSTMSG_FLAG_REPLY, &zero,
				 sizeof(zero), -1);
	}
	close(fd);
	return NULL;
}

static void *backend_main(void *arg)
{
	int lfd = (int)(intptr_t)arg;

	for (;;) {
		pthread_t t;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			return NULL;
		if (pthread_create(&t, NULL, serve, (void *)(intptr_t)fd) != 0)
			die("pthread_create");
		pthread_detach(t);
	}
}

static int unix_socket(const char *path, bool listen_on)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0)
		die("socket");
	if (listen_on ? bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0
		      : connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die(path);
	return fd;
}

/* --- measurements --- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct figures {
	double rtt_median, rtt_p99;  /* ns, main channel */
	double bc_median, bc_p99;    /* ns, backend channel (EXTERNAL_MAP) */
	double stream_rate, fd_rate; /* messages per second */
};

static bool expect_reply(int fd, uint32_t request)
{
	struct msg m;
	uint64_t v;

	return recv_msg(fd, &m) && m.h.request == request && (m.h.flags & VHOSTMSG_FLAG_REPLY) &&
	       vhostmsg_reply_result(&m.h, m.payload, &v) == 0 && m.fd < 0;
}

static void percentiles(double *lat, unsigned n, double *ret_median, double *ret_p99)
{
	qsort(lat, n, sizeof(*lat), cmp_double);
	*ret_median = lat[n / 2];
	*ret_p99 = lat[(unsigned)((double)(n - 1) * 0.99)];
}

/* One round on one connection (direct or through the tap). False on a wrong reply. */
static bool measure(int conn, int channel_be, unsigned round_trips, unsigned stream, double *lat,
		    struct figures *f)
{
	uint8_t ext[EXTERNAL_MAP_SIZE] = { 0 };
	uint64_t num = 256, ptr = 0x7f0000000000ull, len = 4096;
	double t0;

	for (unsigned i = 0; i < round_trips; i++) {
		t0 = now_ns();
		send_msg(conn, VHOSTMSG_GET_FEATURES, VHOSTMSG_VERSION, NULL, 0, -1);
		if (!expect_reply(conn, VHOSTMSG_GET_FEATURES))
			return false;
		lat[i] = now_ns() - t0;
	}
	percentiles(lat, round_trips, &f->rtt_median, &f->rtt_p99);

	/* EXTERNAL_MAP {u8 shmid; pad; u64 shm_offset; u64 len; u64 ptr}; the frontend declines. */
	memcpy(ext + 16, &len, sizeof(len));
	memcpy(ext + 24, &ptr, sizeof(ptr));
	for (unsigned i = 0; i < round_trips; i++) {
		t0 = now_ns();
		send_msg(channel_be, VHOSTMSG_BACKEND_EXTERNAL_MAP,
			 VHOSTMSG_VERSION | VHOSTMSG_FLAG_NEED_REPLY, ext, sizeof(ext), -1);
		if (!expect_reply(channel_be, VHOSTMSG_BACKEND_EXTERNAL_MAP))
			return false;
		lat[i] = now_ns() - t0;
	}
	percentiles(lat, round_trips, &f->bc_median, &f->bc_p99);

	for (int with_fd = 0; with_fd < 2; with_fd++) {
		int efd = with_fd ? eventfd(0, EFD_CLOEXEC) : -1;

		t0 = now_ns();
		for (unsigned i = 0; i < stream; i++) {
			if (with_fd)
				send_msg(conn, VHOSTMSG_SET_VRING_CALL, VHOSTMSG_VERSION, &num,
					 sizeof(num), efd);
			else
				send_msg(conn, VHOSTMSG_SET_VRING_NUM, VHOSTMSG_VERSION, &num,
					 sizeof(num), -1);
		}
		send_msg(conn, VHOSTMSG_GET_FEATURES, VHOSTMSG_VERSION, NULL, 0, -1);
		if (!expect_reply(conn, VHOSTMSG_GET_FEATURES))
			return false;
		*(with_fd ? &f->fd_rate : &f->stream_rate) = (stream + 1) / ((now_ns() - t0) / 1e9);
		if (efd >= 0)
			close(efd);
	}
	return true;
}

/* The frontend's side of a backend channel, in a thread of its own as in a VMM: declines all. */
static void *frontend_replier(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint64_t failure = 1;
	struct msg m;

	while (recv_msg(fd, &m)) {
		if (m.fd >= 0)
			close(m.fd);
		send_msg(fd, m.h.request, VHOSTMSG_VERSION | VHOSTMSG_FLAG_REPLY, &failure,
			 sizeof(failure), -1);
	}
	return NULL;
}

/* Connects (directly or to the tap) and sets up a backend channel; its two ends. */
static int open_session(const char *path, int *ret_fe, int *ret_be, pthread_t *ret_replier)
{
	int conn = unix_socket(path, false), pair[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
		die("socketpair");
	pthread_mutex_lock(&channel_lock);
	channel_fd = -1;
	pthread_mutex_unlock(&channel_lock);
	send_msg(conn, VHOSTMSG_SET_BACKEND_REQ_FD, VHOSTMSG_VERSION | VHOSTMSG_FLAG_NEED_REPLY,
		 NULL, 0, pair[1]);
	close(pair[1]);
	if (!expect_reply(conn, VHOSTMSG_SET_BACKEND_REQ_FD))
		die("SET_BACKEND_REQ_FD unanswered");
	pthread_mutex_lock(&channel_lock);
	while (channel_fd < 0)
		pthread_cond_wait(&channel_cond, &channel_lock);
	*ret_be = channel_fd;
	pthread_mutex_unlock(&channel_lock);
	*ret_fe = pair[0];
	if (pthread_create(ret_replier, NULL, frontend_replier, (void *)(intptr_t)pair[0]) != 0)
		die("pthread_create");
	return conn;
}

static double median_of(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static unsigned arg_uint(int argc, char **argv, const char *name, unsigned def)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return (unsigned)strtoul(argv[i + 1], NULL, 10);
	return def;
}

int main(int argc, char **argv)
{
	unsigned round_trips = arg_uint(argc, argv, "--round-trips", 20000);
	unsigned stream = arg_uint(argc, argv, "--stream", 100000);
	unsigned rounds = arg_uint(argc, argv, "--rounds", 7);
	unsigned cpu = arg_uint(argc, argv, "--cpu", UINT32_MAX);
	char dir[] = "/tmp/bench-vhost-XXXXXX", backend[128], tap[128], why[256], name[] = "bench";
	struct vhost_proxy_config cfg = {
		.name = name, .listen = tap, .backend = backend, .trusted = true
	};
	struct vhost_region region = { .shmid = 0, .size = 1ull << 30 };
	struct figures *fig[2];
	double *lat, *col;
	struct vhost_taps *taps;
	pthread_t bt, replier[2];
	int lfd, conn[2], fe[2], be[2];
	bool ok = true;

	if (round_trips < 2 || stream < 1 || rounds < 1) {
		fprintf(stderr, "usage: bench_vhost_tap [--round-trips N>=2] [--stream N] "
				"[--rounds R] [--cpu N]\n");
		return 2;
	}
	if (cpu != UINT32_MAX) {
		cpu_set_t set;

		/* Before any thread starts: they all inherit it. */
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			die("sched_setaffinity");
	}
	log_set_level(LOG_LEVEL_WARN);
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(backend, sizeof(backend), "%s/backend.sock", dir);
	snprintf(tap, sizeof(tap), "%s/tap.sock", dir);
	cfg.regions = &region;
	cfg.n_regions = 1;

	lfd = unix_socket(backend, true);
	if (pthread_create(&bt, NULL, backend_main, (void *)(intptr_t)lfd) != 0)
		die("pthread_create");
	if (vhost_taps_start(&cfg, 1, VHOST_POLICY_OBSERVE, &taps, why, sizeof(why)) < 0) {
		fprintf(stderr, "bench_vhost_tap: %s\n", why);
		return 1;
	}
	conn[0] = open_session(backend, &fe[0], &be[0], &replier[0]);
	conn[1] = open_session(tap, &fe[1], &be[1], &replier[1]);

	lat = calloc(round_trips, sizeof(*lat));
	col = calloc(rounds, sizeof(*col));
	fig[0] = calloc(rounds, sizeof(**fig));
	fig[1] = calloc(rounds, sizeof(**fig));
	if (!lat || !col || !fig[0] || !fig[1])
		die("calloc");
	/* Interleaved: both paths see the same machine state, round by round. */
	for (unsigned r = 0; r < rounds && ok; r++)
		for (int path = 0; path < 2 && ok; path++)
			ok = measure(conn[path], be[path], round_trips, stream, lat, &fig[path][r]);
	if (!ok) {
		fprintf(stderr, "bench_vhost_tap: a reply was missing or wrong\n");
		return 1;
	}

	printf("vhost-user tap: %u rounds, %u round trips and %u streamed messages per round, %s\n",
	       rounds, round_trips, stream, cpu != UINT32_MAX ? "one CPU" : "not pinned");
	printf("%-44s %12s %12s %12s\n", "median over rounds", "direct", "tap", "tap added");
#define ROW(label, field, scale, unit)                                                             \
	do {                                                                                       \
		double d, t;                                                                       \
		for (unsigned r = 0; r < rounds; r++)                                              \
			col[r] = fig[0][r].field;                                                  \
		d = median_of(col, rounds) / (scale);                                              \
		for (unsigned r = 0; r < rounds; r++)                                              \
			col[r] = fig[1][r].field;                                                  \
		t = median_of(col, rounds) / (scale);                                              \
		printf("%-44s %9.2f %s %9.2f %s %+9.2f %s\n", label, d, unit, t, unit, t - d,      \
		       unit);                                                                      \
		if (!(d > 0 && t > 0))                                                             \
			ok = false;                                                                \
	} while (0)
	ROW("round trip, main channel (median)", rtt_median, 1e3, "us");
	ROW("round trip, main channel (p99)", rtt_p99, 1e3, "us");
	ROW("round trip, backend channel EXTERNAL_MAP", bc_median, 1e3, "us");
	ROW("round trip, backend channel (p99)", bc_p99, 1e3, "us");
	ROW("stream, no fd (kmsg/s)", stream_rate, 1e3, "k ");
	ROW("stream, one eventfd each (kmsg/s)", fd_rate, 1e3, "k ");
#undef ROW
	for (unsigned r = 0; r < rounds; r++)
		if (fig[0][r].rtt_median > fig[0][r].rtt_p99 ||
		    fig[1][r].rtt_median > fig[1][r].rtt_p99)
			ok = false;

	for (int path = 0; path < 2; path++) {
		close(conn[path]);
		shutdown(fe[path], SHUT_RDWR);
		pthread_join(replier[path], NULL);
		close(fe[path]);
		close(be[path]);
	}
	vhost_taps_free(taps);
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	pthread_join(bt, NULL);
	unlink(backend);
	rmdir(dir);
	free(lat);
	free(col);
	free(fig[0]);
	free(fig[1]);
	if (!ok)
		fprintf(stderr, "bench_vhost_tap: figures out of order\n");
	return ok ? 0 : 1;
}
