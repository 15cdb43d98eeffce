/* SPDX-License-Identifier: MIT */
/*
 * Internals of one tap session, shared by its main channel (session.c), its
 * backend channel (channel.c) and the per-message steps of both (relay.c).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhost/io.h"
#include "vhost/proxy.h"

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

/* Wakes the supervisor: the session must end. */
void vhost_session_done(struct vhost_session *s);
/* Starts a relay thread (small stack). 0 or -errno. */
int vhost_session_start_thread(pthread_t *t, void *(*fn)(void *), void *arg);
/* One debug line per message (--log.level=debug). */
void vhost_session_log(const struct vhost_session *s, enum vhostmsg_channel ch, const char *from,
		       const struct vhost_msg *m, const char *action, unsigned reason);
/*
 * Receives one message; 1, or 0 when the relay must stop (end of stream,
 * shut down, or a broken bound, which is counted and ends the session).
 */
int vhost_session_recv(struct vhost_session *s, int fd, struct vhost_msg *m,
		       enum vhostmsg_channel ch, const char *from);
/* Header, size and fd rules of any message; VHOSTMSG_VALID or the first broken. */
unsigned vhost_check_message(enum vhostmsg_channel ch, const struct vhost_msg *m);
/* Counts a message of the side that sends requests on ch. Call with the proxy locked. */
void vhost_count_request(struct vhost_proxy *p, enum vhostmsg_channel ch, const struct vhost_msg *m,
			 unsigned reason, unsigned *ret_series);
