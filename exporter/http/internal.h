/* SPDX-License-Identifier: MIT */
/*
 * Internals of the HTTP front end shared by its files: the server, its
 * listeners and per-connection state. Files: http.c (routing, start and
 * stop), listen.c (addresses and sockets), tls_client.c (client
 * certificate checks), response.c (answers and their common headers),
 * scrape.c (the /metrics answer: buffers, negotiation, gzip).
 */
#pragma once

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expo/exposition.h"
#include "expo/outbuf.h"
#include "http/gzip.h"
#include "macro.h"
#include "web/basicauth.h"
#include "web/webconfig.h"

#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"
#define CONTENT_TYPE_HTML "text/html; charset=utf-8"

/*
 * Limits, so that idle or hostile clients cannot starve Prometheus: a
 * scrape needs one connection (kept alive); a client that opens many, or
 * opens one and says nothing, is cut off. One address may hold a quarter of
 * the connections, enough for a load generator's 50 at once, and never all
 * of them: a scraper from another address always finds room.
 */
#define HTTP_CONNECTION_LIMIT        256u
#define HTTP_PER_IP_CONNECTION_LIMIT 64u
#define HTTP_CONNECTION_TIMEOUT_SEC  30u
#define HTTP_LISTEN_BACKLOG          64
/*
 * Per connection, for the request line, the headers and the reply's headers:
 * a request that does not fit (a huge URL or header) is refused with a 4xx
 * and closed. Prometheus sends a few hundred bytes.
 */
#define HTTP_CONNECTION_MEMORY_LIMIT (32u * 1024u)
/* Exposition buffers kept for reuse; more concurrent scrapes allocate and free their own. */
#define EXPOSITION_POOL_MAX 4

#define AUTH_REALM "kvmstats_exporter"

/* "[" + host + "%" + zone + "]:" + port */
#define ADDRESS_BUFSIZE (NI_MAXHOST + 16)

struct http_listener {
	struct http_server *server;
	struct MHD_Daemon *daemon;
	int fd; /* ours until handed to MHD, then -1 */
	/* While MHD_start_daemon() runs, MHD's messages explain a failure: log them louder. */
	atomic_bool starting;
	char address[ADDRESS_BUFSIZE]; /* as bound, for logs */
};

/* One per connection (MHD's socket context), from MHD_CONNECTION_NOTIFY_STARTED to _CLOSED. */
struct http_connection {
	struct http_listener *listener;
	/* The TLS handshake's check of the client certificate passed (tls_verify_client()). */
	bool client_verified;
};

/* What one scrape writes into: the exposition, and its gzip when the client takes that. */
struct scrape_buffers {
	struct http_server *server; /* whose pool it goes back to */
	struct outbuf text;
	struct outbuf gzip;
	struct gzip_encoder *encoder; /* made at the first gzip scrape */
};

/* golang.org/x/time/rate semantics: burst tokens, one more every interval. */
struct rate_limiter {
	pthread_mutex_t lock;
	uint64_t interval_usec; /* 0: off */
	unsigned burst;
	double tokens;
	uint64_t last_usec;
};

struct http_server {
	char *telemetry_path;
	char *landing_page;
	size_t landing_page_len;
	int (*collect)(void *userdata, struct outbuf *out, enum exposition_format fmt);
	bool (*ready)(void *userdata);
	void *userdata;
	const struct webconfig *web; /* NULL: plain HTTP, no auth */
	struct basicauth *auth;      /* NULL: no basic_auth_users */
	struct rate_limiter limiter;
	unsigned max_requests;
	atomic_uint in_flight; /* requests to telemetry_path being answered */
	/* Every request from the handler's first call to MHD's completion notice. */
	atomic_uint active;
	pthread_mutex_t pool_lock;
	struct scrape_buffers *pool[EXPOSITION_POOL_MAX];
	size_t n_pool;
	struct http_listener *listeners;
	size_t n_listeners;
	size_t n_allocated;
};

/* Writes one sentence into errbuf (if any) and returns r. */
_printf_(4, 5) int http_set_error(char *errbuf, size_t errlen, int r, const char *fmt, ...);

/* listen.c */
/* ":port": one dual-stack socket on ::, or 0.0.0.0 where IPv6 is unavailable. */
int http_bind_any(struct http_server *s, const char *addr, unsigned port, char *errbuf,
		  size_t errlen);
/* "host:port": every address host resolves to (duplicates once). */
int http_bind_host(struct http_server *s, const char *addr, const char *host, unsigned port,
		   char *errbuf, size_t errlen);
/* Sockets systemd passed (--web.systemd-socket): already bound and listening; takes them all. */
int http_adopt_listen_fds(struct http_server *s, const int *fds, size_t n, char *errbuf,
			  size_t errlen);
/* Closes fds[from..n). */
void http_close_fds(const int *fds, size_t from, size_t n);

/* tls_client.c */
/* MHD's connection notice: sets up the client-certificate check of a TLS connection. */
void http_notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			    enum MHD_ConnectionNotificationCode code);
/* Whether the connection's client certificate satisfies client_auth_type (fail-closed). */
bool http_tls_client_ok(const struct webconfig *w, struct MHD_Connection *c);

/* response.c */
/* Adds the headers every answer carries; false if MHD refused one. */
bool http_response_headers(struct http_server *s, struct MHD_Response *resp, unsigned status,
			   const char *content_type);
/* A response with the headers every answer carries, or NULL. */
struct MHD_Response *http_response_new(struct http_server *s, unsigned status,
				       const char *content_type, const void *body, size_t len,
				       enum MHD_ResponseMemoryMode mode);
/* Queues resp (NULL: fails the connection) and drops our reference. */
enum MHD_Result http_response_queue(struct MHD_Connection *c, unsigned status,
				    struct MHD_Response *resp);
/* Queues a response with that body. */
enum MHD_Result http_reply(struct http_server *s, struct MHD_Connection *c, unsigned status,
			   const char *content_type, const void *body, size_t len,
			   enum MHD_ResponseMemoryMode mode);
/* Queues a plain-text response of a constant string. */
enum MHD_Result http_reply_text(struct http_server *s, struct MHD_Connection *c, unsigned status,
				const char *text);

/* scrape.c */
/* Answers telemetry_path: collects in the negotiated format, gzips if asked. */
enum MHD_Result http_reply_metrics(struct http_listener *l, struct MHD_Connection *c);
/* Frees a pooled set of scrape buffers. Accepts NULL, returns NULL. */
struct scrape_buffers *http_scrape_buffers_free(struct scrape_buffers *b);
