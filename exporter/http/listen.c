/* SPDX-License-Identifier: MIT */
/* Listen addresses and sockets: parsing, binding, sockets passed by systemd. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"
#include "http/internal.h"
#include "log/log.h"

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
	*l = (struct http_listener){ .server = s, .fd = fd };
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		format_sockaddr((struct sockaddr *)&ss, len, l->address, sizeof(l->address));
	else
		snprintf(l->address, sizeof(l->address), "(unknown)");
	return 0;
}

/* Writes one sentence into errbuf (if any) and returns r. */
_printf_(4, 5) int http_set_error(char *errbuf, size_t errlen, int r, const char *fmt, ...)
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
int http_bind_any(struct http_server *s, const char *addr, unsigned port, char *errbuf,
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
		return http_set_error(errbuf, errlen, r, "cannot listen on \"%s\": %s", addr,
				      strerror(-r));
	r = listeners_add(s, fd);
	if (r < 0) {
		safe_close(fd);
		return http_set_error(errbuf, errlen, r, "cannot listen on \"%s\": %s", addr,
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
int http_bind_host(struct http_server *s, const char *addr, const char *host, unsigned port,
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

		return http_set_error(errbuf, errlen, e, "cannot resolve listen address \"%s\": %s",
				      addr, r == EAI_SYSTEM ? strerror(-e) : gai_strerror(r));
	}

	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		struct sockaddr_storage ss = { 0 };
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
			return http_set_error(errbuf, errlen, -EADDRNOTAVAIL,
					      "cannot listen on \"%s\": it resolves to no IP "
					      "address",
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
		return http_set_error(errbuf, errlen, r, "cannot listen on \"%s\": %s", addr,
				      strerror(-r));
	return http_set_error(errbuf, errlen, r, "cannot listen on \"%s\" (%s): %s", addr, where,
			      strerror(-r));
}

void http_close_fds(const int *fds, size_t from, size_t n)
{
	for (size_t i = from; i < n; i++)
		safe_close(fds[i]);
}

/* Sockets systemd passed (--web.systemd-socket): already bound and listening. */
int http_adopt_listen_fds(struct http_server *s, const int *fds, size_t n, char *errbuf,
			  size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int flags = fcntl(fds[i], F_GETFL), r;

		/* MHD accepts after poll(); a blocking accept could hang its thread. */
		if (flags < 0 || fcntl(fds[i], F_SETFL, flags | O_NONBLOCK) < 0) {
			r = -errno;
			http_close_fds(fds, i, n);
			return http_set_error(errbuf, errlen, r,
					      "cannot use socket %d passed by systemd: %s", fds[i],
					      strerror(-r));
		}
		r = listeners_add(s, fds[i]);
		if (r < 0) {
			http_close_fds(fds, i, n);
			return http_set_error(errbuf, errlen, r, "out of memory");
		}
	}
	return 0;
}
