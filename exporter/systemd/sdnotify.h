/* SPDX-License-Identifier: MIT */
/*
 * systemd's service protocol, through libsystemd: readiness and status
 * notifications to $NOTIFY_SOCKET, the watchdog ($WATCHDOG_USEC,
 * $WATCHDOG_PID) and socket activation ($LISTEN_FDS, $LISTEN_PID,
 * $LISTEN_FDNAMES). Outside systemd every call is a cheap no-op.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* At most this many passed fds are accepted; more is -E2BIG. */
#define SDNOTIFY_LISTEN_FDS_MAX 1024
/* Longest STATUS= text; longer is -EMSGSIZE. */
#define SDNOTIFY_STATUS_MAX 1024

/*
 * Sends one newline-separated message ("READY=1\nSTATUS=...") with
 * sd_notify(3). 1 if sent, 0 if $NOTIFY_SOCKET is unset, -errno on failure.
 */
int sdnotify_send(const char *message);
/* "READY=1" plus "STATUS=<status>" when status is not NULL. */
int sdnotify_ready(const char *status);
/* "STATUS=<printf text>"; newlines become spaces. */
int sdnotify_status(const char *fmt, ...) _printf_(1, 2);
/* "STOPPING=1" plus "STATUS=<status>" when status is not NULL. */
int sdnotify_stopping(const char *status);
/* "WATCHDOG=1". */
int sdnotify_watchdog_ping(void);

/*
 * The watchdog timeout systemd expects pings within: 1 with *ret_usec set when
 * $WATCHDOG_USEC is set and $WATCHDOG_PID is unset or names this process, 0
 * with *ret_usec = 0 when there is no watchdog for us, -EINVAL when a variable
 * is malformed.
 */
int sdnotify_watchdog_usec(uint64_t *ret_usec);

struct sdnotify_watchdog;

/*
 * A timerfd that fires at half the watchdog timeout, for the caller's event
 * loop. 1 with *ret set, 0 with *ret = NULL when there is no watchdog, or
 * -errno. healthy() is asked before each ping; no ping while it says false.
 */
int sdnotify_watchdog_new(bool (*healthy)(void *userdata), void *userdata,
			  struct sdnotify_watchdog **ret);
/* The timerfd to poll for EPOLLIN. */
int sdnotify_watchdog_fd(const struct sdnotify_watchdog *w);
/* Call when the timerfd is readable: 1 pinged, 0 withheld (unhealthy or not yet due), -errno. */
int sdnotify_watchdog_dispatch(struct sdnotify_watchdog *w);
/* Closes the timerfd and frees. Accepts NULL, returns NULL. */
struct sdnotify_watchdog *sdnotify_watchdog_free(struct sdnotify_watchdog *w);

/* Sockets systemd passed to this process, in order, each with its FileDescriptorName=. */
struct sdnotify_fds {
	size_t n;
	int *fds;     /* -1 once taken */
	char **names; /* "unknown" when $LISTEN_FDNAMES is unset */
};

/*
 * sd_listen_fds_with_names(3) into *ret (the fds are marked close-on-exec and
 * are the caller's from then on). Returns the number of fds: 0 when none were
 * passed to this process ($LISTEN_PID unset or naming another one); -errno
 * when a variable is malformed, the names do not match the count or a passed
 * fd is not open (those fds are left alone), -E2BIG beyond
 * SDNOTIFY_LISTEN_FDS_MAX. With unset_environment the three variables are
 * removed in every case (call it before starting threads). *ret is
 * releasable on every return.
 */
int sdnotify_listen_fds(bool unset_environment, struct sdnotify_fds *ret);

/* Takes (removes from set) the first fd named name: the fd, or -ENOENT. */
int sdnotify_fds_take(struct sdnotify_fds *set, const char *name);

/*
 * Takes every listening SOCK_STREAM socket not named skip_name (may be NULL):
 * a malloc'd array in *ret_fds (NULL when none) and its length in *ret_n.
 * Other fds stay in set. 0 or -ENOMEM.
 */
int sdnotify_fds_take_stream_listeners(struct sdnotify_fds *set, const char *skip_name,
				       int **ret_fds, size_t *ret_n);

/*
 * Takes the first fd named name if it is a listening AF_UNIX socket of this
 * type: the fd, -ENOENT when there is none, -EPROTOTYPE when it is something
 * else (it stays in the set and is closed on release).
 */
int sdnotify_fds_take_unix_listener(struct sdnotify_fds *set, const char *name, int type);

/* True if fd is a listening socket of this type (SOCK_STREAM, SOCK_SEQPACKET...). */
bool sdnotify_is_listening_socket(int fd, int type);

/* Closes the fds not taken and frees the set; it is empty (and releasable) afterwards. */
void sdnotify_fds_release(struct sdnotify_fds *set);
