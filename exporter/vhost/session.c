/* SPDX-License-Identifier: MIT */
/*
 * One frontend connection through the tap: its main channel and its
 * supervisor (the backend channel is channel.c's, the per-message steps relay.c's). Threads with
 * blocking I/O, one per direction per channel, because the two channels
 * must move independently (a backend request may wait for its reply while
 * the frontend keeps talking on the main channel) and a message is relayed
 * whole: a thread that blocks on a slow peer holds up only its own
 * direction. The supervisor (the proxy's thread) ends the session by
 * shutting the sockets down, which wakes every relay, then joins them and
 * closes every fd.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log/log.h"
#include "macro.h"
#include "vhost/channel.h"
#include "vhost/relay.h"
#include "vhost/session.h"

/* Main channel, frontend -> backend: the frontend's requests. */
static void *relay_frontend_requests(void *arg)
{
	struct vhost_session *s = arg;
	struct vhost_proxy *p = s->p;
	struct vhost_msg *m = malloc(sizeof(*m));

	while (m &&
	       vhost_session_recv(s, s->frontend_fd, m, VHOSTMSG_CHANNEL_FRONTEND, "frontend")) {
		unsigned reason = vhost_check_message(VHOSTMSG_CHANNEL_FRONTEND, m);
		int r;

		pthread_mutex_lock(&p->lock);
		vhost_count_request(p, VHOSTMSG_CHANNEL_FRONTEND, m, reason, NULL);
		pthread_mutex_unlock(&p->lock);
		if (m->hdr.request == VHOSTMSG_SET_BACKEND_REQ_FD && m->n_fds == 1 &&
		    !(m->hdr.flags & VHOSTMSG_FLAG_REPLY) && vhost_channel_interpose(s, m) < 0) {
			vhost_msg_close_fds(m);
			break;
		}
		vhost_session_log(s, VHOSTMSG_CHANNEL_FRONTEND, "frontend", m, "relayed", reason);
		r = vhost_msg_send(s->backend_fd, m);
		vhost_msg_close_fds(m);
		if (r < 0)
			break;
	}
	free(m);
	vhost_session_done(s);
	return NULL;
}

static void learn_region(void *userdata, uint8_t shmid, uint64_t size)
{
	struct vhost_proxy *p = userdata;

	vhostmsg_shmem_set_region(p->tracker, shmid, size);
	vhost_stats_see_shmid(&p->stats, shmid);
}

/* Main channel, backend -> frontend: the backend's replies. */
static void *relay_backend_main(void *arg)
{
	struct vhost_session *s = arg;
	struct vhost_proxy *p = s->p;
	struct vhost_msg *m = malloc(sizeof(*m));

	while (m && vhost_session_recv(s, s->backend_fd, m, VHOSTMSG_CHANNEL_FRONTEND, "backend")) {
		unsigned reason = vhost_check_message(VHOSTMSG_CHANNEL_FRONTEND, m);
		int r;

		pthread_mutex_lock(&p->lock);
		if (reason != VHOSTMSG_VALID)
			p->stats.invalid[VHOSTMSG_CHANNEL_FRONTEND][reason]++;
		/* Region sizes, from GET_SHMEM_CONFIG or crosvm's GET_SHARED_MEMORY_REGIONS. */
		if (m->hdr.flags & VHOSTMSG_FLAG_REPLY)
			(void)vhostmsg_decode_shmem_regions(VHOSTMSG_CHANNEL_FRONTEND,
							    m->hdr.request, true,
							    vhost_msg_payload(m), m->hdr.size,
							    learn_region, p);
		pthread_mutex_unlock(&p->lock);
		vhost_session_log(s, VHOSTMSG_CHANNEL_FRONTEND, "backend", m, "relayed", reason);
		r = vhost_msg_send(s->frontend_fd, m);
		vhost_msg_close_fds(m);
		if (r < 0)
			break;
	}
	free(m);
	vhost_session_done(s);
	return NULL;
}

