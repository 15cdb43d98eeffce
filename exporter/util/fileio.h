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

/*
 * Reads fd into buf until end of file or max bytes, retrying on EINTR; the
 * bytes read in *ret_len (not NUL-terminated). 0 or -errno.
 */
int read_fd_full(int fd, char *buf, size_t max, size_t *ret_len);

/*
 * A file whose stat() size means nothing (/proc): at most max bytes into a
 * NUL-terminated malloc'd buffer. 0, or -EFBIG when longer, or -errno.
 */
int read_proc_file(const char *path, size_t max, char **ret);
