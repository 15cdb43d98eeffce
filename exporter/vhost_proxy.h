/* SPDX-License-Identifier: MIT */
/*
 * Internals of the vhost-user tap shared by its files: one proxy (its
 * configuration, listening socket, supervisor thread and counters) and the
 * session that relays one frontend connection.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhost_config.h"
#include "vhostmsg.h"

/* Reasons of the tap's own, numbered after vhostmsg's for the `reason` label. */
enum {
	VHOST_REASON_TRUNCATED = VHOSTMSG_REASON__MAX, /* the peer closed mid-message */
	VHOST_REASON_UNEXPECTED_REPLY, /* a reply to no pending request */
	VHOST_REASON__MAX,
};

/* The `reason` label value of a vhostmsg or tap reason. */
const char *vhost_reason_name(unsigned reason);

/*
 * Bounded label cardinality: every named request gets its own series, and
 * numbers nobody defines too, up to VHOST_MAX_UNNAMED per proxy; later ones
 * are counted as request="other".
 */
#define VHOST_MAX_REQUEST_SERIES 160
#define VHOST_MAX_UNNAMED        16

struct vhost_request_series {
	uint32_t request;
	uint8_t channel; /* enum vhostmsg_channel */
	bool other;      /* the overflow series of its channel */
	uint64_t count;
};

/* Counters of one proxy, over all its sessions; under vhost_proxy.lock. */
struct vhost_proxy_stats {
	uint64_t connections;
	bool connected;
	struct vhost_request_series requests[VHOST_MAX_REQUEST_SERIES];
	unsigned n_requests;
	unsigned n_unnamed;
	uint64_t invalid[2][VHOST_REASON__MAX]; /* [channel][reason] */
	uint64_t refused[VHOST_MAX_REQUEST_SERIES][VHOST_REASON__MAX]; /* [series][reason] */
	uint64_t ext_requests[VHOSTMSG_MAX_SHMEM_REGIONS];
	uint64_t ext_bytes[VHOSTMSG_MAX_SHMEM_REGIONS];
	uint64_t ext_replies[2]; /* success, failure */
	uint64_t shmid_seen[VHOSTMSG_MAX_SHMEM_REGIONS / 64]; /* bitmap: gauges to export */
};

struct vhost_session;

struct vhost_proxy {
	struct vhost_proxy_config cfg; /* a copy, owned */
	char *name_escaped;            /* for the `proxy` label */
	enum vhost_policy policy;
	int listen_fd;
	int stop_fd; /* eventfd shared by all proxies: readable once they must stop */
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock; /* stats and tracker, shared with the scrape */
	struct vhost_proxy_stats stats;
	struct vhostmsg_shmem *tracker; /* the session's mappings; NULL between sessions */
};

/* Every proxy (what vhost_tap.h's handle points to). */
struct vhost_taps {
	struct vhost_proxy *proxies;
	size_t n;
	int stop_fd;
};

/*
 * The series index of (ch, request) in s, adding it (or using the channel's
 * "other" series) the first time. Call with the lock held.
 */
unsigned vhost_stats_series(struct vhost_proxy_stats *s, enum vhostmsg_channel ch,
			    uint32_t request);

/* Marks shmid as one whose mapping gauges are exported from now on. */
static inline void vhost_stats_see_shmid(struct vhost_proxy_stats *s, uint8_t shmid)
{
	s->shmid_seen[shmid / 64] |= UINT64_C(1) << (shmid % 64);
}

/*
 * Serves one frontend connection (takes frontend_fd) until either peer
 * hangs up, the session breaks, or the proxy must stop. Blocks; called by
 * the proxy's supervisor thread.
 */
void vhost_session_run(struct vhost_proxy *p, int frontend_fd);
