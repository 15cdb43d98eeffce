/* SPDX-License-Identifier: MIT */
/* Whether two descriptors are one open file description (kcmp(KCMP_FILE)). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/*
 * kcmp(pid1, pid2, KCMP_FILE, fd1, fd2): 0 when the same open file, 1 or 2
 * for an order, -errno on failure (e.g. -EPERM without ptrace rights).
 */
int same_file_between(pid_t pid1, int fd1, pid_t pid2, int fd2);

/* Whether two of this process's fds are the same open file (false for fds < 0 or errors). */
bool same_file(int fd1, int fd2);
