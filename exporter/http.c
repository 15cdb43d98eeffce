/* SPDX-License-Identifier: MIT */
/*
 * The HTTP front end on libmicrohttpd.
 *
 * We bind every listen socket ourselves (so that an error names the address
 * the operator wrote, and so that ":port" means dual-stack IPv6+IPv4) and give
 * each one to its own MHD daemon with a thread per connection: a slow scrape,
 * a bcrypt check or a slow client holds up its own connection only, and
 * --web.max-requests is what bounds the concurrent collections. Exposition
 * buffers (and their gzip state) come from a small pool, so a steady scraper
 * reuses the same memory. The format (text 0.0.4 or OpenMetrics) and gzip
 * are negotiated per request (negotiate.h).
 *
 * The web config adds TLS (GnuTLS through MHD; client certificates checked
 * during the handshake), basic auth (basicauth.c), extra headers and a rate
 * limit, all in front of every endpoint, as in the exporter-toolkit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basicauth.h"
#include "config.h"
#include "gzip.h"
#include "http.h"
#include "log.h"
#include "macro.h"
#include "negotiate.h"
#include "outbuf.h"
#include "webconfig.h"

#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"
#define CONTENT_TYPE_HTML "text/html; charset=utf-8"

/*
 * Limits, so that idle or hostile clients cannot starve Prometheus: a
 * scrape needs one connection; a client that opens many, or opens one and
 * says nothing, is cut off.
 */
#define HTTP_CONNECTION_LIMIT        64u
#define HTTP_PER_IP_CONNECTION_LIMIT 16u
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

static bool is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int http_parse_listen_address(const char *addr, char **ret_host, unsigned *ret_port)
{
	const char *host, *port_str;
	size_t host_n, port_n;
	unsigned port = 0;
	char *copy = NULL;

	if (!addr || !*addr)
		return -EINVAL;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		bool colon = false;

		if (!end || end[1] != ':')
			return -EINVAL;
		host = addr + 1;
		host_n = (size_t)(end - host);
		/* IPv6 literal, optionally with a %zone. */
		for (size_t i = 0; i < host_n; i++) {
			if (host[i] == ':')
				colon = true;
			else if (!is_alnum(host[i]) && !strchr(".%-_", host[i]))
				return -EINVAL;
		}
		if (!colon)
			return -EINVAL;
		port_str = end + 2;
	} else {
		const char *colon = strrchr(addr, ':');

		if (!colon)
			return -EINVAL;
		host = addr;
		host_n = (size_t)(colon - addr);
		/* Host name or IPv4 literal; an IPv6 literal needs brackets. */
		for (size_t i = 0; i < host_n; i++)
			if (!is_alnum(host[i]) && !strchr(".-_", host[i]))
				return -EINVAL;
		port_str = colon + 1;
	}

	port_n = strlen(port_str);
	if (port_n == 0 || port_n > 5)
		return -EINVAL;
	for (size_t i = 0; i < port_n; i++) {
		if (port_str[i] < '0' || port_str[i] > '9')
			return -EINVAL;
		port = port * 10 + (unsigned)(port_str[i] - '0');
	}
	if (port > 65535)
		return -EINVAL;

	if (host_n > 0) {
		copy = strndup(host, host_n);
		if (!copy)
			return -ENOMEM;
	}
	*ret_host = copy;
	*ret_port = port;
	return 0;
}

