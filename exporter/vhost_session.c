/* SPDX-License-Identifier: MIT */
/*
 * One frontend connection through the tap. Threads with blocking I/O, one
 * per direction per channel, because the two channels must move
 * independently (a backend request may wait for its reply while the frontend
 * keeps talking on the main channel) and a message is relayed whole: a
 * thread that blocks on a slow peer holds up only its own direction. The
 * supervisor (the proxy's thread) ends the session by shutting the sockets
 * down, which wakes every relay, then joins them and closes every fd.
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

#include "log.h"
#include "macro.h"
#include "vhost_io.h"
#include "vhost_proxy.h"

#define RELAY_STACK_SIZE (256u * 1024u)
/* Backend requests awaiting the frontend's reply; backends wait for each, so a few suffice. */
#define PENDING_MAX 32

struct pending {
	uint32_t request;
	bool apply; /* map is a well-formed mapping to apply if the frontend accepts it */
	struct vhostmsg_map map;
};

/* The backend channel, once the frontend sent SET_BACKEND_REQ_FD. */
struct backend_channel {
	struct vhost_session *s;
	int frontend_fd; /* the socket the frontend passed: requests out, replies in */
	int tap_fd;      /* our end of the pair the backend got instead */
	pthread_t threads[2];
	unsigned n_threads;
	pthread_mutex_t write_lock; /* tap_fd: relayed replies and the tap's own refusals */
	struct pending pending[PENDING_MAX]; /* FIFO under the proxy lock */
	unsigned pending_head, pending_n;
};

struct vhost_session {
	struct vhost_proxy *p;
	int frontend_fd;
	int backend_fd;
	int done_fd;          /* eventfd: the main channel ended or a bound was broken */
	pthread_mutex_t lock; /* stopping and bc: set-up against tear-down */
	bool stopping;
	struct backend_channel *bc;
	pthread_t threads[2];
	unsigned n_threads;
};

static void session_done(struct vhost_session *s)
{
	uint64_t one = 1;

	(void)!write(s->done_fd, &one, sizeof(one));
}

static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int r;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, RELAY_STACK_SIZE);
	r = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return -r;
}

/* The `request` label text: the name, or the number. */
static const char *request_text(enum vhostmsg_channel ch, uint32_t request, char buf[12])
{
	const char *name = vhostmsg_request_name(ch, request);

	if (name)
		return name;
	snprintf(buf, 12, "%u", request);
	return buf;
}

static void log_message(const struct vhost_session *s, enum vhostmsg_channel ch, const char *from,
			const struct vhost_msg *m, const char *action, unsigned reason)
{
	char num[12];

	log_debug("vhost-user message",
		  "proxy=%s channel=%s from=%s request=%s flags=0x%x size=%u fds=%u action=%s "
		  "reason=%s",
		  s->p->cfg.name, vhostmsg_channel_name(ch), from,
		  request_text(ch, m->hdr.request, num), m->hdr.flags, m->hdr.size, m->n_fds,
		  action, vhost_reason_name(reason));
}

/* Counts a message that broke a bound and says why the session ends. */
static void count_fault(struct vhost_session *s, enum vhostmsg_channel ch, const char *from,
			enum vhost_io_fault fault)
{
	static const unsigned reasons[] = {
		[VHOST_IO_TOO_LARGE] = VHOSTMSG_TOO_LARGE,
		[VHOST_IO_FD_COUNT] = VHOSTMSG_FD_COUNT,
		[VHOST_IO_TRUNCATED] = VHOST_REASON_TRUNCATED,
	};
	unsigned reason = reasons[fault];
	struct vhost_proxy *p = s->p;

	pthread_mutex_lock(&p->lock);
	p->stats.invalid[ch][reason]++;
	pthread_mutex_unlock(&p->lock);
	log_warn("vhost-user session ends: a peer broke the message bounds",
		 "proxy=%s channel=%s from=%s reason=%s", p->cfg.name, vhostmsg_channel_name(ch),
		 from, vhost_reason_name(reason));
}

