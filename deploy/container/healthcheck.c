/* SPDX-License-Identifier: MIT */
/*
 * The container image's HEALTHCHECK: asks the exporter's /-/healthy over
 * loopback and exits 0 on "200", 1 otherwise, with one line saying why.
 * The runtime image holds no shell, curl or wget, and a few lines of libc
 * keep it that way.
 *
 *   kvmstats_healthcheck [HOST:PORT [PATH]]     default 127.0.0.1:9977 /-/healthy
 *
 * HOST is an IPv4 or IPv6 literal (IPv6 in brackets); names are not looked up
 * so that the check never waits on a resolver.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define DEFAULT_ADDRESS "127.0.0.1:9977"
#define DEFAULT_PATH    "/-/healthy"
#define TIMEOUT_SECONDS 5
#define MAX_HOST        64
#define MAX_PATH        1024

/* Parses HOST:PORT or [V6]:PORT into a socket address; 0 or -EINVAL. */
static int parse_address(const char *text, struct sockaddr_storage *ret_addr, socklen_t *ret_len)
{
	char host[MAX_HOST];
	const char *colon = strrchr(text, ':');
	size_t host_len;
	char *end;
	long port;

	if (!colon || colon == text)
		return -EINVAL;
	host_len = (size_t)(colon - text);
	if (text[0] == '[') {
		if (host_len < 3 || text[host_len - 1] != ']')
			return -EINVAL;
		text++;
		host_len -= 2;
	}
	if (host_len >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, host_len);
	host[host_len] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 1 || port > 65535)
		return -EINVAL;

	memset(ret_addr, 0, sizeof(*ret_addr));
	struct sockaddr_in *v4 = (struct sockaddr_in *)ret_addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ret_addr;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*ret_len = sizeof(*v4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*ret_len = sizeof(*v6);
		return 0;
	}
	return -EINVAL;
}

/* Sends the whole buffer; 0 or -errno. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *address = argc > 1 ? argv[1] : DEFAULT_ADDRESS;
	const char *path = argc > 2 ? argv[2] : DEFAULT_PATH;
	struct timeval timeout = { .tv_sec = TIMEOUT_SECONDS };
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char request[MAX_PATH + 128];
	char status[64];
	size_t got = 0;
	int fd, r;

	if (argc > 3 || (argc > 1 && strcmp(argv[1], "--help") == 0)) {
		fprintf(stderr, "usage: %s [HOST:PORT [PATH]]  (default %s %s)\n", argv[0],
			DEFAULT_ADDRESS, DEFAULT_PATH);
		return 2;
	}
	if (parse_address(address, &addr, &addr_len) < 0) {
		fprintf(stderr, "healthcheck: \"%s\" is not HOST:PORT with an IP literal host\n",
			address);
		return 2;
	}
	if (path[0] != '/' || strlen(path) > MAX_PATH || strpbrk(path, " \r\n")) {
		fprintf(stderr, "healthcheck: \"%s\" is not an absolute request path\n", path);
		return 2;
	}

	fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "healthcheck: socket: %s\n", strerror(errno));
		return 1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
	if (connect(fd, (struct sockaddr *)&addr, addr_len) < 0) {
		fprintf(stderr, "healthcheck: connect to %s: %s\n", address, strerror(errno));
		close(fd);
		return 1;
	}
	r = snprintf(request, sizeof(request),
		     "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: kvmstats_healthcheck\r\n\r\n",
		     path, address);
	if (r < 0 || (size_t)r >= sizeof(request) || (r = send_all(fd, request, (size_t)r)) < 0) {
		fprintf(stderr, "healthcheck: sending the request to %s failed\n", address);
		close(fd);
		return 1;
	}
	/* Only the status line matters: "HTTP/1.x 200 ...". */
	while (got < sizeof(status) - 1) {
		ssize_t n = recv(fd, status + got, sizeof(status) - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(status, '\n', got))
			break;
	}
	close(fd);
	status[got] = '\0';
	status[strcspn(status, "\r\n")] = '\0';
	if (strncmp(status, "HTTP/1.", 7) != 0 || strlen(status) < 12 ||
	    strncmp(status + 8, " 200", 4) != 0 || (status[12] != ' ' && status[12] != '\0')) {
		fprintf(stderr, "healthcheck: %s%s answered \"%s\"\n", address, path,
			got ? status : "(nothing)");
		return 1;
	}
	return 0;
}