static void format_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(buf, buflen, "(unknown)");
		return;
	}
	snprintf(buf, buflen, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

/* Opens, binds and listens; 0 with *ret_fd, or -errno. */
static int listen_socket_open(const struct sockaddr *sa, socklen_t len, bool dual_stack,
                              int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	int one = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -errno;
	if (sa->sa_family == AF_INET6) {
		int v6only = dual_stack ? 0 : 1;

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
			return -errno;
	}
	if (bind(fd, sa, len) < 0)
		return -errno;
	if (listen(fd, HTTP_LISTEN_BACKLOG) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int listeners_add(struct http_server *s, int fd)
{
	struct http_listener *l;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (s->n_listeners == s->n_allocated) {
		size_t n = s->n_allocated ? s->n_allocated * 2 : 4;
		struct http_listener *grown;

		grown = reallocarray(s->listeners, n, sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		s->listeners = grown;
		s->n_allocated = n;
	}
	l = &s->listeners[s->n_listeners++];
	*l = (struct http_listener){.server = s, .fd = fd};
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		format_sockaddr((struct sockaddr *)&ss, len, l->address, sizeof(l->address));
	else
		snprintf(l->address, sizeof(l->address), "(unknown)");
	return 0;
}

/* Writes one sentence into errbuf (if any) and returns r. */
_printf_(4, 5) static int set_error(char *errbuf, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* ":port": one dual-stack socket on ::, or 0.0.0.0 where IPv6 is unavailable. */
static int bind_any(struct http_server *s, const char *addr, unsigned port, char *errbuf,
                    size_t errlen)
{
	struct sockaddr_in6 sin6 = {
	        .sin6_family = AF_INET6,
	        .sin6_port = htons((uint16_t)port),
	        .sin6_addr = IN6ADDR_ANY_INIT,
	};
	struct sockaddr_in sin = {
	        .sin_family = AF_INET,
	        .sin_port = htons((uint16_t)port),
	        .sin_addr.s_addr = htonl(INADDR_ANY),
	};
	int fd, r;

	r = listen_socket_open((struct sockaddr *)&sin6, sizeof(sin6), true, &fd);
	if (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL) {
		log_debug("IPv6 unavailable, listening on IPv4 only", "address=%s err=\"%s\"", addr,
		          strerror(-r));
		r = listen_socket_open((struct sockaddr *)&sin, sizeof(sin), false, &fd);
	}
	if (r < 0)
		return set_error(errbuf, errlen, r, "cannot listen on \"%s\": %s", addr,
		                 strerror(-r));
	r = listeners_add(s, fd);
	if (r < 0) {
		safe_close(fd);
		return set_error(errbuf, errlen, r, "cannot listen on \"%s\": %s", addr,
		                 strerror(-r));
	}
	return 0;
}

static int gai_to_errno(int e)
{
	switch (e) {
	case EAI_SYSTEM:
		return errno > 0 ? -errno : -EIO;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_AGAIN:
		return -EAGAIN;
	default:
		return -EADDRNOTAVAIL;
	}
}

static void sockaddr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(port);
}

/* The local port of a bound socket, in host order; 0 if unknown. */
static uint16_t socket_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

/* "host:port": every address host resolves to (duplicates once). */
static int bind_host(struct http_server *s, const char *addr, const char *host, unsigned port,
                     char *errbuf, size_t errlen)
{
	struct addrinfo hints = {
	        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	        .ai_family = AF_UNSPEC,
	        .ai_socktype = SOCK_STREAM,
	};
	struct addrinfo *res = NULL;
	char port_str[8], where[ADDRESS_BUFSIZE] = "", skipped_where[ADDRESS_BUFSIZE] = "";
	size_t first = s->n_listeners;
	uint16_t bound_port = (uint16_t)port;
	int r, skipped = 0;

	snprintf(port_str, sizeof(port_str), "%u", port);
	r = getaddrinfo(host, port_str, &hints, &res);
	if (r != 0) {
		int e = gai_to_errno(r);

		return set_error(errbuf, errlen, e, "cannot resolve listen address \"%s\": %s",
		                 addr, r == EAI_SYSTEM ? strerror(-e) : gai_strerror(r));
	}

	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		struct sockaddr_storage ss = {0};
		bool dup = false, wildcard;
		int fd;

		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(ss))
			continue;
		for (struct addrinfo *prev = res; prev != ai && !dup; prev = prev->ai_next)
			dup = prev->ai_addrlen == ai->ai_addrlen &&
			      memcmp(prev->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0;
		if (dup)
			continue;

		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		/* Port 0 on several addresses: one ephemeral port for all of them. */
		sockaddr_set_port(&ss, bound_port);
		format_sockaddr((struct sockaddr *)&ss, ai->ai_addrlen, where, sizeof(where));

		/* "[::]:port" is dual-stack, as in Go; other IPv6 addresses are not. */
		wildcard = ai->ai_family == AF_INET6 &&
		           IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);
		r = listen_socket_open((struct sockaddr *)&ss, ai->ai_addrlen, wildcard, &fd);
		if (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL) {
			/* e.g. "localhost" -> ::1 on a host without IPv6: use what works. */
			skipped = r;
			memcpy(skipped_where, where, sizeof(where));
			continue;
		}
		if (r < 0)
			goto fail;
		r = listeners_add(s, fd);
		if (r < 0) {
			safe_close(fd);
			goto fail;
		}
		if (bound_port == 0)
			bound_port = socket_port(fd);
	}
	freeaddrinfo(res);

	if (s->n_listeners == first) {
		if (!skipped)
			return set_error(errbuf, errlen, -EADDRNOTAVAIL,
			                 "cannot listen on \"%s\": it resolves to no IP address",
			                 addr);
		r = skipped;
		memcpy(where, skipped_where, sizeof(where));
		goto fail_msg;
	}
	if (skipped)
		log_warn("skipping unusable listen address", "address=%s from=%s err=\"%s\"",
		         skipped_where, addr, strerror(-skipped));
	return 0;

fail:
	freeaddrinfo(res);
fail_msg:
	if (strcmp(addr, where) == 0)
		return set_error(errbuf, errlen, r, "cannot listen on \"%s\": %s", addr,
		                 strerror(-r));
	return set_error(errbuf, errlen, r, "cannot listen on \"%s\" (%s): %s", addr, where,
	                 strerror(-r));
}

/* ---- TLS client certificates ------------------------------------------------------------ */

/* Go's net.IP.String(): an IPv4-mapped IPv6 address prints as IPv4. */
static void format_san_ip(const unsigned char *ip, size_t len, char *buf, size_t buflen)
{
	static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	buf[0] = '\0';
	if (len == 4)
		inet_ntop(AF_INET, ip, buf, (socklen_t)buflen);
	else if (len == 16 && memcmp(ip, v4mapped, sizeof(v4mapped)) == 0)
		inet_ntop(AF_INET, ip + 12, buf, (socklen_t)buflen);
	else if (len == 16)
		inet_ntop(AF_INET6, ip, buf, (socklen_t)buflen);
}

/* client_allowed_sans: one of the leaf's DNS, e-mail, IP or URI SANs must be listed. */
static bool cert_has_allowed_san(const gnutls_datum_t *der, const struct webconfig *w)
{
	gnutls_x509_crt_t crt;
	bool found = false;

	if (gnutls_x509_crt_init(&crt) < 0)
		return false;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(crt);
		return false;
	}
	for (unsigned seq = 0; !found; seq++) {
		unsigned char buf[1024];
		char text[INET6_ADDRSTRLEN + 1];
		const char *value = NULL;
		size_t size = sizeof(buf) - 1;
		unsigned critical;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf, &size, &critical);

		if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
			continue; /* longer than any name we could have listed */
		if (type < 0)
			break;
		buf[size] = '\0';
		switch (type) {
		case GNUTLS_SAN_DNSNAME:
		case GNUTLS_SAN_RFC822NAME:
		case GNUTLS_SAN_URI:
			if (strlen((char *)buf) == size)
				value = (const char *)buf;
			break;
		case GNUTLS_SAN_IPADDRESS:
			format_san_ip(buf, size, text, sizeof(text));
			value = text;
			break;
		default:
			break;
		}
		for (size_t i = 0; value && *value && i < w->n_client_allowed_sans && !found; i++)
			found = strcmp(value, w->client_allowed_sans[i]) == 0;
	}
	gnutls_x509_crt_deinit(crt);
	return found;
}

