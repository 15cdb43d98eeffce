/* SPDX-License-Identifier: MIT */
/*
 * Hand-off: turning a validated message and the fds attached to it into
 * changes of the collector's VMs, all or nothing. Main thread only.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "collector.h"
#include "sources/handoff_msg.h"

/* One connection's side of the hand-off: who the peer is and the VM it registered. */
struct handoff_peer {
	pid_t pid; /* SO_PEERCRED; 0 when not visible in our pid namespace */
	uid_t uid;
	int conn_fd;   /* for the scrape's liveness check */
	struct vm *vm; /* NULL until registered; owned by the collector */
};

/*
 * Applies message m with its n_fds attached fds to the peer's VM. Every fd
 * is consumed: kept by the VM or closed. 0 on success; on refusal -EINVAL
 * (or -ENOMEM) with *ret_reason and a one-sentence why[], and nothing
 * changed.
 */
int handoff_apply(struct collector *c, struct handoff_peer *peer, const struct handoff_msg *m,
		  int *fds, size_t n_fds, enum handoff_reject *ret_reason, char *why,
		  size_t why_len);

/* Removes the peer's VM, if any, closing its fds. Takes the collector lock. */
void handoff_peer_forget(struct collector *c, struct handoff_peer *peer);
/* The same, with the collector's lock already held. */
void handoff_peer_forget_locked(struct collector *c, struct handoff_peer *peer);
