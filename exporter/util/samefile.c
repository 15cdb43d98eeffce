/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/samefile.h"

int same_file_between(pid_t pid1, int fd1, pid_t pid2, int fd2)
{
	long r = syscall(SYS_kcmp, pid1, pid2, KCMP_FILE, fd1, fd2);

	return r < 0 ? -errno : (int)r;
}

bool same_file(int fd1, int fd2)
{
	pid_t self = getpid();

	return fd1 >= 0 && fd2 >= 0 && same_file_between(self, fd1, self, fd2) == 0;
}