/*
 * Fails the handshake the way Go's crypto/tls does, with an alert the client
 * can report ("certificate required", "bad certificate"); MHD would just
 * close the connection.
 */
static int tls_reject(gnutls_session_t session, gnutls_alert_description_t alert)
{
	if (alert == GNUTLS_A_CERTIFICATE_REQUIRED &&
	    gnutls_protocol_get_version(session) != GNUTLS_TLS1_3)
		alert = GNUTLS_A_HANDSHAKE_FAILURE; /* TLS 1.2 has no "certificate required" */
	(void)gnutls_alert_send(session, GNUTLS_AL_FATAL, alert);
	return -1;
}

/*
 * Whether the session's client certificate (if any) satisfies the web
 * config: 0, or the TLS alert to refuse the client with.
 */
static int tls_client_check(gnutls_session_t session, const struct webconfig *w,
                            const char *address)
{
	const gnutls_datum_t *certs;
	unsigned n = 0, status = 0;

	certs = gnutls_certificate_get_peers(session, &n);
	if (!certs || n == 0) {
		if (w->client_auth == WEBCONFIG_CLIENT_AUTH_REQUIRE_ANY ||
		    w->client_auth == WEBCONFIG_CLIENT_AUTH_REQUIRE_VERIFY ||
		    w->client_allowed_sans) {
			log_debug("TLS client rejected: no client certificate", "address=%s",
			          address);
			return GNUTLS_A_CERTIFICATE_REQUIRED;
		}
		return 0;
	}

	if (w->client_auth == WEBCONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN ||
	    w->client_auth == WEBCONFIG_CLIENT_AUTH_REQUIRE_VERIFY) {
		/* Against client_ca, for client authentication (extended key usage), as Go does. */
		gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
		                                 .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
		int r = gnutls_certificate_verify_peers(session, &purpose, 1, &status);

		if (r < 0 || status != 0) {
			gnutls_datum_t why = {NULL, 0};

			if (r >= 0)
				gnutls_certificate_verification_status_print(
				        status, GNUTLS_CRT_X509, &why, 0);
			log_debug("TLS client rejected: certificate not verified",
			          "address=%s err=\"%s\"", address,
			          r < 0      ? gnutls_strerror(r)
			          : why.data ? (char *)why.data
			                     : "");
			gnutls_free(why.data);
			return GNUTLS_A_BAD_CERTIFICATE;
		}
	}
	if (w->client_allowed_sans && !cert_has_allowed_san(&certs[0], w)) {
		log_debug("TLS client rejected: no allowed SAN in its certificate", "address=%s",
		          address);
		return GNUTLS_A_BAD_CERTIFICATE;
	}
	return 0;
}

