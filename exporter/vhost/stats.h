/* SPDX-License-Identifier: MIT */
/*
 * The counters of one proxy and the label values they are exported under:
 * the `reason` of a broken rule, the bounded set of `request` series.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "vhostmsg.h"

/* Reasons of the tap's own, numbered after vhostmsg's for the `reason` label. */
enum {
	VHOST_REASON_TRUNCATED = VHOSTMSG_REASON__MAX, /* the peer closed mid-message */
	VHOST_REASON_UNEXPECTED_REPLY,                 /* a reply to no pending request */
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
	uint64_t invalid[2][VHOST_REASON__MAX];                        /* [channel][reason] */
	uint64_t refused[VHOST_MAX_REQUEST_SERIES][VHOST_REASON__MAX]; /* [series][reason] */
	uint64_t ext_requests[VHOSTMSG_MAX_SHMEM_REGIONS];
	uint64_t ext_bytes[VHOSTMSG_MAX_SHMEM_REGIONS];
	uint64_t ext_replies[2];                              /* success, failure */
	uint64_t shmid_seen[VHOSTMSG_MAX_SHMEM_REGIONS / 64]; /* bitmap: gauges to export */
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

/* The `request` label value of (ch, request): its name, else its number written into buf. */
const char *vhost_request_label(enum vhostmsg_channel ch, uint32_t request, char buf[12]);
