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
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <sys/stat.h>

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

/* Longest certificate chain served. */
#define WEB_GEN_CHAIN_MAX 16

/*
 * One loaded web config and what is made from it (basic auth, the parsed
 * certificate chain and key). Reference-counted: the server holds the
 * current one, a connection the one its TLS handshake used, a request the
 * one it was checked against; a reload swaps the server's and the old one
 * goes with its last user.
 */
struct web_gen {
	atomic_uint refs;
	struct webconfig *web;
	bool owns_web;          /* the first one is the caller's (http_config.web) */
	struct basicauth *auth; /* NULL: no basic_auth_users */
	gnutls_pcert_st pcerts[WEB_GEN_CHAIN_MAX];
	unsigned n_pcerts;
	gnutls_privkey_t key; /* NULL without TLS */
};

/* What identifies a file's version, for the change check. */
struct web_stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	bool missing;
};

/* One per connection (MHD's socket context), from MHD_CONNECTION_NOTIFY_STARTED to _CLOSED. */
struct http_connection {
	struct http_listener *listener;
	struct web_gen *tls_gen; /* the config the TLS handshake uses (a reference) */
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
	/* 0: off. Atomic: read without the lock on every request, changed by a web config reload.
	 */
	_Atomic uint64_t interval_usec;
	unsigned burst;
	double tokens;
	uint64_t last_usec;
};

#define HTTP_COUNTED_CODES 4

struct http_server {
	char *telemetry_path;
	char *landing_page;
	size_t landing_page_len;
	int (*collect)(void *userdata, struct outbuf *out, enum exposition_format fmt,
		       uint32_t collectors);
	const char *const *collectors;
	size_t n_collectors;
	uint32_t collectors_enabled;
	bool (*ready)(void *userdata);
	void *userdata;
	/* The web config: NULL without --web.config.file; replaced when the files change. */
	pthread_mutex_t web_lock;
	struct web_gen *web_gen;
	char *web_path;
	struct web_stamp web_stamps[4]; /* the file itself, then its tls_files */
	bool web_tls;            /* TLS was on at start: turning it on or off needs a restart */
	atomic_bool web_last_ok; /* the last load succeeded */
	atomic_uint_fast64_t web_last_ok_time; /* its time, seconds since the epoch */
	struct rate_limiter limiter;
	unsigned max_requests;
	atomic_uint in_flight; /* requests to telemetry_path being answered */
	/* Answers to telemetry_path by status (200, 400, 500, 503): promhttp's counter. */
	atomic_uint_fast64_t requests_by_code[HTTP_COUNTED_CODES];
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

/* webstate.c */
/* The server's web config from web (not taken; NULL: none), re-read from path when it changes. */
int http_web_init(struct http_server *s, struct webconfig *web, const char *path, char *err,
		  size_t errlen);
/* Drops the server's generation (after the daemons stopped). */
void http_web_release(struct http_server *s);
/* The current generation, after loading the files if they changed; a reference, or NULL. */
struct web_gen *http_web_acquire(struct http_server *s);
/* The current generation without looking at the files; a reference, or NULL. */
struct web_gen *http_web_current(struct http_server *s);
/* Takes a reference (NULL stays NULL). */
struct web_gen *web_gen_ref(struct web_gen *g);
/* Drops one; the last frees the generation. Accepts NULL. */
void web_gen_unref(struct web_gen *g);
/* tls_client.c: MHD's certificate callback, serving the connection's generation. */
int http_tls_certificate(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
			 const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
			 gnutls_pcert_st **pcert, unsigned int *pcert_length,
			 gnutls_privkey_t *privkey);
