/* SPDX-License-Identifier: MIT */
/* The hand-off's "threads" message: the thread that runs each vCPU, in the peer's word. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "collector.h"
#include "sources/handoff_msg.h"

/*
 * Maps the named vCPUs of a hand-off peer's VM to the named threads, after
 * checking that each is a thread of the peer's process (pid, from
 * SO_PEERCRED; 0 when not visible) in the exporter's pid
 * namespace and that no thread is named twice. Closes the n_fds attached fds
 * (the message takes none). 0, or -EINVAL (-ENOMEM) with *ret_reason and a
 * one-sentence why[], and nothing changed.
 */
int handoff_apply_threads(struct collector *c, struct vm *vm, pid_t pid,
			  const struct handoff_msg *m, size_t n_fds,
			  enum handoff_reject *ret_reason, char *why, size_t why_len);