/*
 * GnuTLS calls this during the handshake, once the client's Certificate
 * (possibly empty) has arrived; non-zero aborts the handshake.
 */
static int tls_verify_client(gnutls_session_t session)
{
	struct MHD_Connection *c = gnutls_session_get_ptr(session);
	const union MHD_ConnectionInfo *ci;
	struct http_connection *hc;
	int alert;

	ci = c ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
	hc = ci ? ci->socket_context : NULL;
	if (!hc)
		return tls_reject(session, GNUTLS_A_INTERNAL_ERROR);
	alert = tls_client_check(session, hc->listener->server->web, hc->listener->address);
	if (alert)
		return tls_reject(session, (gnutls_alert_description_t)alert);
	hc->client_verified = true;
	return 0;
}

/*
 * Per connection, before its TLS handshake: asks for (or requires) a client
 * certificate and installs the check. MHD itself only ever asks ("REQUEST")
 * when given a client CA, and never verifies.
 */
static void http_notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                                   enum MHD_ConnectionNotificationCode code)
{
	struct http_listener *l = cls;
	const struct webconfig *w = l->server->web;
	const union MHD_ConnectionInfo *ci;
	struct http_connection *hc;
	gnutls_session_t session;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		free(*socket_context);
		*socket_context = NULL;
		return;
	}
	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	/* Without it, tls_client_ok() and tls_verify_client() fail closed. */
	hc = calloc(1, sizeof(*hc));
	if (!hc)
		return;
	hc->listener = l;
	*socket_context = hc;

	if (!w || !w->tls || w->client_auth == WEBCONFIG_CLIENT_AUTH_NONE)
		return;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return;
	session = ci->tls_session;
	/* REQUEST even when required: tls_verify_client() refuses, with the right alert. */
	gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
	gnutls_session_set_verify_function(session, tls_verify_client);
}

/*
 * Whether the connection's client certificate satisfies client_auth_type.
 * The handshake already enforced it (tls_verify_client()); this is the
 * fail-closed check that nothing let a connection through unverified.
 */
static bool tls_client_ok(const struct webconfig *w, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;
	struct http_connection *hc;
	gnutls_session_t session;
	unsigned n = 0;

	if (w->client_auth == WEBCONFIG_CLIENT_AUTH_NONE)
		return true;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return false;
	session = ci->tls_session;
	gnutls_certificate_get_peers(session, &n);
	if (n == 0)
		return (w->client_auth == WEBCONFIG_CLIENT_AUTH_REQUEST ||
		        w->client_auth == WEBCONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN) &&
		       !w->client_allowed_sans;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	hc = ci ? ci->socket_context : NULL;
	if (!hc)
		return false;
	/* A resumed session skips the Certificate message, and so the callback: check here. */
	if (!hc->client_verified && gnutls_session_is_resumed(session) &&
	    tls_client_check(session, w, hc->listener->address) == 0)
		hc->client_verified = true;
	return hc->client_verified;
}

/* ---- requests ----------------------------------------------------------------------- */

/* A response with the headers every answer carries, or NULL. */
static struct MHD_Response *response_new(struct http_server *s, unsigned status,
                                         const char *content_type, const void *body, size_t len,
                                         enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	bool ok;

	/* MHD reads from a persistent buffer but never writes to it. */
	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, mode);
	if (!resp)
		return NULL;
	ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES;
	if (ok && status == MHD_HTTP_METHOD_NOT_ALLOWED)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") == MHD_YES;
	if (ok && status == MHD_HTTP_UNAUTHORIZED)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                             "Basic realm=\"" AUTH_REALM "\"") == MHD_YES;
	/* On every response, as the toolkit sets them before authentication. */
	for (size_t i = 0; ok && s->web && i < s->web->n_headers; i++)
		ok = MHD_add_response_header(resp, s->web->headers[i].name,
		                             s->web->headers[i].value) == MHD_YES;
	if (!ok) {
		MHD_destroy_response(resp);
		return NULL;
	}
	return resp;
}

