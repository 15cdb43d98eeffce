/* SPDX-License-Identifier: MIT */
/*
 * The steps every relay thread of a session takes per message: receive
 * within bounds, check the header rules, count, log; and the session's
 * small shared services (wake the supervisor, start a relay thread).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "macro.h"
#include "vhost/relay.h"

#define RELAY_STACK_SIZE (256u * 1024u)

void vhost_session_done(struct vhost_session *s)
{
	uint64_t one = 1;

	(void)!write(s->done_fd, &one, sizeof(one));
}

int vhost_session_start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int r;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, RELAY_STACK_SIZE);
	r = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return -r;
}

void vhost_session_log(const struct vhost_session *s, enum vhostmsg_channel ch, const char *from,
		       const struct vhost_msg *m, const char *action, unsigned reason)
{
	char num[12];

	log_debug("vhost-user message",
		  "proxy=%s channel=%s from=%s request=%s flags=0x%x size=%u fds=%u action=%s "
		  "reason=%s",
		  s->p->cfg.name, vhostmsg_channel_name(ch), from,
		  vhost_request_label(ch, m->hdr.request, num), m->hdr.flags, m->hdr.size, m->n_fds,
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

int vhost_session_recv(struct vhost_session *s, int fd, struct vhost_msg *m,
		       enum vhostmsg_channel ch, const char *from)
{
	enum vhost_io_fault fault;
	int r = vhost_msg_recv(fd, m, &fault);

	if (r > 0)
		return 1;
	if (fault != VHOST_IO_OK) {
		count_fault(s, ch, from, fault);
		vhost_session_done(s);
	} else if (r < 0) {
		log_debug("vhost-user relay stops", "proxy=%s channel=%s from=%s err=\"%s\"",
			  s->p->cfg.name, vhostmsg_channel_name(ch), from, strerror(-r));
	}
	return 0;
}

unsigned vhost_check_message(enum vhostmsg_channel ch, const struct vhost_msg *m)
{
	enum vhostmsg_reason r = vhostmsg_check_header(&m->hdr, m->n_fds);

	if (r == VHOSTMSG_VALID)
		r = vhostmsg_check_size(ch, &m->hdr, vhost_msg_payload(m));
	if (r == VHOSTMSG_VALID)
		r = vhostmsg_check_fds(ch, &m->hdr, vhost_msg_payload(m), m->n_fds);
	return r;
}

void vhost_count_request(struct vhost_proxy *p, enum vhostmsg_channel ch, const struct vhost_msg *m,
			 unsigned reason, unsigned *ret_series)
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
