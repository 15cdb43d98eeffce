/* SPDX-License-Identifier: MIT */
/*
 * The hand-off protocol, version 1 (docs/handoff.md), as both ends share it:
 * its limits, how roles and names are spelled, the messages a VMM (the
 * LD_PRELOAD shim) sends, and the answers the exporter gives. Pure functions
 * on caller buffers, on libc alone: the shim links this inside someone
 * else's process, the exporter's strict parser (sources/handoff_msg.c) is
 * built on the same definitions.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define HANDOFF_VERSION         1
#define HANDOFF_MAX_MESSAGE     65536u /* bytes of JSON in one datagram */
#define HANDOFF_MAX_FDS_PER_MSG 64u
#define HANDOFF_MAX_FDS_PER_VM  1025u /* the VM fd and 1024 vCPUs */
#define HANDOFF_MAX_VCPU_INDEX  16383 /* KVM's vCPU ids (x86 APIC ids) go up to 16383 */
#define HANDOFF_MAX_NAME        253u
#define HANDOFF_MAX_UUID        64u
#define HANDOFF_MAX_LABELS      16u
#define HANDOFF_MAX_LABEL_NAME  64u
#define HANDOFF_MAX_LABEL_VALUE 256u
#define HANDOFF_ROLE_VM         (-1) /* roles are vCPU indexes, or this */
/* Longest answer the exporter sends: {"ok":false,"error":"<sentence>"}. */
#define HANDOFF_MAX_ANSWER 1024u

/* Formats a role as the protocol spells it ("vm", "vcpu:3"). */
void handoff_role_format(int role, char *buf, size_t len);

/*
 * Parses "vm" or "vcpu:N" (N in canonical decimal: no sign, no leading zero,
 * at most HANDOFF_MAX_VCPU_INDEX). 0 or -EINVAL.
 */
int handoff_role_parse(const char *s, int *ret);

/* True for at most max bytes of valid UTF-8 with no C0, DEL or C1 control character. */
bool handoff_text_valid(const char *s, size_t len, size_t max);

/* Whether a name is acceptable as the vm label: 1..253 bytes of such text. */
bool handoff_name_valid(const char *name);

/* Whether a uuid is acceptable: at most 64 bytes of such text. */
bool handoff_uuid_valid(const char *uuid);

/*
 * Writes the registration message (name required, uuid may be NULL) for the
 * roles given. Returns its length, or -ENOBUFS when it does not fit in size.
 */
int handoff_build_register(char *buf, size_t size, const char *name, const char *uuid,
			   const int *roles, size_t n_roles);

/* Writes {"fds":[...]} for the roles given. Length or -ENOBUFS. */
int handoff_build_add(char *buf, size_t size, const int *roles, size_t n_roles);

/* Writes {"threads":{"vcpu:N":tid,...}} for the vCPU ids given. Length or -ENOBUFS. */
int handoff_build_threads(char *buf, size_t size, const int *vcpus, const int *tids, size_t n);

/*
 * Writes an answer: {"ok":true} when error is NULL, else
 * {"ok":false,"error":"..."} (error escaped, cut to fit HANDOFF_MAX_ANSWER).
 * Returns its length, or -ENOBUFS when size is too small for even that.
 */
int handoff_build_answer(char *buf, size_t size, const char *error);

/*
 * Reads an answer of len bytes: 1 for {"ok":true}, 0 for {"ok":false,...}
 * (the "error" sentence, sanitised and possibly shortened, goes to
 * ret_error), -EBADMSG for anything else.
 */
int handoff_parse_answer(const char *buf, size_t len, char *ret_error, size_t error_size);
