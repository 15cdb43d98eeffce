/* SPDX-License-Identifier: MIT */
/*
 * The HTTP front end (libmicrohttpd): /metrics (text 0.0.4 or OpenMetrics,
 * gzip or not, by the request's Accept and Accept-Encoding), /, /-/healthy,
 * /-/ready.
 * One MHD daemon per listen address, each with a thread per connection; the
 * collect callback must therefore be thread-safe. TLS, client certificates,
 * basic auth and extra headers come from the web config (webconfig.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "expo/exposition.h"
#include "expo/family.h"
#include "expo/outbuf.h"
#include "web/webconfig.h"

struct http_server;

/* The default of --web.max-requests, as in node_exporter. */
#define HTTP_DEFAULT_MAX_REQUESTS 40u

struct http_config {
	char *const *listen; /* "host:port", ":port", "[v6]:port" */
	size_t n_listen;
	const char *telemetry_path; /* e.g. "/metrics" */
	/*
	 * Fills out with an exposition in the negotiated format (also for HEAD);
	 * 0 or -errno (answered 500).
	 */
	int (*collect)(void *userdata, struct outbuf *out, enum exposition_format fmt,
		       uint32_t collectors);
	/*
	 * Names for collect[]=NAME / exclude[]=NAME (bit i is collectors[i]) and
	 * the bits of those enabled; collect() gets the bits a request asks for.
	 * No names: the arguments are ignored and collect() gets all bits.
	 */
	const char *const *collectors;
	size_t n_collectors;
	uint32_t collectors_enabled;
	/* True once the first discovery is done (for /-/ready). */
	bool (*ready)(void *userdata);
	void *userdata;
	/*
	 * Listening stream sockets to serve on instead of binding listen
	 * (--web.systemd-socket). The server owns them from the call on, even
	 * when it fails.
	 */
	const int *listen_fds;
	size_t n_listen_fds;
	/*
	 * Concurrent requests to telemetry_path beyond this are answered 503
	 * (--web.max-requests); 0 means no limit.
	 */
	unsigned max_requests;
	/*
	 * From --web.config.file (http_config_load_web_config()); NULL serves
	 * plain HTTP without authentication. Must outlive the server.
	 */
	struct webconfig *web;
	/* Where web came from: re-read when it (or a file it names) changes. NULL: never. */
	char *web_config_path;
};

/*
 * A family_writer_fn (userdata: the struct http_server *): promhttp's
 * promhttp_metric_handler_requests_in_flight and _requests_total{code}.
 */
void http_server_write_metrics(void *userdata, struct family_writer *w);

/*
 * Reads the web config file into cfg->web (replacing any earlier one). On
 * failure returns -errno, leaves cfg->web alone and writes one line into err
 * naming the file, the line and the key.
 */
int http_config_load_web_config(struct http_config *cfg, const char *path, char *err,
				size_t errlen);

/* Frees what http_config_load_web_config() loaded; after http_server_stop(). */
void http_config_release(struct http_config *cfg);

/*
 * Binds every listen address and starts serving. MHD's threads inherit the
 * caller's signal mask: block the signals the main loop waits for first. On failure returns -errno
 * and writes one sentence naming the address into errbuf.
 */
int http_server_start(const struct http_config *cfg, struct http_server **ret, char *errbuf,
		      size_t errlen);

/* How long a stop waits for requests in flight (http_server_drain()). */
#define HTTP_DRAIN_TIMEOUT_MSEC 5000u

/*
 * Stops accepting connections and waits up to timeout_msec for the requests
 * in flight to be answered (idle keep-alive connections are not waited for);
 * then call http_server_stop(). Accepts NULL.
 */
void http_server_drain(struct http_server *s, unsigned timeout_msec);

/* Stops serving and frees the server. Accepts NULL, returns NULL. */
struct http_server *http_server_stop(struct http_server *s);

/*
 * Parses a listen address into host (NULL for "all addresses") and port.
 * 0 or -EINVAL. *ret_host is malloc'd.
 */
int http_parse_listen_address(const char *addr, char **ret_host, unsigned *ret_port);
