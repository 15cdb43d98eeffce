/* SPDX-License-Identifier: MIT */
/*
 * The vhost_user_* families (docs/metrics.md, "vhost-user tap"). Family by
 * family, each proxy locked only while its series of that family are
 * written, so a scrape never waits for more than one message's accounting.
 */
#include <stdio.h>

#include "expo/escape.h"
#include "expo/family.h"
#include "macro.h"
#include "vhost/proxy.h"
#include "vhost/tap.h"

/* `name{proxy="P"`: a sample of the current family; other labels and the value follow. */
static void sample_start(struct family_writer *w, const struct vhost_proxy *p)
{
	family_sample(w, NULL);
	family_label_escaped(w, "proxy", p->name_escaped);
}

static const char *series_request(const struct vhost_request_series *e, char buf[12])
{
	if (e->other)
		return "other";
	return vhost_request_label((enum vhostmsg_channel)e->channel, e->request, buf);
}

static bool shmid_seen(const struct vhost_proxy_stats *s, unsigned shmid)
{
	return s->shmid_seen[shmid / 64] & (UINT64_C(1) << (shmid % 64));
}

/* Which reasons each channel can show, so that their counters start at 0. */
static bool reason_applies(enum vhostmsg_channel ch, unsigned reason)
{
	switch (reason) {
	case VHOSTMSG_VALID:
		return false;
	case VHOSTMSG_BAD_VERSION:
	case VHOSTMSG_RESERVED_FLAGS:
	case VHOSTMSG_SIZE_MISMATCH:
	case VHOSTMSG_TOO_LARGE:
	case VHOSTMSG_FD_COUNT:
	case VHOST_REASON_TRUNCATED:
		return true;
	default:
		/* Mapping rules and reply matching concern the backend channel only. */
		return ch == VHOSTMSG_CHANNEL_BACKEND;
	}
}

static void write_connections(struct vhost_taps *t, struct family_writer *w)
{
	family_begin(w, "vhost_user_proxy_connected", FAMILY_GAUGE, NULL,
		     "Whether a frontend is connected to the proxy and relayed to its backend.");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		sample_start(w, p);
		family_value_u64(w, p->stats.connected ? 1 : 0);
		pthread_mutex_unlock(&p->lock);
	}
	family_begin(w, "vhost_user_proxy_connections", FAMILY_COUNTER, NULL,
		     "Frontend connections relayed to the backend (sessions started).");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		sample_start(w, p);
		family_value_u64(w, p->stats.connections);
		pthread_mutex_unlock(&p->lock);
	}
}

static void write_messages(struct vhost_taps *t, struct family_writer *w)
{
	char num[12];

	family_begin(w, "vhost_user_messages", FAMILY_COUNTER, NULL,
		     "Requests received by the proxy, by channel (named by who sends the "
		     "requests) and request; replies are not counted.");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		for (unsigned j = 0; j < p->stats.n_requests; j++) {
			const struct vhost_request_series *e = &p->stats.requests[j];

			if (e->count == 0)
				continue; /* a series made only for a reply or a refusal */
			sample_start(w, p);
			family_label(w, "channel",
				     vhostmsg_channel_name((enum vhostmsg_channel)e->channel));
			family_label(w, "request", series_request(e, num));
			family_value_u64(w, e->count);
		}
		pthread_mutex_unlock(&p->lock);
	}
	family_begin(w, "vhost_user_invalid_messages", FAMILY_COUNTER, NULL,
		     "Messages (requests or replies) that break a rule of the protocol, by "
		     "channel and the first rule broken.");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		for (unsigned ch = 0; ch < 2; ch++)
			for (unsigned r = 0; r < VHOST_REASON__MAX; r++) {
				if (!reason_applies(ch, r) && p->stats.invalid[ch][r] == 0)
					continue;
				sample_start(w, p);
				family_label(w, "channel", vhostmsg_channel_name(ch));
				family_label(w, "reason", vhost_reason_name(r));
				family_value_u64(w, p->stats.invalid[ch][r]);
			}
		pthread_mutex_unlock(&p->lock);
	}
	family_begin(w, "vhost_user_refused", FAMILY_COUNTER, NULL,
		     "Backend requests the proxy did not relay (policy enforce), by request and "
		     "the first rule broken; the proxy answered failure when a reply was due.");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		for (unsigned j = 0; j < p->stats.n_requests; j++)
			for (unsigned r = 0; r < VHOST_REASON__MAX; r++) {
				if (p->stats.refused[j][r] == 0)
					continue;
				sample_start(w, p);
				family_label(w, "request",
					     series_request(&p->stats.requests[j], num));
				family_label(w, "reason", vhost_reason_name(r));
				family_value_u64(w, p->stats.refused[j][r]);
			}
		pthread_mutex_unlock(&p->lock);
	}
}