/* Queues resp (NULL: fails the connection) and drops our reference. */
static enum MHD_Result response_queue(struct MHD_Connection *c, unsigned status,
                                      struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result reply(struct http_server *s, struct MHD_Connection *c, unsigned status,
                             const char *content_type, const void *body, size_t len,
                             enum MHD_ResponseMemoryMode mode)
{
	return response_queue(c, status, response_new(s, status, content_type, body, len, mode));
}

static enum MHD_Result reply_text(struct http_server *s, struct MHD_Connection *c, unsigned status,
                                  const char *text)
{
	return reply(s, c, status, CONTENT_TYPE_TEXT, text, strlen(text), MHD_RESPMEM_PERSISTENT);
}

static struct scrape_buffers *scrape_buffers_free(struct scrape_buffers *b)
{
	if (!b)
		return NULL;
	outbuf_release(&b->text);
	outbuf_release(&b->gzip);
	gzip_encoder_free(b->encoder);
	free(b);
	return NULL;
}

static struct scrape_buffers *exposition_take(struct http_server *s)
{
	struct scrape_buffers *b = NULL;

	pthread_mutex_lock(&s->pool_lock);
	if (s->n_pool > 0)
		b = s->pool[--s->n_pool];
	pthread_mutex_unlock(&s->pool_lock);
	return b ? b : calloc(1, sizeof(*b));
}

/* Last in, first out: a lone scraper gets the same buffer, at its grown size, every time. */
static void exposition_give(struct http_server *s, struct scrape_buffers *b)
{
	pthread_mutex_lock(&s->pool_lock);
	if (s->n_pool < EXPOSITION_POOL_MAX) {
		s->pool[s->n_pool++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&s->pool_lock);
	scrape_buffers_free(b);
}

/* Compresses b->text into b->gzip. 0 or -errno. */
static int exposition_gzip(struct scrape_buffers *b)
{
	int r;

	if (!b->encoder) {
		r = gzip_encoder_new(&b->encoder);
		if (r < 0)
			return r;
	}
	return gzip_encode(b->encoder, b->text.data, b->text.len, &b->gzip);
}

/* 200 with the exposition; MUST_COPY, as the buffer goes back to the pool before MHD sends. */
static enum MHD_Result reply_exposition(struct http_server *s, struct MHD_Connection *c,
                                        enum exposition_format fmt, const struct outbuf *body,
                                        bool gzip)
{
	struct MHD_Response *resp;

	resp = response_new(s, MHD_HTTP_OK, exposition_content_type(fmt),
	                    body->len ? body->data : "", body->len, MHD_RESPMEM_MUST_COPY);
	/* The body depends on both request headers: a cache must key on both. */
	if (resp && (MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY,
	                                     "Accept, Accept-Encoding") != MHD_YES ||
	             (gzip && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING,
	                                              "gzip") != MHD_YES))) {
		MHD_destroy_response(resp);
		resp = NULL;
	}
	return response_queue(c, MHD_HTTP_OK, resp);
}

static enum MHD_Result reply_metrics(struct http_listener *l, struct MHD_Connection *c)
{
	struct http_server *s = l->server;
	struct scrape_buffers *b;
	enum exposition_format fmt;
	enum MHD_Result ret;
	char msg[256];
	bool gzip;
	int r;

	/* promhttp's MaxRequestsInFlight: refuse at once rather than queue. */
	if (atomic_fetch_add(&s->in_flight, 1) >= s->max_requests && s->max_requests > 0) {
		atomic_fetch_sub(&s->in_flight, 1);
		snprintf(msg, sizeof(msg),
		         "Limit of concurrent requests reached (%u), try again later.\n",
		         s->max_requests);
		log_debug("scrape refused: too many in flight", "address=%s max_requests=%u",
		          l->address, s->max_requests);
		return reply(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, CONTENT_TYPE_TEXT, msg,
		             strlen(msg), MHD_RESPMEM_MUST_COPY);
	}

