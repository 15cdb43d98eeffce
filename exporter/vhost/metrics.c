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

/* Counters are named without "_total", which text 0.0.4 adds. */
static void put_header(struct outbuf *out, enum exposition_format fmt, const char *family,
		       enum family_type type, const char *help)
{
	family_write_header(out, fmt, family, type, NULL, help);
}

/* "name{proxy="P"" — the caller adds its other labels and "} value\n". */
static void put_sample_start(struct outbuf *out, const char *name, const struct vhost_proxy *p)
{
	outbuf_puts(out, name);
	outbuf_puts(out, "{proxy=\"");
	outbuf_puts(out, p->name_escaped);
	outbuf_putc(out, '"');
}

static void put_label(struct outbuf *out, const char *name, const char *value)
{
	outbuf_putc(out, ',');
	outbuf_puts(out, name);
	outbuf_puts(out, "=\"");
	escape_puts(out, value, ESCAPE_LABEL_VALUE);
	outbuf_putc(out, '"');
}

static void put_value(struct outbuf *out, uint64_t v)
{
	outbuf_puts(out, "} ");
	outbuf_put_u64(out, v);
	outbuf_putc(out, '\n');
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

static void write_connections(struct vhost_taps *t, struct outbuf *out,
			      enum exposition_format fmt)
{
	put_header(out, fmt, "vhost_user_proxy_connected", FAMILY_GAUGE,
		   "Whether a frontend is connected to the proxy and relayed to its backend.");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		put_sample_start(out, "vhost_user_proxy_connected", p);
		put_value(out, p->stats.connected ? 1 : 0);
		pthread_mutex_unlock(&p->lock);
	}
	put_header(out, fmt, "vhost_user_proxy_connections", FAMILY_COUNTER,
		   "Frontend connections relayed to the backend (sessions started).");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		put_sample_start(out, "vhost_user_proxy_connections_total", p);
		put_value(out, p->stats.connections);
		pthread_mutex_unlock(&p->lock);
	}
}

static void write_messages(struct vhost_taps *t, struct outbuf *out, enum exposition_format fmt)
{
	char num[12];

	put_header(out, fmt, "vhost_user_messages", FAMILY_COUNTER,
		   "Requests received by the proxy, by channel (named by who sends the "
		   "requests) and request; replies are not counted.");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		for (unsigned j = 0; j < p->stats.n_requests; j++) {
			const struct vhost_request_series *e = &p->stats.requests[j];

			if (e->count == 0)
				continue; /* a series made only for a reply or a refusal */
			put_sample_start(out, "vhost_user_messages_total", p);
			put_label(out, "channel",
				  vhostmsg_channel_name((enum vhostmsg_channel)e->channel));
			put_label(out, "request", series_request(e, num));
			put_value(out, e->count);
		}
		pthread_mutex_unlock(&p->lock);
	}
	put_header(out, fmt, "vhost_user_invalid_messages", FAMILY_COUNTER,
		   "Messages (requests or replies) that break a rule of the protocol, by "
		   "channel and the first rule broken.");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		for (unsigned ch = 0; ch < 2; ch++)
			for (unsigned r = 0; r < VHOST_REASON__MAX; r++) {
				if (!reason_applies(ch, r) && p->stats.invalid[ch][r] == 0)
					continue;
				put_sample_start(out, "vhost_user_invalid_messages_total", p);
				put_label(out, "channel", vhostmsg_channel_name(ch));
				put_label(out, "reason", vhost_reason_name(r));
				put_value(out, p->stats.invalid[ch][r]);
			}
		pthread_mutex_unlock(&p->lock);
	}
	put_header(out, fmt, "vhost_user_refused", FAMILY_COUNTER,
		   "Backend requests the proxy did not relay (policy enforce), by request and "
		   "the first rule broken; the proxy answered failure when a reply was due.");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		for (unsigned j = 0; j < p->stats.n_requests; j++)
			for (unsigned r = 0; r < VHOST_REASON__MAX; r++) {
				if (p->stats.refused[j][r] == 0)
					continue;
				put_sample_start(out, "vhost_user_refused_total", p);
				put_label(out, "request", series_request(&p->stats.requests[j], num));
				put_label(out, "reason", vhost_reason_name(r));
				put_value(out, p->stats.refused[j][r]);
			}
		pthread_mutex_unlock(&p->lock);
	}
}

