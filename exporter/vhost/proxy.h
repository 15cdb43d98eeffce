/* SPDX-License-Identifier: MIT */
/*
 * Internals of the vhost-user tap shared by its files: one proxy (its
 * configuration, listening socket, supervisor thread and counters).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhost/config.h"
#include "vhost/stats.h"
#include "vhostmsg.h"

struct vhost_proxy {
	struct vhost_proxy_config cfg; /* a copy, owned */
	char *name_escaped;            /* for the `proxy` label */
	enum vhost_policy policy;
	int listen_fd;
	int stop_fd; /* eventfd shared by all proxies: readable once they must stop */
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock; /* stats and tracker, shared with the scrape */
	struct vhost_proxy_stats stats;
	struct vhostmsg_shmem *tracker; /* the session's mappings; NULL between sessions */
};

/* Every proxy (what tap.h's handle points to). */
struct vhost_taps {
	struct vhost_proxy *proxies;
	size_t n;
	int stop_fd;
};
