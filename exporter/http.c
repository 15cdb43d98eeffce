/* SPDX-License-Identifier: MIT */
/*
 * The HTTP front end on libmicrohttpd.
 *
 * We bind every listen socket ourselves (so that an error names the address
 * the operator wrote, and so that ":port" means dual-stack IPv6+IPv4) and give
 * each one to its own MHD daemon with one internal polling thread. A daemon
 * without a thread pool and without thread-per-connection calls the access
 * handler from that one thread only, so each daemon's exposition buffer is
 * used by one thread at a time and needs no lock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "macro.h"
#include "outbuf.h"

#define CONTENT_TYPE_EXPOSITION "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT       "text/plain; charset=utf-8"
#define CONTENT_TYPE_HTML       "text/html; charset=utf-8"

/*
 * Limits, so that idle or hostile clients cannot starve Prometheus: a
 * scrape needs one connection; a client that opens many, or opens one and
 * says nothing, is cut off.
 */
#define HTTP_CONNECTION_LIMIT        64u
#define HTTP_PER_IP_CONNECTION_LIMIT 16u
#define HTTP_CONNECTION_TIMEOUT_SEC  30u
#define HTTP_LISTEN_BACKLOG          64

/* "[" + host + "%" + zone + "]:" + port */
#define ADDRESS_BUFSIZE (NI_MAXHOST + 16)

struct http_listener {
	struct http_server *server;
	struct MHD_Daemon *daemon;
	int fd; /* ours until handed to MHD, then -1 */
	/* While MHD_start_daemon() runs, MHD's messages explain a failure: log them louder. */
	atomic_bool starting;
	/* Reused across scrapes; touched only by this daemon's polling thread. */
	struct outbuf exposition;
	char address[ADDRESS_BUFSIZE]; /* as bound, for logs */
};

struct http_server {
	char *telemetry_path;
	char *landing_page;
	size_t landing_page_len;
	int (*collect)(void *userdata, struct outbuf *out);
	bool (*ready)(void *userdata);
	void *userdata;
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

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *content_type,
                             const void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	/* MHD reads from a persistent buffer but never writes to it. */
	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, mode);
	if (!resp)
		return MHD_NO;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES ||
	    (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	return reply(c, status, CONTENT_TYPE_TEXT, text, strlen(text), MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result reply_metrics(struct http_listener *l, struct MHD_Connection *c)
{
	struct http_server *s = l->server;
	struct outbuf *b = &l->exposition;
	char msg[256];
	int r;

	outbuf_reset(b);
	r = s->collect(s->userdata, b);
	if (r >= 0 && b->failed)
		r = -ENOMEM;
	if (r < 0) {
		log_warn("scrape failed", "address=%s err=\"%s\"", l->address, strerror(-r));
		snprintf(msg, sizeof(msg), "error collecting metrics: %s\n", strerror(-r));
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, CONTENT_TYPE_TEXT, msg, strlen(msg),
		             MHD_RESPMEM_MUST_COPY);
	}

	/*
	 * MUST_COPY: MHD sends the body over several poll rounds, and meanwhile
	 * a second scraper on this daemon may start the next collection into
	 * the same buffer, so the buffer cannot be lent to the response. One
	 * memcpy per scrape costs far less than collecting, and keeps the
	 * buffer's memory (its capacity survives outbuf_reset()) ours alone.
	 */
	return reply(c, MHD_HTTP_OK, CONTENT_TYPE_EXPOSITION, b->len ? b->data : "", b->len,
	             MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result http_handle_request(void *cls, struct MHD_Connection *c, const char *url,
                                           const char *method, const char *version,
                                           const char *upload_data, size_t *upload_data_size,
                                           void **con_cls)
{
	struct http_listener *l = cls;
	struct http_server *s = l->server;

	/* GET and HEAD have no body we need, so we answer on the first call. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed\n");

	if (strcmp(url, s->telemetry_path) == 0)
		return reply_metrics(l, c);
	if (strcmp(url, "/") == 0)
		return reply(c, MHD_HTTP_OK, CONTENT_TYPE_HTML, s->landing_page,
		             s->landing_page_len, MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/-/healthy") == 0)
		return reply_text(c, MHD_HTTP_OK, "Healthy\n");
	if (strcmp(url, "/-/ready") == 0) {
		if (!s->ready || s->ready(s->userdata))
			return reply_text(c, MHD_HTTP_OK, "Ready\n");
		return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "Not ready\n");
	}
	return reply_text(c, MHD_HTTP_NOT_FOUND, "Not Found\n");
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
	const unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	struct stat st;
	int saved;

	if (fstat(l->fd, &st) < 0)
		return set_error(errbuf, errlen, -errno, "cannot serve on %s: %s", l->address,
		                 strerror(errno));

	atomic_store(&l->starting, true);
	errno = 0;
	l->daemon = MHD_start_daemon(flags, 0, NULL, NULL, http_handle_request, l,
	                             /* first, so that MHD never prints on its own */
	                             MHD_OPTION_EXTERNAL_LOGGER, http_log_mhd, l,
	                             MHD_OPTION_LISTEN_SOCKET, l->fd, MHD_OPTION_CONNECTION_LIMIT,
	                             HTTP_CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	                             HTTP_PER_IP_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	                             HTTP_CONNECTION_TIMEOUT_SEC, MHD_OPTION_END);
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

int http_server_start(const struct http_config *cfg, struct http_server **ret, char *errbuf,
                      size_t errlen)
{
	struct http_server *s;
	int r;

	if (!cfg || !cfg->collect || !cfg->telemetry_path || cfg->telemetry_path[0] != '/' ||
	    cfg->n_listen == 0)
		return set_error(errbuf, errlen, -EINVAL, "invalid HTTP server configuration");

	s = calloc(1, sizeof(*s));
	if (!s)
		return set_error(errbuf, errlen, -ENOMEM, "out of memory");
	s->collect = cfg->collect;
	s->ready = cfg->ready;
	s->userdata = cfg->userdata;
	s->telemetry_path = strdup(cfg->telemetry_path);
	if (!s->telemetry_path || landing_page_build(s) < 0) {
		r = set_error(errbuf, errlen, -ENOMEM, "out of memory");
		goto fail;
	}

	/* Bind everything first: a bad address fails before anything serves. */
	for (size_t i = 0; i < cfg->n_listen; i++) {
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
		outbuf_release(&l->exposition);
	}
	free(s->listeners);
	free(s->landing_page);
	free(s->telemetry_path);
	free(s);
	return NULL;
}