	b = exposition_take(s);
	if (!b) {
		atomic_fetch_sub(&s->in_flight, 1);
		return reply_text(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                  "error collecting metrics: out of memory\n");
	}
	fmt = negotiate_format(
	        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
	gzip = negotiate_gzip(
	        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
	outbuf_reset(&b->text);
	r = s->collect(s->userdata, &b->text, fmt);
	if (r >= 0 && b->text.failed)
		r = -ENOMEM;
	/* HEAD too: its Content-Length is the one GET would send. */
	if (r >= 0 && gzip)
		r = exposition_gzip(b);
	if (r < 0) {
		log_warn("scrape failed", "address=%s err=\"%s\"", l->address, strerror(-r));
		snprintf(msg, sizeof(msg), "error collecting metrics: %s\n", strerror(-r));
		ret = reply(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, CONTENT_TYPE_TEXT, msg,
		            strlen(msg), MHD_RESPMEM_MUST_COPY);
	} else {
		/*
		 * MUST_COPY: MHD sends the body after we return, while the buffer
		 * goes back to the pool for the next scrape. One memcpy per scrape
		 * costs far less than collecting.
		 */
		ret = reply_exposition(s, c, fmt, gzip ? &b->gzip : &b->text, gzip);
	}
	exposition_give(s, b);
	atomic_fetch_sub(&s->in_flight, 1);
	return ret;
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* rate.Limiter.Allow(): take a token if there is one. */
static bool rate_limiter_allow(struct rate_limiter *rl)
{
	uint64_t now;
	bool ok;

	if (rl->interval_usec == 0)
		return true;
	pthread_mutex_lock(&rl->lock);
	now = now_usec();
	rl->tokens += (double)(now - rl->last_usec) / (double)rl->interval_usec;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
	rl->last_usec = now;
	ok = rl->tokens >= 1.0;
	if (ok)
		rl->tokens -= 1.0;
	pthread_mutex_unlock(&rl->lock);
	return ok;
}

static enum MHD_Result http_handle_request(void *cls, struct MHD_Connection *c, const char *url,
                                           const char *method, const char *version,
                                           const char *upload_data, size_t *upload_data_size,
                                           void **con_cls)
{
	struct http_listener *l = cls;
	struct http_server *s = l->server;

	/* Counted until http_request_completed(), so that a stop can wait for it. */
	if (!*con_cls) {
		*con_cls = s;
		atomic_fetch_add(&s->active, 1);
	}

	/* Closing the connection is all a client without a valid certificate gets. */
	if (s->web && s->web->tls && !tls_client_ok(s->web, c))
		return MHD_NO;
	if (!rate_limiter_allow(&s->limiter))
		return reply_text(s, c, MHD_HTTP_TOO_MANY_REQUESTS, "Too Many Requests\n");
	/* Every endpoint, as the toolkit wraps the whole handler. */
	if (s->auth &&
	    !basicauth_check(s->auth, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                                          MHD_HTTP_HEADER_AUTHORIZATION)))
		return reply_text(s, c, MHD_HTTP_UNAUTHORIZED, "Unauthorized\n");

	/* GET and HEAD have no body we need, so we answer on the first call. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed\n");

	if (strcmp(url, s->telemetry_path) == 0)
		return reply_metrics(l, c);
	if (strcmp(url, "/") == 0)
		return reply(s, c, MHD_HTTP_OK, CONTENT_TYPE_HTML, s->landing_page,
		             s->landing_page_len, MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/-/healthy") == 0)
		return reply_text(s, c, MHD_HTTP_OK, "Healthy\n");
	if (strcmp(url, "/-/ready") == 0) {
		if (!s->ready || s->ready(s->userdata))
			return reply_text(s, c, MHD_HTTP_OK, "Ready\n");
		return reply_text(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, "Not ready\n");
	}
	return reply_text(s, c, MHD_HTTP_NOT_FOUND, "Not Found\n");
}

static void http_request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                                   enum MHD_RequestTerminationCode toe)
{
	struct http_listener *l = cls;

	if (*con_cls) {
		atomic_fetch_sub(&l->server->active, 1);
		*con_cls = NULL;
	}
}

/* MHD's messages: mostly per-connection noise a client can cause at will, so debug level. */
_printf_(2, 0) static void http_log_mhd(void *cls, const char *fmt, va_list ap)
{
	struct http_listener *l = cls;
	char text[512];
	size_t n;

	vsnprintf(text, sizeof(text), fmt, ap);
	n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = '\0';
	log_msg(atomic_load(&l->starting) ? LOG_LEVEL_ERROR : LOG_LEVEL_DEBUG, text,
	        "component=libmicrohttpd address=%s", l->address);
}

/*
 * Closes fd unless MHD already did. A failing MHD_start_daemon() closes the
 * listen socket on some paths and not on others; comparing the inode tells
 * whether the number still names our socket (a reused number would name a
 * different file), so we neither leak it nor close someone else's.
 */
static void close_if_still_ours(int fd, const struct stat *ours)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && st.st_dev == ours->st_dev && st.st_ino == ours->st_ino)
		safe_close(fd);
}

static int listener_start(struct http_listener *l, char *errbuf, size_t errlen)
{
	const struct webconfig *w = l->server->web;
	/* ITC: MHD_quiesce_daemon() (http_server_drain()) needs it with internal threads. */
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls[5];
	size_t n_tls = 0;
	struct stat st;
	int saved;

	/* MHD keeps these pointers; the web config outlives the daemon. */
	if (w && w->tls) {
		flags |= MHD_USE_TLS;
		tls[n_tls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, w->cert_pem};
		tls[n_tls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, w->key_pem};
		tls[n_tls++] =
		        (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, w->priorities};
		if (w->client_ca_pem)
			tls[n_tls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0,
			                                       w->client_ca_pem};
	}
	tls[n_tls] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

	if (fstat(l->fd, &st) < 0)
		return set_error(errbuf, errlen, -errno, "cannot serve on %s: %s", l->address,
		                 strerror(errno));

	atomic_store(&l->starting, true);
	errno = 0;
	l->daemon =
	        MHD_start_daemon(flags, 0, NULL, NULL, http_handle_request, l,
	                         /* first, so that MHD never prints on its own */
	                         MHD_OPTION_EXTERNAL_LOGGER, http_log_mhd, l,
	                         MHD_OPTION_LISTEN_SOCKET, l->fd, MHD_OPTION_CONNECTION_LIMIT,
	                         HTTP_CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	                         HTTP_PER_IP_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	                         HTTP_CONNECTION_TIMEOUT_SEC, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	                         (size_t)HTTP_CONNECTION_MEMORY_LIMIT, MHD_OPTION_NOTIFY_CONNECTION,
	                         http_notify_connection, l, MHD_OPTION_NOTIFY_COMPLETED,
	                         http_request_completed, l, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
	saved = errno;
	atomic_store(&l->starting, false);
	if (!l->daemon) {
		close_if_still_ours(l->fd, &st);
		l->fd = -1;
		saved = saved > 0 ? saved : EIO;
		return set_error(errbuf, errlen, -saved, "cannot start the HTTP server on %s: %s",
		                 l->address, strerror(saved));
	}
	l->fd = -1; /* MHD_stop_daemon() closes it */
	log_info("listening", "address=%s", l->address);
	return 0;
}

static void html_escape_put(struct outbuf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			outbuf_puts(b, "&amp;");
			break;
		case '<':
			outbuf_puts(b, "&lt;");
			break;
		case '>':
			outbuf_puts(b, "&gt;");
			break;
		case '"':
			outbuf_puts(b, "&quot;");
			break;
		case '\'':
			outbuf_puts(b, "&#39;");
			break;
		default:
			outbuf_putc(b, *s);
		}
	}
}

