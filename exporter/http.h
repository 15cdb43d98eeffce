/* SPDX-License-Identifier: MIT */
/*
 * The HTTP front end (libmicrohttpd): /metrics, /, /-/healthy, /-/ready.
 * One MHD daemon per listen address, each with its own polling thread; the
 * collect callback must therefore be thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "outbuf.h"

struct http_server;

struct http_config {
	char *const *listen; /* "host:port", ":port", "[v6]:port" */
	size_t n_listen;
	const char *telemetry_path; /* e.g. "/metrics" */
	/* Fills out with a text 0.0.4 exposition (also for HEAD); 0 or -errno (answered 500). */
	int (*collect)(void *userdata, struct outbuf *out);
	/* True once the first discovery is done (for /-/ready). */
	bool (*ready)(void *userdata);
	void *userdata;
};

/*
 * Binds every listen address and starts serving. MHD's threads inherit the
 * caller's signal mask: block the signals the main loop waits for first. On failure returns -errno
 * and writes one sentence naming the address into errbuf.
 */
int http_server_start(const struct http_config *cfg, struct http_server **ret, char *errbuf,
		      size_t errlen);

/* Stops serving and frees the server. Accepts NULL, returns NULL. */
struct http_server *http_server_stop(struct http_server *s);

/*
 * Parses a listen address into host (NULL for "all addresses") and port.
 * 0 or -EINVAL. *ret_host is malloc'd.
 */
int http_parse_listen_address(const char *addr, char **ret_host, unsigned *ret_port);
