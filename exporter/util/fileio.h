/* SPDX-License-Identifier: MIT */
/* Reading small files whole. */
#pragma once

#include <stddef.h>

/*
 * Reads a whole regular file of at most max bytes into a NUL-terminated
 * malloc'd buffer. 0, or -errno: -EISDIR, -EBADFD (not a regular file),
 * -EFBIG (larger than max), -ENOMEM, or what open/read said.
 */
int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_len);
