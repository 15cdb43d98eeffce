/* SPDX-License-Identifier: MIT */
/*
 * systemd's service protocol without libsystemd: the wire formats are small
 * and stable (sd_notify(3), sd_listen_fds(3)), and a direct implementation
 * keeps the daemon free of a library it would use three functions of.
 *
 * Notifications open a fresh datagram socket per message, as libsystemd does:
 * messages are rare (readiness, stop, one watchdog ping every few seconds),
 * and nothing stays open that a fork or a restart of the manager could
 * confuse.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "systemd/sdnotify.h"

/* FileDescriptorName= values are at most 255 characters (systemd's FDNAME_MAX). */
#define FDNAME_MAX 255

/* Parses a decimal unsigned integer without sign, spaces or trailing bytes. */
static int parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		uint64_t d;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		d = (uint64_t)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

/* Parses $NOTIFY_SOCKET into a unix address; -EAFNOSUPPORT for other schemes (vsock:). */
static int notify_address(const char *e, struct sockaddr_un *ret, socklen_t *ret_len)
{
	size_t n = strlen(e);

	if (n < 2 || (e[0] != '/' && e[0] != '@'))
		return -EAFNOSUPPORT;
	if (n > sizeof(ret->sun_path) - (e[0] == '/'))
		return -ENAMETOOLONG;
	*ret = (struct sockaddr_un){.sun_family = AF_UNIX};
	memcpy(ret->sun_path, e, n);
	if (e[0] == '@') {
		/* Abstract: a leading NUL, and the length counts the name exactly. */
		ret->sun_path[0] = '\0';
		*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

int sdnotify_send(const char *message)
{
	struct sockaddr_un sa;
	socklen_t sa_len;
	_cleanup_close_ int fd = -1;
	const char *e = getenv("NOTIFY_SOCKET");
	size_t n;
	ssize_t k;
	int r;

	if (!e)
		return 0;
	if (!message)
		return -EINVAL;
	r = notify_address(e, &sa, &sa_len);
	if (r < 0)
		return r;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n = strlen(message);
	k = sendto(fd, message, n, MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len);
	if (k < 0)
		return -errno;
	if ((size_t)k != n)
		return -EMSGSIZE;
	return 1;
}

/* Sends head, then "\nSTATUS=<status>" with newlines in status turned into spaces. */
static int send_with_status(const char *head, const char *status)
{
	_cleanup_free_ char *msg = NULL;
	size_t head_n, status_n;

	if (!status)
		return sdnotify_send(head);
	head_n = strlen(head);
	status_n = strlen(status);
	if (status_n > SDNOTIFY_STATUS_MAX)
		return -EMSGSIZE;
	msg = malloc(head_n + status_n + sizeof("\nSTATUS="));
	if (!msg)
		return -ENOMEM;
	memcpy(msg, head, head_n);
	if (head_n > 0)
		msg[head_n++] = '\n';
	memcpy(msg + head_n, "STATUS=", 7);
	head_n += 7;
	/* A newline would start a new assignment: a status must never say READY=1. */
	for (size_t i = 0; i < status_n; i++)
		msg[head_n + i] = status[i] == '\n' || status[i] == '\r' ? ' ' : status[i];
	msg[head_n + status_n] = '\0';
	return sdnotify_send(msg);
}

int sdnotify_ready(const char *status)
{
	return send_with_status("READY=1", status);
}

int sdnotify_stopping(const char *status)
{
	return send_with_status("STOPPING=1", status);
}

int sdnotify_watchdog_ping(void)
{
	return sdnotify_send("WATCHDOG=1");
}

int sdnotify_status(const char *fmt, ...)
{
	char text[SDNOTIFY_STATUS_MAX + 1];
	va_list ap;
	int n;

	if (!getenv("NOTIFY_SOCKET"))
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(text))
		return -EMSGSIZE;
	return send_with_status("", text);
}

/* 1 if $<name> is unset or names this process, 0 if another one, -EINVAL if malformed. */
static int env_pid_is_ours(const char *name)
{
	const char *e = getenv(name);
	uint64_t pid;

	if (!e)
		return 1;
	if (parse_u64(e, &pid) < 0 || pid == 0 || pid > INT_MAX)
		return -EINVAL;
	return (pid_t)pid == getpid();
}

int sdnotify_watchdog_usec(uint64_t *ret_usec)
{
	const char *e = getenv("WATCHDOG_USEC");
	uint64_t usec;
	int r;

	*ret_usec = 0;
	if (!e)
		return 0;
	if (parse_u64(e, &usec) < 0 || usec == 0)
		return -EINVAL;
	r = env_pid_is_ours("WATCHDOG_PID");
	if (r <= 0)
		return r;
	*ret_usec = usec;
	return 1;
}

struct sdnotify_watchdog {
	int timer_fd;
	bool (*healthy)(void *userdata);
	void *userdata;
};

int sdnotify_watchdog_new(bool (*healthy)(void *userdata), void *userdata,
			  struct sdnotify_watchdog **ret)
{
	struct sdnotify_watchdog *w;
	struct itimerspec its = {0};
	uint64_t usec, half;
	int r;

	*ret = NULL;
	r = sdnotify_watchdog_usec(&usec);
	if (r <= 0)
		return r;

	/* Half the timeout, as sd_watchdog_enabled(3) advises; never a zero (disarmed) timer. */
	half = usec / 2 > 0 ? usec / 2 : 1;
	its.it_value.tv_sec = (time_t)(half / 1000000);
	its.it_value.tv_nsec = (long)(half % 1000000) * 1000;
	its.it_interval = its.it_value;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->healthy = healthy;
	w->userdata = userdata;
	w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (w->timer_fd < 0 || timerfd_settime(w->timer_fd, 0, &its, NULL) < 0) {
		r = -errno;
		sdnotify_watchdog_free(w);
		return r;
	}
	*ret = w;
	return 1;
}

int sdnotify_watchdog_fd(const struct sdnotify_watchdog *w)
{
	return w ? w->timer_fd : -1;
}

int sdnotify_watchdog_dispatch(struct sdnotify_watchdog *w)
{
	uint64_t expirations;

	if (!w)
		return -EINVAL;
	if (read(w->timer_fd, &expirations, sizeof(expirations)) != (ssize_t)sizeof(expirations))
		return errno == EAGAIN ? 0 : -errno;
	if (w->healthy && !w->healthy(w->userdata))
		return 0;
	return sdnotify_watchdog_ping();
}

struct sdnotify_watchdog *sdnotify_watchdog_free(struct sdnotify_watchdog *w)
{
	if (!w)
		return NULL;
	safe_close(w->timer_fd);
	free(w);
	return NULL;
}

static void listen_env_unset(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

/* Splits $LISTEN_FDNAMES into exactly n names, each at most FDNAME_MAX bytes. */
static int split_names(const char *e, size_t n, char **names)
{
	for (size_t i = 0; i < n; i++) {
		const char *end = strchr(e, ':');
		size_t len = end ? (size_t)(end - e) : strlen(e);

		if (len > FDNAME_MAX)
			return -EINVAL;
		if ((i + 1 < n) != (end != NULL))
			return -EINVAL; /* fewer or more names than fds */
		names[i] = strndup(e, len);
		if (!names[i])
			return -ENOMEM;
		if (end)
			e = end + 1;
	}
	return 0;
}

static int listen_fds_parse(struct sdnotify_fds *set)
{
	const char *e_fds = getenv("LISTEN_FDS"), *e_names = getenv("LISTEN_FDNAMES");
	uint64_t n;
	int r;

	/* Without LISTEN_PID the fds cannot be known to be ours (an inherited environment). */
	if (!e_fds || !getenv("LISTEN_PID"))
		return 0;
	r = env_pid_is_ours("LISTEN_PID");
	if (r <= 0)
		return r;
	if (parse_u64(e_fds, &n) < 0)
		return -EINVAL;
	if (n == 0)
		return 0;
	if (n > SDNOTIFY_LISTEN_FDS_MAX)
		return -E2BIG;

	set->fds = malloc(n * sizeof(*set->fds));
	set->names = calloc(n, sizeof(*set->names));
	if (!set->fds || !set->names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		set->fds[i] = -1;
	set->n = n;
	if (e_names)
		r = split_names(e_names, n, set->names);
	else
		for (size_t i = 0; i < n && r >= 0; i++)
			r = (set->names[i] = strdup("unknown")) ? 0 : -ENOMEM;
	if (r < 0)
		return r;

	for (size_t i = 0; i < n; i++) {
		int fd = SDNOTIFY_LISTEN_FDS_START + (int)i;

		if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
			return -errno;
		set->fds[i] = fd;
	}
	return (int)n;
}

int sdnotify_listen_fds(bool unset_environment, struct sdnotify_fds *ret)
{
	int r;

	*ret = (struct sdnotify_fds){0};
	r = listen_fds_parse(ret);
	if (r < 0) {
		/* The fds we did mark stay open: they are not ours to close. */
		for (size_t i = 0; i < ret->n; i++)
			ret->fds[i] = -1;
		sdnotify_fds_release(ret);
	}
	if (unset_environment)
		listen_env_unset();
	return r;
}

int sdnotify_fds_take(struct sdnotify_fds *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->fds[i] >= 0 && strcmp(set->names[i], name) == 0)
			return TAKE_FD(set->fds[i]);
	return -ENOENT;
}

bool sdnotify_is_listening_socket(int fd, int type)
{
	int v = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0 || len != sizeof(v) || v != type)
		return false;
	len = sizeof(v);
	v = 0;
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && len == sizeof(v) &&
	       v != 0;
}

int sdnotify_fds_take_stream_listeners(struct sdnotify_fds *set, const char *skip_name,
				       int **ret_fds, size_t *ret_n)
{
	_cleanup_free_ int *fds = NULL;
	size_t n = 0;

	if (set->n > 0) {
		fds = malloc(set->n * sizeof(*fds));
		if (!fds)
			return -ENOMEM;
	}
	for (size_t i = 0; i < set->n; i++) {
		if (set->fds[i] < 0 || (skip_name && strcmp(set->names[i], skip_name) == 0) ||
		    !sdnotify_is_listening_socket(set->fds[i], SOCK_STREAM))
			continue;
		fds[n++] = TAKE_FD(set->fds[i]);
	}
	*ret_fds = n > 0 ? TAKE_PTR(fds) : NULL;
	*ret_n = n;
	return 0;
}

void sdnotify_fds_release(struct sdnotify_fds *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		if (set->fds)
			safe_close(set->fds[i]);
		if (set->names)
			free(set->names[i]);
	}
	free(set->fds);
	free(set->names);
	*set = (struct sdnotify_fds){0};
}
