/* SPDX-License-Identifier: MIT */
/* Reading small files whole. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/*
 * Reads a whole regular file of at most max bytes into a NUL-terminated
 * malloc'd buffer. 0, or -errno: -EISDIR, -EBADFD (not a regular file),
 * -EFBIG (larger than max), -ENOMEM, or what open/read said.
 */
int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_len);

/*
 * Reads from fd until end of file or max bytes, retrying interrupted reads.
 * The length read, or -errno.
 */
ssize_t read_full(int fd, void *buf, size_t max);
