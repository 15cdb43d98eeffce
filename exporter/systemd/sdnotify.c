/* SPDX-License-Identifier: MIT */
/*
 * systemd's service protocol through libsystemd (sd_notify(3),
 * sd_watchdog_enabled(3), sd_listen_fds_with_names(3), sd_is_socket(3)).
 * What stays here is the daemon's policy on top: a status can never smuggle
 * in a second assignment, the watchdog is a timerfd for our own event loop
 * and pings only while healthy, and passed sockets are taken by name.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "macro.h"
#include "systemd/sdnotify.h"

int sdnotify_send(const char *message)
{
	if (!message)
		return -EINVAL;
	return sd_notify(0, message);
}

/* Sends head, then "\nSTATUS=<status>" with newlines in status turned into spaces. */
static int send_with_status(const char *head, const char *status)
{
	char msg[sizeof("STOPPING=1\nSTATUS=") + SDNOTIFY_STATUS_MAX];
	size_t status_n;
	int n;

	if (!status)
		return sdnotify_send(head);
	status_n = strlen(status);
	if (status_n > SDNOTIFY_STATUS_MAX)
		return -EMSGSIZE;
	n = snprintf(msg, sizeof(msg), "%s%sSTATUS=%s", head, *head ? "\n" : "", status);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -EMSGSIZE;
	/* A newline would start a new assignment: a status must never say READY=1. */
	for (char *p = msg + (size_t)n - status_n; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
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

int sdnotify_watchdog_usec(uint64_t *ret_usec)
{
	uint64_t usec = 0;
	int r;

	*ret_usec = 0;
	r = sd_watchdog_enabled(0, &usec);
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
	struct itimerspec its = { 0 };
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

int sdnotify_listen_fds(bool unset_environment, struct sdnotify_fds *ret)
{
	char **names = NULL;
	int n;

	*ret = (struct sdnotify_fds){ 0 };
	n = sd_listen_fds_with_names(unset_environment, &names);
	if (n <= 0) {
		/* On failure the fds stay open: they are not known to be ours to close. */
		free(names);
		return n;
	}
	if (n > SDNOTIFY_LISTEN_FDS_MAX || !names) {
		for (char **p = names; p && *p; p++)
			free(*p);
		free(names);
		return n > SDNOTIFY_LISTEN_FDS_MAX ? -E2BIG : -ENOMEM;
	}
	ret->fds = malloc((size_t)n * sizeof(*ret->fds));
	if (!ret->fds) {
		ret->names = names;
		ret->n = (size_t)n;
		sdnotify_fds_release(ret);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++)
		ret->fds[i] = SD_LISTEN_FDS_START + i;
	ret->names = names;
	ret->n = (size_t)n;
	return n;
}

int sdnotify_fds_take(struct sdnotify_fds *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->fds[i] >= 0 && strcmp(set->names[i], name) == 0)
			return TAKE_FD(set->fds[i]);
	return -ENOENT;
}

int sdnotify_fds_take_unix_listener(struct sdnotify_fds *set, const char *name, int type)
{
	for (size_t i = 0; i < set->n; i++) {
		if (set->fds[i] < 0 || strcmp(set->names[i], name) != 0)
			continue;
		if (sd_is_socket_unix(set->fds[i], type, 1, NULL, 0) <= 0)
			return -EPROTOTYPE;
		return TAKE_FD(set->fds[i]);
	}
	return -ENOENT;
}

bool sdnotify_is_listening_socket(int fd, int type)
{
	return sd_is_socket(fd, AF_UNSPEC, type, 1) > 0;
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
	*set = (struct sdnotify_fds){ 0 };
}