static int connect_backend(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* Whether the frontend has hung up (its relay may not have noticed yet). */
static bool frontend_gone(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };

	return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/*
 * Waits until the session ends or the proxy stops. A second frontend is
 * turned away while the first is served (as vhost-user backends do), unless
 * the first is already gone: then the session ends and the newcomer is
 * served next.
 */
static void session_wait(struct vhost_session *s)
{
	struct vhost_proxy *p = s->p;

	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = s->done_fd, .events = POLLIN },
			{ .fd = p->stop_fd, .events = POLLIN },
			{ .fd = p->listen_fd, .events = POLLIN },
		};
		int fd;

		if (poll(pfd, ELEMENTSOF(pfd), -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if ((pfd[0].revents | pfd[1].revents) & POLLIN)
			return;
		if (!(pfd[2].revents & POLLIN))
			continue;
		if (frontend_gone(s->frontend_fd))
			return;
		fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			log_warn("vhost-user frontend turned away: the proxy serves one at a time",
				 "proxy=%s", p->cfg.name);
			close(fd);
		} else if (errno == EMFILE || errno == ENFILE) {
			/* The newcomer stays queued; do not spin on it. */
			(void)poll(&pfd[1], 1, 100);
		}
	}
}

static void session_teardown(struct vhost_session *s)
{
	struct vhost_proxy *p = s->p;
	struct vhostmsg_shmem *tracker;

	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_mutex_unlock(&s->lock);
	shutdown(s->frontend_fd, SHUT_RDWR);
	shutdown(s->backend_fd, SHUT_RDWR);
	/* The frontend relay first: once it is joined, no backend channel can appear. */
	for (unsigned i = 0; i < s->n_threads; i++)
		pthread_join(s->threads[i], NULL);
	vhost_channel_free(TAKE_PTR(s->bc));

	pthread_mutex_lock(&p->lock);
	tracker = TAKE_PTR(p->tracker);
	p->stats.connected = false;
	pthread_mutex_unlock(&p->lock);
	vhostmsg_shmem_free(tracker);
}

void vhost_session_run(struct vhost_proxy *p, int frontend_fd)
{
	struct vhost_session s = {
		.p = p, .frontend_fd = frontend_fd, .backend_fd = -1, .done_fd = -1
	};
	struct vhostmsg_shmem *tracker = NULL;
	int r;

	r = connect_backend(p->cfg.backend);
	if (r < 0) {
		/* The frontend sees the connection close, as if no backend listened. */
		log_warn("vhost-user frontend refused: cannot connect to the backend",
			 "proxy=%s backend=\"%s\" err=\"%s\"", p->cfg.name, p->cfg.backend,
			 strerror(-r));
		close(frontend_fd);
		return;
	}
	s.backend_fd = r;
	s.done_fd = eventfd(0, EFD_CLOEXEC);
	tracker = vhostmsg_shmem_new();
	if (s.done_fd < 0 || !tracker) {
		log_error("cannot start a vhost-user session", "proxy=%s err=\"%s\"", p->cfg.name,
			  strerror(s.done_fd < 0 ? errno : ENOMEM));
		vhostmsg_shmem_free(tracker);
		safe_close(s.done_fd);
		safe_close(s.backend_fd);
		close(frontend_fd);
		return;
	}
	for (size_t i = 0; i < p->cfg.n_regions; i++)
		vhostmsg_shmem_set_region(tracker, p->cfg.regions[i].shmid, p->cfg.regions[i].size);
	pthread_mutex_init(&s.lock, NULL);

	pthread_mutex_lock(&p->lock);
	p->tracker = tracker;
	p->stats.connected = true;
	p->stats.connections++;
	pthread_mutex_unlock(&p->lock);
	log_info("vhost-user frontend connected", "proxy=%s", p->cfg.name);

	r = vhost_session_start_thread(&s.threads[0], relay_frontend_requests, &s);
	if (r == 0) {
		s.n_threads = 1;
		r = vhost_session_start_thread(&s.threads[1], relay_backend_main, &s);
	}
	if (r == 0) {
		s.n_threads = 2;
		session_wait(&s);
	} else {
		log_error("cannot start a vhost-user relay; the session ends",
			  "proxy=%s err=\"%s\"", p->cfg.name, strerror(-r));
	}
	session_teardown(&s);
	log_info("vhost-user session ended", "proxy=%s", p->cfg.name);
	pthread_mutex_destroy(&s.lock);
	safe_close(s.done_fd);
	safe_close(s.backend_fd);
	safe_close(s.frontend_fd);
}
