/* SPDX-License-Identifier: MIT */
/* The backend channel of a session (SET_BACKEND_REQ_FD), relayed by threads of its own. */
#pragma once

#include "vhost/relay.h"

/*
 * SET_BACKEND_REQ_FD: keeps the frontend's socket and hands the backend one
 * end of a pair of ours instead (in m), so that the backend channel is
 * relayed too. 0 when m is ready to go (without resources it goes on
 * unchanged and the channel is not seen), or -errno when the session must end.
 */
int vhost_channel_interpose(struct vhost_session *s, struct vhost_msg *m);
/* Shuts the channel's sockets down (waking its relays), joins them, closes. Accepts NULL. */
void vhost_channel_free(struct backend_channel *bc);
