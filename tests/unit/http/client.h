/* SPDX-License-Identifier: MIT */
/*
 * A raw HTTP/1.1 client for the HTTP tests, on loopback: one request per
 * connection, read to the end, so that what the server sends is seen as
 * sent. Include after cmocka.h.
 */
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct http_reply {
	int status;
	char *raw;
	char *headers;   /* into raw */
	char *body;      /* into raw */
	size_t body_len; /* gzip bodies have NUL bytes */
};

static inline void http_reply_release(struct http_reply *r)
{
	free(r->raw);
	*r = (struct http_reply){ 0 };
}

static inline int connect_loopback(unsigned port)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static inline void parse_reply(char *raw, size_t len, struct http_reply *ret)
{
	char *end;

	raw[len] = '\0';
	end = strstr(raw, "\r\n\r\n");
	if (!end)
		fail_msg("no complete reply: \"%s\"", raw);
	*end = '\0';
	*ret = (struct http_reply){ .raw = raw,
				    .headers = raw,
				    .body = end + 4,
				    .body_len = len - (size_t)(end + 4 - raw) };
	assert_int_equal(sscanf(raw, "HTTP/1.1 %d ", &ret->status), 1);
}

/* One request on a fresh connection; extra is more header lines ("Name: value\r\n..."). */
static inline void http_request(unsigned port, const char *method, const char *path,
				const char *extra, struct http_reply *ret)
{
	size_t len = 0, cap = 4096, n;
	char *req, *raw;
	int fd;

	fd = connect_loopback(port);
	assert_true(asprintf(&req,
			     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n",
			     method, path, extra ? extra : "") > 0);
	n = strlen(req);
	/* The server may answer (and close) before reading a huge request to its end. */
	(void)!send(fd, req, n, MSG_NOSIGNAL);
	free(req);
	raw = malloc(cap + 1);
	assert_non_null(raw);
	for (;;) {
		ssize_t r;

		if (len == cap) {
			cap *= 2;
			raw = realloc(raw, cap + 1);
			assert_non_null(raw);
		}
		r = recv(fd, raw + len, cap - len, 0);
		if (r < 0 && errno == ECONNRESET)
			break;
		assert_true(r >= 0);
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	parse_reply(raw, len, ret);
}

static inline void http_get(unsigned port, const char *path, const char *extra,
			    struct http_reply *ret)
{
	http_request(port, "GET", path, extra, ret);
}

static inline const char *http_header(const struct http_reply *r, const char *name, char *buf,
				      size_t len)
{
	size_t n = strlen(name);

	for (const char *line = strstr(r->headers, "\r\n"); line; line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
			const char *v = line + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			if (!e)
				e = v + strlen(v);
			snprintf(buf, len, "%.*s", (int)(e - v), v);
			return buf;
		}
	}
	return NULL;
}

/* A loopback port that was free a moment ago (bind to 0, read it, close). */
static inline unsigned free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}
