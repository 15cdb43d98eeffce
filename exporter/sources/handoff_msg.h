/* SPDX-License-Identifier: MIT */
/*
 * Hand-off protocol, version 1 (docs/handoff.md): parsing and validating one
 * message's JSON. Knows nothing of sockets or fds; the source applies what
 * this returns.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "proto/handoff.h"

/* Why a message or connection was refused; the `reason` label of the rejection counter. */
enum handoff_reject {
	HANDOFF_REJECT_PEER,      /* credentials not allowed */
	HANDOFF_REJECT_JSON,      /* not one JSON object of the right shape */
	HANDOFF_REJECT_VERSION,   /* wrong version, or a message out of sequence */
	HANDOFF_REJECT_ROLE,      /* malformed, repeated, held or unknown role */
	HANDOFF_REJECT_FD,        /* an fd that is not the stats fd its role says */
	HANDOFF_REJECT_NAME,      /* bad or taken VM name, uuid or label */
	HANDOFF_REJECT_BOUNDS,    /* too many fds, labels or connections; out of resources */
	HANDOFF_REJECT_TRUNCATED, /* datagram or its fds did not fit */
	HANDOFF_REJECT__MAX,
};

/* The reason's label value ("json", ...). */
const char *handoff_reject_to_string(enum handoff_reject r);

enum handoff_msg_kind {
	HANDOFF_MSG_REGISTER, /* first message: version, vm, fds */
	HANDOFF_MSG_ADD,      /* later: fds */
	HANDOFF_MSG_REMOVE,   /* later: remove */
	HANDOFF_MSG_THREADS,  /* later: threads (the thread running each named vCPU) */
};

struct handoff_label {
	char *name;
	char *value;
};

struct handoff_msg {
	enum handoff_msg_kind kind;
	char *name;                                      /* REGISTER only */
	char *uuid;                                      /* REGISTER, NULL when not given */
	struct handoff_label labels[HANDOFF_MAX_LABELS]; /* sorted by name */
	size_t n_labels;
	int roles[HANDOFF_MAX_FDS_PER_VM]; /* HANDOFF_ROLE_VM or a vCPU index, in message order */
	size_t n_roles;
	int tids[HANDOFF_MAX_FDS_PER_VM]; /* THREADS: the thread id for each of roles[] */
};

/*
 * Parses one datagram's JSON. `registered` says whether the connection's VM
 * is registered (which messages are allowed). Roles are checked for form and
 * repetition within the message, not against the VM. On failure returns
 * -EINVAL (-ENOMEM) with *ret_reason and a one-sentence why[]; *ret is then
 * empty. The caller releases *ret after success.
 */
int handoff_msg_parse(const void *buf, size_t len, bool registered, struct handoff_msg *ret,
		      enum handoff_reject *ret_reason, char *why, size_t why_len);

/* Frees what handoff_msg_parse() allocated; leaves *m empty. */
void handoff_msg_release(struct handoff_msg *m);