/*
 * Receives one message; 1, or 0 when the relay must stop (end of stream,
 * shut down, or a broken bound, which is counted and ends the session).
 */
static int relay_recv(struct vhost_session *s, int fd, struct vhost_msg *m,
		      enum vhostmsg_channel ch, const char *from)
{
	enum vhost_io_fault fault;
	int r = vhost_msg_recv(fd, m, &fault);

	if (r > 0)
		return 1;
	if (fault != VHOST_IO_OK) {
		count_fault(s, ch, from, fault);
		session_done(s);
	} else if (r < 0) {
		log_debug("vhost-user relay stops", "proxy=%s channel=%s from=%s err=\"%s\"",
			  s->p->cfg.name, vhostmsg_channel_name(ch), from, strerror(-r));
	}
	return 0;
}

/* Header, size and fd rules of any message; VHOSTMSG_VALID or the first broken. */
static unsigned check_message(enum vhostmsg_channel ch, const struct vhost_msg *m)
{
	enum vhostmsg_reason r = vhostmsg_check_header(&m->hdr, m->n_fds);

	if (r == VHOSTMSG_VALID)
		r = vhostmsg_check_size(ch, &m->hdr, vhost_msg_payload(m));
	if (r == VHOSTMSG_VALID)
		r = vhostmsg_check_fds(ch, &m->hdr, vhost_msg_payload(m), m->n_fds);
	return r;
}

/* Counts a message of the side that sends requests on ch. Call locked. */
static void count_request(struct vhost_proxy *p, enum vhostmsg_channel ch,
			  const struct vhost_msg *m, unsigned reason, unsigned *ret_series)
{
	unsigned series = vhost_stats_series(&p->stats, ch, m->hdr.request);

	/* Requests only: a reply belongs to the request already counted. */
	if (!(m->hdr.flags & VHOSTMSG_FLAG_REPLY))
		p->stats.requests[series].count++;
	if (reason != VHOSTMSG_VALID)
		p->stats.invalid[ch][reason]++;
	if (ret_series)
		*ret_series = series;
}

static void *relay_backend_requests(void *arg);
static void *relay_backend_replies(void *arg);

/* Shuts bc's sockets down (waking its relays) and joins them; then closes. */
static void backend_channel_free(struct backend_channel *bc)
{
	if (!bc)
		return;
	shutdown(bc->frontend_fd, SHUT_RDWR);
	shutdown(bc->tap_fd, SHUT_RDWR);
	for (unsigned i = 0; i < bc->n_threads; i++)
		pthread_join(bc->threads[i], NULL);
	safe_close(bc->frontend_fd);
	safe_close(bc->tap_fd);
	pthread_mutex_destroy(&bc->write_lock);
	free(bc);
}

/*
 * SET_BACKEND_REQ_FD: keeps the frontend's socket and hands the backend one
 * end of a pair of ours instead, so that the backend channel is relayed too.
 * 0 when m is ready to go (without resources it goes on unchanged and the
 * channel is not seen), or -errno when the session must end.
 */
static int backend_channel_interpose(struct vhost_session *s, struct vhost_msg *m)
{
	struct backend_channel *bc = calloc(1, sizeof(*bc));
	int pair[2], r = 0;

	if (!bc || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
		log_warn("cannot relay the vhost-user backend channel; passing it through",
			 "proxy=%s err=\"%s\"", s->p->cfg.name, strerror(bc ? errno : ENOMEM));
		free(bc);
		return 0;
	}
	pthread_mutex_init(&bc->write_lock, NULL);
	bc->s = s;
	bc->frontend_fd = m->fds[0];
	bc->tap_fd = pair[0];
	m->fds[0] = pair[1]; /* sent to the backend, then closed like every relayed fd */

	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		r = -ECANCELED;
	} else {
		/* A frontend may send it again: the new channel replaces the old. */
		backend_channel_free(TAKE_PTR(s->bc));
		r = start_thread(&bc->threads[0], relay_backend_requests, bc);
		if (r == 0) {
			bc->n_threads = 1;
			r = start_thread(&bc->threads[1], relay_backend_replies, bc);
		}
		if (r == 0)
			bc->n_threads = 2;
	}
	if (r < 0) {
		/* Rare (no memory for a thread): ending the session beats relaying half. */
		pthread_mutex_unlock(&s->lock);
		backend_channel_free(bc);
		if (r != -ECANCELED)
			log_error("cannot start a vhost-user relay; the session ends",
				  "proxy=%s err=\"%s\"", s->p->cfg.name, strerror(-r));
		return r;
	}
	s->bc = bc;
	pthread_mutex_unlock(&s->lock);
	log_debug("relaying the vhost-user backend channel", "proxy=%s", s->p->cfg.name);
	return 0;
}