/* Links are relative, so that the page also works behind a reverse proxy's path prefix. */
static int landing_page_build(struct http_server *s)
{
	struct outbuf b = {0};

	outbuf_puts(&b, "<!DOCTYPE html>\n"
	                "<html lang=\"en\">\n"
	                "<head><meta charset=\"utf-8\"><title>kvmstats_exporter</title></head>\n"
	                "<body>\n"
	                "<h1>kvmstats_exporter</h1>\n"
	                "<p>Prometheus exporter for KVM binary statistics.</p>\n"
	                "<ul>\n"
	                "<li><a href=\".");
	html_escape_put(&b, s->telemetry_path);
	outbuf_puts(&b, "\">Metrics</a></li>\n"
	                "<li><a href=\"./-/healthy\">Health</a></li>\n"
	                "<li><a href=\"./-/ready\">Readiness</a></li>\n"
	                "</ul>\n"
	                "<p>Version " PROJECT_VERSION " (revision " PROJECT_REVISION ")</p>\n"
	                "</body>\n"
	                "</html>\n");
	if (b.failed) {
		outbuf_release(&b);
		return -ENOMEM;
	}
	s->landing_page = b.data;
	s->landing_page_len = b.len;
	return 0;
}

/* What the web config turned on, once at start. */
static void web_config_log(const struct webconfig *w)
{
	if (!w)
		return;
	if (w->tls)
		log_info("TLS is enabled", "client_auth_type=%s min_version=%s max_version=%s",
		         webconfig_client_auth_to_string(w->client_auth),
		         webconfig_tls_version_to_string(w->min_version),
		         webconfig_tls_version_to_string(w->max_version));
	else
		log_info("TLS is disabled", "http2=false");
	if (w->n_users > 0)
		log_info("basic authentication is enabled", "users=%zu", w->n_users);
	if (w->n_users > 0 && !w->tls)
		log_warn("basic authentication without TLS sends passwords in clear text",
		         "users=%zu", w->n_users);
	if (w->http2_requested)
		log_info("HTTP/2 is not supported; serving HTTP/1.1",
		         "key=http_server_config.http2");
	if (w->rate_limit_interval_usec > 0)
		log_info("rate limit is enabled", "burst=%u interval_usec=%" PRIu64,
		         w->rate_limit_burst, w->rate_limit_interval_usec);
}

int http_config_load_web_config(struct http_config *cfg, const char *path, char *err, size_t errlen)
{
	struct webconfig *w;
	int r;

	r = webconfig_load(path, &w, err, errlen);
	if (r < 0)
		return r;
	webconfig_free(cfg->web);
	cfg->web = w;
	return 0;
}

void http_config_release(struct http_config *cfg)
{
	if (cfg)
		cfg->web = webconfig_free(cfg->web);
}

static void close_fds(const int *fds, size_t from, size_t n)
{
	for (size_t i = from; i < n; i++)
		safe_close(fds[i]);
}

/* Sockets systemd passed (--web.systemd-socket): already bound and listening. */
static int adopt_listen_fds(struct http_server *s, const int *fds, size_t n, char *errbuf,
                            size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int flags = fcntl(fds[i], F_GETFL), r;

		/* MHD accepts after poll(); a blocking accept could hang its thread. */
		if (flags < 0 || fcntl(fds[i], F_SETFL, flags | O_NONBLOCK) < 0) {
			r = -errno;
			close_fds(fds, i, n);
			return set_error(errbuf, errlen, r, "cannot use socket %d passed by systemd: %s",
			                 fds[i], strerror(-r));
		}
		r = listeners_add(s, fds[i]);
		if (r < 0) {
			close_fds(fds, i, n);
			return set_error(errbuf, errlen, r, "out of memory");
		}
	}
	return 0;
}

