/* SPDX-License-Identifier: MIT */
/*
 * The backend channel of a tap session: the backend's requests (decoded,
 * validated against the session's mappings, counted, relayed or refused) and
 * the frontend's replies (matched to the requests, applied when they accept
 * a mapping). Two relay threads, one per direction, like the main channel's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log/log.h"
#include "macro.h"
#include "vhost/channel.h"
#include "vhost/relay.h"

static void *relay_backend_requests(void *arg);
static void *relay_backend_replies(void *arg);

void vhost_channel_free(struct backend_channel *bc)
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

int vhost_channel_interpose(struct vhost_session *s, struct vhost_msg *m)
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
		vhost_channel_free(TAKE_PTR(s->bc));
		r = vhost_session_start_thread(&bc->threads[0], relay_backend_requests, bc);
		if (r == 0) {
			bc->n_threads = 1;
			r = vhost_session_start_thread(&bc->threads[1], relay_backend_replies, bc);
		}
		if (r == 0)
			bc->n_threads = 2;
	}
	if (r < 0) {
		/* Rare (no memory for a thread): ending the session beats relaying half. */
		pthread_mutex_unlock(&s->lock);
		vhost_channel_free(bc);
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
	unsigned reason = vhost_check_message(VHOSTMSG_CHANNEL_BACKEND, m), series;
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
	vhost_count_request(p, VHOSTMSG_CHANNEL_BACKEND, m, reason, &series);
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

	while (m && vhost_session_recv(s, bc->tap_fd, m, VHOSTMSG_CHANNEL_BACKEND, "backend")) {
		bool wants_reply = vhostmsg_needs_reply(VHOSTMSG_CHANNEL_BACKEND, &m->hdr, 0);
		unsigned reason;
		bool relay;
		int r;

		pthread_mutex_lock(&s->p->lock);
		relay = judge_backend_request(s, bc, m, &reason);
		pthread_mutex_unlock(&s->p->lock);
		vhost_session_log(s, VHOSTMSG_CHANNEL_BACKEND, "backend", m,
				  relay ? "relayed" : "refused", reason);
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

	while (m &&
	       vhost_session_recv(s, bc->frontend_fd, m, VHOSTMSG_CHANNEL_BACKEND, "frontend")) {
		unsigned reason = vhost_check_message(VHOSTMSG_CHANNEL_BACKEND, m);
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
		vhost_session_log(s, VHOSTMSG_CHANNEL_BACKEND, "frontend", m, "relayed", reason);
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