/* Main channel, frontend -> backend: the frontend's requests. */
static void *relay_frontend_requests(void *arg)
{
	struct vhost_session *s = arg;
	struct vhost_proxy *p = s->p;
	struct vhost_msg *m = malloc(sizeof(*m));

	while (m && relay_recv(s, s->frontend_fd, m, VHOSTMSG_CHANNEL_FRONTEND, "frontend")) {
		unsigned reason = check_message(VHOSTMSG_CHANNEL_FRONTEND, m);
		int r;

		pthread_mutex_lock(&p->lock);
		count_request(p, VHOSTMSG_CHANNEL_FRONTEND, m, reason, NULL);
		pthread_mutex_unlock(&p->lock);
		if (m->hdr.request == VHOSTMSG_SET_BACKEND_REQ_FD && m->n_fds == 1 &&
		    !(m->hdr.flags & VHOSTMSG_FLAG_REPLY) && backend_channel_interpose(s, m) < 0) {
			vhost_msg_close_fds(m);
			break;
		}
		log_message(s, VHOSTMSG_CHANNEL_FRONTEND, "frontend", m, "relayed", reason);
		r = vhost_msg_send(s->backend_fd, m);
		vhost_msg_close_fds(m);
		if (r < 0)
			break;
	}
	free(m);
	session_done(s);
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

	while (m && relay_recv(s, s->backend_fd, m, VHOSTMSG_CHANNEL_FRONTEND, "backend")) {
		unsigned reason = check_message(VHOSTMSG_CHANNEL_FRONTEND, m);
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
		log_message(s, VHOSTMSG_CHANNEL_FRONTEND, "backend", m, "relayed", reason);
		r = vhost_msg_send(s->frontend_fd, m);
		vhost_msg_close_fds(m);
		if (r < 0)
			break;
	}
	free(m);
	session_done(s);
	return NULL;
}

/* Ends a backend channel from inside: its peers see the channel close, the session goes on. */
static void backend_channel_close(struct backend_channel *bc)
{
	shutdown(bc->frontend_fd, SHUT_RDWR);
	shutdown(bc->tap_fd, SHUT_RDWR);
}

static void pending_push(struct vhost_session *s, struct backend_channel *bc,
			 const struct pending *e)
{
	if (bc->pending_n == PENDING_MAX) {
		/* A request the frontend never answered (QEMU 7.2 ignores unknown ones). */
		bc->pending_head = (bc->pending_head + 1) % PENDING_MAX;
		bc->pending_n--;
		log_debug("vhost-user backend request never answered; forgotten", "proxy=%s",
			  s->p->cfg.name);
	}
	bc->pending[(bc->pending_head + bc->pending_n) % PENDING_MAX] = *e;
	bc->pending_n++;
}

/*
 * Takes the oldest pending request of that number, dropping older ones the
 * frontend left unanswered (it answers in order). False when there is none.
 */
static bool pending_take(struct backend_channel *bc, uint32_t request, struct pending *ret)
{
	for (unsigned i = 0; i < bc->pending_n; i++) {
		struct pending *e = &bc->pending[(bc->pending_head + i) % PENDING_MAX];

		if (e->request != request)
			continue;
		*ret = *e;
		bc->pending_head = (bc->pending_head + i + 1) % PENDING_MAX;
		bc->pending_n -= i + 1;
		return true;
	}
	return false;
}