static void write_external_map(struct vhost_taps *t, struct outbuf *out,
			       enum exposition_format fmt)
{
	static const char *const families[2][2] = {
		{ "vhost_user_external_map_requests",
		  "EXTERNAL_MAP requests (crosvm's backend request 1007) received, relayed or "
		  "refused, by shmid." },
		{ "vhost_user_external_map_bytes",
		  "Bytes EXTERNAL_MAP requests asked to map (their len), by shmid; requests "
		  "that break a mapping rule other than out_of_process are left out." },
	};
	char name[64];

	for (unsigned f = 0; f < 2; f++) {
		put_header(out, fmt, families[f][0], FAMILY_COUNTER, families[f][1]);
		snprintf(name, sizeof(name), "%s_total", families[f][0]);
		for (size_t i = 0; i < t->n; i++) {
			struct vhost_proxy *p = &t->proxies[i];

			pthread_mutex_lock(&p->lock);
			for (unsigned id = 0; id < VHOSTMSG_MAX_SHMEM_REGIONS; id++) {
				if (p->stats.ext_requests[id] == 0)
					continue;
				put_sample_start(out, name, p);
				outbuf_printf(out, ",shmid=\"%u\"", id);
				put_value(out, f == 0 ? p->stats.ext_requests[id]
						      : p->stats.ext_bytes[id]);
			}
			pthread_mutex_unlock(&p->lock);
		}
	}
	put_header(out, fmt, "vhost_user_external_map_replies", FAMILY_COUNTER,
		   "The frontend's replies to EXTERNAL_MAP requests, by result (a u64 of 0 is "
		   "success).");
	for (size_t i = 0; i < t->n; i++) {
		struct vhost_proxy *p = &t->proxies[i];

		pthread_mutex_lock(&p->lock);
		for (unsigned k = 0; k < 2; k++) {
			put_sample_start(out, "vhost_user_external_map_replies_total", p);
			put_label(out, "result", k == 0 ? "success" : "failure");
			put_value(out, p->stats.ext_replies[k]);
		}
		pthread_mutex_unlock(&p->lock);
	}
}

static void write_mappings(struct vhost_taps *t, struct outbuf *out, enum exposition_format fmt)
{
	static const char *const families[2][2] = {
		{ "vhost_user_shmem_mappings",
		  "Live shared-memory mappings of the current session, by shmid, as the "
		  "frontend accepted them (SHMEM_MAP, GPU_MAP and EXTERNAL_MAP add, SHMEM_UNMAP "
		  "removes)." },
		{ "vhost_user_shmem_mapped_bytes", "Bytes of those mappings, by shmid." },
	};

	for (unsigned f = 0; f < 2; f++) {
		put_header(out, fmt, families[f][0], FAMILY_GAUGE, families[f][1]);
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
				put_sample_start(out, families[f][0], p);
				outbuf_printf(out, ",shmid=\"%u\"", id);
				put_value(out, f == 0 ? mappings : bytes);
			}
			pthread_mutex_unlock(&p->lock);
		}
	}
}

int vhost_taps_write_metrics(struct vhost_taps *t, struct outbuf *out, enum exposition_format fmt)
{
	if (!t || t->n == 0)
		return 0;
	write_connections(t, out, fmt);
	write_messages(t, out, fmt);
	write_external_map(t, out, fmt);
	write_mappings(t, out, fmt);
	return 0;
}