static void write_external_map(struct vhost_taps *t, struct family_writer *w)
{
	static const char *const families[2][2] = {
		{ "vhost_user_external_map_requests",
		  "EXTERNAL_MAP requests (crosvm's backend request 1007) received, relayed or "
		  "refused, by shmid." },
		{ "vhost_user_external_map_bytes",
		  "Bytes EXTERNAL_MAP requests asked to map (their len), by shmid; requests "
		  "that break a mapping rule other than out_of_process are left out." },
	};
	for (unsigned f = 0; f < 2; f++) {
		family_begin(w, families[f][0], FAMILY_COUNTER, NULL, families[f][1]);
		for (size_t i = 0; i < t->n; i++) {
			struct vhost_proxy *p = &t->proxies[i];

			pthread_mutex_lock(&p->lock);
			for (unsigned id = 0; id < VHOSTMSG_MAX_SHMEM_REGIONS; id++) {
				if (p->stats.ext_requests[id] == 0)
					continue;
				sample_start(w, p);
				family_label_u64(w, "shmid", id);
				family_value_u64(w, f == 0 ? p->stats.ext_requests[id]
							   : p->stats.ext_bytes[id]);
			}
			pthread_mutex_unlock(&p->lock);
		}
	}
	family_begin(w, "vhost_user_external_map_replies", FAMILY_COUNTER, NULL,
		     "The frontend's replies to EXTERNAL_MAP requests, by result (a u64 of 0 is "
		     "success).");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		for (unsigned k = 0; k < 2; k++) {
			sample_start(w, p);
			family_label(w, "result", k == 0 ? "success" : "failure");
			family_value_u64(w, p->stats.ext_replies[k]);
		}
		pthread_mutex_unlock(&p->lock);
	}
}

static void write_mappings(struct vhost_taps *t, struct family_writer *w)
{
	static const char *const families[2][2] = {
		{ "vhost_user_shmem_mappings",
		  "Live shared-memory mappings of the current session, by shmid, as the "
		  "frontend accepted them (SHMEM_MAP, GPU_MAP and EXTERNAL_MAP add, SHMEM_UNMAP "
		  "removes)." },
		{ "vhost_user_shmem_mapped_bytes", "Bytes of those mappings, by shmid." },
	};

	for (unsigned f = 0; f < 2; f++) {
		family_begin(w, families[f][0], FAMILY_GAUGE, NULL, families[f][1]);
		for (size_t i = 0; i < t->n; i++) {
			struct vhost_proxy *p = &t->proxies[i];

			pthread_mutex_lock(&p->lock);
			for (unsigned id = 0; id < VHOSTMSG_MAX_SHMEM_REGIONS; id++) {
				uint64_t mappings = 0, bytes = 0;

				if (!shmid_seen(&p->stats, id))
					continue;
				if (p->tracker)
					vhostmsg_shmem_stats(p->tracker, (uint8_t)id, &mappings,
							     &bytes);
				sample_start(w, p);
				family_label_u64(w, "shmid", id);
				family_value_u64(w, f == 0 ? mappings : bytes);
			}
			pthread_mutex_unlock(&p->lock);
		}
	}
}

void vhost_taps_write_metrics(void *taps, struct family_writer *w)
{
	struct vhost_taps *t = taps;

	if (!t || t->n == 0)
		return;
	write_connections(t, w);
	write_messages(t, w);
	write_external_map(t, w);
	write_mappings(t, w);
}