/* The tap's own answer to a refused request: u64 1, failure. */
static int send_refusal(struct backend_channel *bc, const struct vhost_msg *req)
{
	struct vhost_msg reply;
	uint64_t failure = 1;
	int r;

	reply.hdr = (struct vhostmsg_header){ .request = req->hdr.request,
					      .flags = VHOSTMSG_VERSION | VHOSTMSG_FLAG_REPLY,
					      .size = sizeof(failure) };
	reply.n_fds = 0;
	vhostmsg_header_encode(&reply.hdr, reply.raw);
	memcpy(reply.raw + VHOSTMSG_HEADER_SIZE, &failure, sizeof(failure));
	pthread_mutex_lock(&bc->write_lock);
	r = vhost_msg_send(bc->tap_fd, &reply);
	pthread_mutex_unlock(&bc->write_lock);
	return r;
}

/*
 * Validates, counts and decides one backend request. Call locked. True to
 * relay it, false to refuse it (policy enforce).
 */
static bool judge_backend_request(struct vhost_session *s, struct backend_channel *bc,
				  const struct vhost_msg *m, unsigned *ret_reason)
{
	struct vhost_proxy *p = s->p;
	const uint8_t *payload = vhost_msg_payload(m);
	unsigned reason = check_message(VHOSTMSG_CHANNEL_BACKEND, m), series;
	bool reply = m->hdr.flags & VHOSTMSG_FLAG_REPLY;
	bool wants_reply = vhostmsg_needs_reply(VHOSTMSG_CHANNEL_BACKEND, &m->hdr, 0);
	struct pending e = { .request = m->hdr.request };
	int r = 0;

	if (!reply && vhostmsg_check_header(&m->hdr, m->n_fds) == VHOSTMSG_VALID)
		r = vhostmsg_decode_map(&m->hdr, m->hdr.size ? payload : NULL, m->n_fds, &e.map);
	if (r < 0 && reason == VHOSTMSG_VALID)
		reason = (unsigned)-r;
	if (r > 0) {
		uint32_t all = vhostmsg_shmem_check_all(p->tracker, &e.map, p->cfg.trusted);

		/* Well-formed but for out_of_process: a frontend that takes it maps it. */
		e.apply = (all & ~VHOSTMSG_REASON_BIT(VHOSTMSG_OUT_OF_PROCESS)) == 0;
		if (reason == VHOSTMSG_VALID && all)
			reason = (unsigned)__builtin_ctz(all);
		vhost_stats_see_shmid(&p->stats, e.map.shmid);
		if (e.map.request == VHOSTMSG_BACKEND_EXTERNAL_MAP) {
			p->stats.ext_requests[e.map.shmid]++;
			if (e.apply)
				p->stats.ext_bytes[e.map.shmid] += e.map.len;
		}
	}
	count_request(p, VHOSTMSG_CHANNEL_BACKEND, m, reason, &series);
	*ret_reason = reason;
	if (p->policy == VHOST_POLICY_ENFORCE && reason != VHOSTMSG_VALID && !reply) {
		p->stats.refused[series][reason]++;
		return false;
	}
	if (wants_reply)
		pending_push(s, bc, &e);
	else if (r > 0 && e.apply && vhostmsg_shmem_apply(p->tracker, &e.map) < 0)
		log_warn("vhost-user mapping not tracked: too many live mappings", "proxy=%s",
			 p->cfg.name);
	return true;
}

