/* SPDX-License-Identifier: MIT */
/*
 * The hand-off socket (docs/handoff.md): VMMs connect and send their stats
 * fds with SCM_RIGHTS; one connection is one VM. Needs no privilege.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "collector.h"
#include "expo/family.h"

struct handoff_config {
	const char *path;           /* where to bind the SOCK_SEQPACKET socket */
	int listen_fd;              /* >= 0: a listening socket systemd passed; path is not bound */
	bool create_parent;         /* make the parent directory (0755) if missing */
	const uint32_t *allow_uids; /* peers whose uid is listed are accepted ... */
	size_t n_allow_uids;
	const uint32_t *allow_gids; /* ... and those in a listed group (primary or supplementary) */
	size_t n_allow_gids;
	unsigned max_connections;
};

struct handoff_source;

/*
 * Binds and listens at cfg->path (replacing a stale socket file, never a
 * live socket or another kind of file), or takes cfg->listen_fd (socket
 * activation; always owned from here on, the file left to systemd), and
 * watches it on epoll_fd, whose events carry the fd in data.fd. 0, or -errno
 * with why[] naming the step.
 */
int handoff_source_new(struct collector *c, int epoll_fd, const struct handoff_config *cfg,
		       struct handoff_source **ret, char *why, size_t why_len);

/* Closes every connection (removing its VM), the socket and its file. NULL-safe, returns NULL. */
struct handoff_source *handoff_source_free(struct handoff_source *h);

/* Handles an epoll event if fd is the socket or one of its connections; false otherwise. */
bool handoff_source_dispatch(struct handoff_source *h, int fd, uint32_t events);

/* Whether pid registered a VM over an open connection (procfs discovery leaves it alone). */
bool handoff_source_is_peer(const struct handoff_source *h, pid_t pid);

/*
 * Writes the kvmstats_exporter_handoff_* families (a family_writer_fn;
 * userdata: the source). Called under the collector's lock.
 */
void handoff_source_write_metrics(void *userdata, struct family_writer *w);