int http_server_start(const struct http_config *cfg, struct http_server **ret, char *errbuf,
                      size_t errlen)
{
	struct http_server *s;
	int r;

	if (!cfg || !cfg->collect || !cfg->telemetry_path || cfg->telemetry_path[0] != '/' ||
	    (cfg->n_listen == 0 && cfg->n_listen_fds == 0)) {
		if (cfg)
			close_fds(cfg->listen_fds, 0, cfg->n_listen_fds);
		return set_error(errbuf, errlen, -EINVAL, "invalid HTTP server configuration");
	}

	s = calloc(1, sizeof(*s));
	if (!s) {
		close_fds(cfg->listen_fds, 0, cfg->n_listen_fds);
		return set_error(errbuf, errlen, -ENOMEM, "out of memory");
	}
	s->collect = cfg->collect;
	s->ready = cfg->ready;
	s->userdata = cfg->userdata;
	s->max_requests = cfg->max_requests;
	s->web = cfg->web;
	pthread_mutex_init(&s->pool_lock, NULL);
	pthread_mutex_init(&s->limiter.lock, NULL);
	if (s->web) {
		s->limiter.interval_usec = s->web->rate_limit_interval_usec;
		s->limiter.burst = s->web->rate_limit_burst;
		s->limiter.tokens = s->web->rate_limit_burst;
		s->limiter.last_usec = now_usec();
	}
	s->telemetry_path = strdup(cfg->telemetry_path);
	if (!s->telemetry_path || landing_page_build(s) < 0 ||
	    (s->web && s->web->n_users > 0 && basicauth_new(s->web, &s->auth) < 0)) {
		close_fds(cfg->listen_fds, 0, cfg->n_listen_fds);
		r = set_error(errbuf, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	web_config_log(s->web);

	if (cfg->n_listen_fds > 0) {
		r = adopt_listen_fds(s, cfg->listen_fds, cfg->n_listen_fds, errbuf, errlen);
		if (r < 0)
			goto fail;
	}
	/* Bind everything first: a bad address fails before anything serves. */
	for (size_t i = 0; cfg->n_listen_fds == 0 && i < cfg->n_listen; i++) {
		_cleanup_free_ char *host = NULL;
		unsigned port;

		r = http_parse_listen_address(cfg->listen[i], &host, &port);
		if (r < 0) {
			set_error(errbuf, errlen, r,
			          "invalid listen address \"%s\": expected host:port, :port or "
			          "[ipv6]:port",
			          cfg->listen[i]);
			goto fail;
		}
		if (host)
			r = bind_host(s, cfg->listen[i], host, port, errbuf, errlen);
		else
			r = bind_any(s, cfg->listen[i], port, errbuf, errlen);
		if (r < 0)
			goto fail;
	}

	/* The listener array no longer moves: its elements can be MHD closures. */
	for (size_t i = 0; i < s->n_listeners; i++) {
		r = listener_start(&s->listeners[i], errbuf, errlen);
		if (r < 0)
			goto fail;
	}

	*ret = s;
	return 0;

fail:
	http_server_stop(s);
	return r;
}

void http_server_drain(struct http_server *s, unsigned timeout_msec)
{
	const struct timespec tick = {.tv_nsec = 10 * 1000 * 1000};

	if (!s)
		return;
	for (size_t i = 0; i < s->n_listeners; i++) {
		struct http_listener *l = &s->listeners[i];
		MHD_socket fd;

		if (!l->daemon)
			continue;
		/* The listen socket is ours again; closed after MHD_stop_daemon(). */
		fd = MHD_quiesce_daemon(l->daemon);
		if (fd != MHD_INVALID_SOCKET)
			l->fd = fd;
	}
	for (unsigned waited = 0; atomic_load(&s->active) > 0 && waited < timeout_msec;
	     waited += 10)
		nanosleep(&tick, NULL);
	if (atomic_load(&s->active) > 0)
		log_warn("stopping with requests still in flight", "requests=%u",
		         atomic_load(&s->active));
}

struct http_server *http_server_stop(struct http_server *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n_listeners; i++) {
		struct http_listener *l = &s->listeners[i];

		/* Joins the polling thread and closes every connection and the listen socket. */
		if (l->daemon)
			MHD_stop_daemon(l->daemon);
		safe_close(l->fd);
	}
	for (size_t i = 0; i < s->n_pool; i++)
		scrape_buffers_free(s->pool[i]);
	pthread_mutex_destroy(&s->pool_lock);
	pthread_mutex_destroy(&s->limiter.lock);
	basicauth_free(s->auth);
	free(s->listeners);
	free(s->landing_page);
	free(s->telemetry_path);
	free(s);
	return NULL;
}