/* Backend channel, backend -> frontend: the backend's requests. */
static void *relay_backend_requests(void *arg)
{
	struct backend_channel *bc = arg;
	struct vhost_session *s = bc->s;
	struct vhost_msg *m = malloc(sizeof(*m));

	while (m && relay_recv(s, bc->tap_fd, m, VHOSTMSG_CHANNEL_BACKEND, "backend")) {
		bool wants_reply = vhostmsg_needs_reply(VHOSTMSG_CHANNEL_BACKEND, &m->hdr, 0);
		unsigned reason;
		bool relay;
		int r;

		pthread_mutex_lock(&s->p->lock);
		relay = judge_backend_request(s, bc, m, &reason);
		pthread_mutex_unlock(&s->p->lock);
		log_message(s, VHOSTMSG_CHANNEL_BACKEND, "backend", m, relay ? "relayed" : "refused",
			    reason);
		if (relay)
			r = vhost_msg_send(bc->frontend_fd, m);
		else
			r = wants_reply ? send_refusal(bc, m) : 0;
		vhost_msg_close_fds(m);
		if (r < 0)
			break;
	}
	free(m);
	backend_channel_close(bc);
	return NULL;
}

/* Backend channel, frontend -> backend: the frontend's replies. */
static void *relay_backend_replies(void *arg)
{
	struct backend_channel *bc = arg;
	struct vhost_session *s = bc->s;
	struct vhost_proxy *p = s->p;
	struct vhost_msg *m = malloc(sizeof(*m));

	while (m && relay_recv(s, bc->frontend_fd, m, VHOSTMSG_CHANNEL_BACKEND, "frontend")) {
		unsigned reason = check_message(VHOSTMSG_CHANNEL_BACKEND, m);
		struct pending e;
		int r;

		pthread_mutex_lock(&p->lock);
		if (!(m->hdr.flags & VHOSTMSG_FLAG_REPLY)) {
			/* Not a reply: the frontend has no requests on this channel; relay it. */
		} else if (!pending_take(bc, m->hdr.request, &e)) {
			if (reason == VHOSTMSG_VALID)
				reason = VHOST_REASON_UNEXPECTED_REPLY;
		} else {
			uint64_t result = 1;
			bool ok = vhostmsg_reply_result(&m->hdr, vhost_msg_payload(m), &result) ==
					  0 &&
				  result == 0;

			if (e.request == VHOSTMSG_BACKEND_EXTERNAL_MAP)
				p->stats.ext_replies[ok ? 0 : 1]++;
			if (ok && e.apply && vhostmsg_shmem_apply(p->tracker, &e.map) < 0)
				log_warn("vhost-user mapping not tracked: too many live mappings",
					 "proxy=%s", p->cfg.name);
		}
		if (reason != VHOSTMSG_VALID)
			p->stats.invalid[VHOSTMSG_CHANNEL_BACKEND][reason]++;
		pthread_mutex_unlock(&p->lock);
		log_message(s, VHOSTMSG_CHANNEL_BACKEND, "frontend", m, "relayed", reason);
		pthread_mutex_lock(&bc->write_lock);
		r = vhost_msg_send(bc->tap_fd, m);
		pthread_mutex_unlock(&bc->write_lock);
		vhost_msg_close_fds(m);
		if (r < 0)
			break;
	}
	free(m);
	backend_channel_close(bc);
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
	backend_channel_free(TAKE_PTR(s->bc));

	pthread_mutex_lock(&p->lock);
	tracker = TAKE_PTR(p->tracker);
	p->stats.connected = false;
	pthread_mutex_unlock(&p->lock);
	vhostmsg_shmem_free(tracker);
}

void vhost_session_run(struct vhost_proxy *p, int frontend_fd)
{
	struct vhost_session s = { .p = p, .frontend_fd = frontend_fd, .backend_fd = -1,
				   .done_fd = -1 };
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

	r = start_thread(&s.threads[0], relay_frontend_requests, &s);
	if (r == 0) {
		s.n_threads = 1;
		r = start_thread(&s.threads[1], relay_backend_main, &s);
	}
	if (r == 0) {
		s.n_threads = 2;
		session_wait(&s);
	} else {
		log_error("cannot start a vhost-user relay; the session ends", "proxy=%s err=\"%s\"",
			  p->cfg.name, strerror(-r));
	}
	session_teardown(&s);
	log_info("vhost-user session ended", "proxy=%s", p->cfg.name);
	pthread_mutex_destroy(&s.lock);
	safe_close(s.done_fd);
	safe_close(s.backend_fd);
	safe_close(s.frontend_fd);
}
