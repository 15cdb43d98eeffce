/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "vhost/stats.h"

static const char *const tap_reason_names[] = {
	[VHOST_REASON_TRUNCATED - VHOSTMSG_REASON__MAX] = "truncated",
	[VHOST_REASON_UNEXPECTED_REPLY - VHOSTMSG_REASON__MAX] = "unexpected_reply",
};

const char *vhost_reason_name(unsigned reason)
{
	if (reason < VHOSTMSG_REASON__MAX)
		return vhostmsg_reason_name((enum vhostmsg_reason)reason);
	if (reason < VHOST_REASON__MAX)
		return tap_reason_names[reason - VHOSTMSG_REASON__MAX];
	return "unknown";
}

unsigned vhost_stats_series(struct vhost_proxy_stats *s, enum vhostmsg_channel ch, uint32_t request)
{
	bool named = vhostmsg_request_name(ch, request) != NULL;
	bool other = !named && s->n_unnamed >= VHOST_MAX_UNNAMED;

	for (;;) {
		for (unsigned i = 0; i < s->n_requests; i++) {
			const struct vhost_request_series *e = &s->requests[i];

			if (e->channel == ch && e->other == other &&
			    (other || e->request == request))
				return i;
		}
		/* The last two slots stay free for the "other" series of each channel. */
		if (other || s->n_requests < VHOST_MAX_REQUEST_SERIES - 2)
			break;
		other = true;
	}
	if (!named && !other)
		s->n_unnamed++;
	s->requests[s->n_requests] = (struct vhost_request_series){ .request = request,
								    .channel = (uint8_t)ch,
								    .other = other };
	return s->n_requests++;
}

const char *vhost_request_label(enum vhostmsg_channel ch, uint32_t request, char buf[12])
{
	const char *name = vhostmsg_request_name(ch, request);

	if (name)
		return name;
	snprintf(buf, 12, "%u", request);
	return buf;
}
