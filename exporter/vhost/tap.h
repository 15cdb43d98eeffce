/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user tap (docs/vhost-tap.md): for each --vhost.proxy, listen
 * where the frontend (the VMM) connects, connect to the real backend, relay
 * every message and fd of both channels unchanged, and count what passes,
 * above all the backend's shared-memory mapping requests. Each proxy runs in
 * threads of its own; a broken session never touches another proxy or the
 * scrape.
 */
#pragma once

#include <stddef.h>

#include "expo/family.h"
#include "vhost/config.h"

struct vhost_taps;

/*
 * Listens on every proxy's path (replacing a stale socket file, never a
 * live socket or another file) and starts serving. Call with the signals
 * the main thread handles blocked, as the threads inherit the mask.
 * 0, or -errno with why[] naming the proxy and the cause.
 */
int vhost_taps_start(const struct vhost_proxy_config *cfgs, size_t n, enum vhost_policy policy,
		     struct vhost_taps **ret, char *why, size_t why_len);

/*
 * Stops every proxy: ends the sessions, joins the threads, closes every fd
 * and removes the listening sockets. Accepts NULL, returns NULL.
 */
struct vhost_taps *vhost_taps_free(struct vhost_taps *t);

/*
 * Writes the vhost_user_* families of every proxy (taps: a struct
 * vhost_taps, or NULL for none); a family_writer_fn for the collector.
 * Thread-safe against the relays.
 */
void vhost_taps_write_metrics(void *taps, struct family_writer *w);
