/* SPDX-License-Identifier: MIT */
/*
 * The shim's side of hand-off protocol version 1 (docs/handoff.md): building
 * the JSON messages it sends and reading the exporter's answers. Pure
 * functions on caller buffers, no I/O, no allocation: unit-tested on their own.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Role of an attached fd: PRELOAD_ROLE_VM, or a vCPU id (>= 0). */
#define PRELOAD_ROLE_VM (-1)

/*
 * Writes the registration message (name required, uuid may be NULL) for the
 * roles given. Returns its length, or -ENOBUFS when it does not fit in size.
 */
int preload_msg_register(char *buf, size_t size, const char *name, const char *uuid,
			 const int *roles, size_t n_roles);

/* Writes {"fds":[...]} for the roles given. Length or -ENOBUFS. */
int preload_msg_add_fds(char *buf, size_t size, const int *roles, size_t n_roles);

/* Writes {"threads":{"vcpu:N":tid,...}} for the vCPU ids given. Length or -ENOBUFS. */
int preload_msg_threads(char *buf, size_t size, const int *vcpus, const int *tids, size_t n);

/*
 * Reads an answer of len bytes: 1 for {"ok":true}, 0 for {"ok":false,...}
 * (the "error" sentence, sanitised and possibly shortened, goes to
 * ret_error), -EBADMSG for anything else.
 */
int preload_msg_parse_answer(const char *buf, size_t len, char *ret_error, size_t error_size);

/* Whether a name is acceptable as the vm label: 1..253 bytes, no control characters. */
bool preload_name_valid(const char *name);
