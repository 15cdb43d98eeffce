/* SPDX-License-Identifier: MIT */
/* vCPU threads: which thread runs a vCPU, and its open schedstat file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "macro.h"
#include "vcpu_thread.h"

static const char *const reason_names[VCPU_THREAD__MAX] = {
	[VCPU_THREAD_MAPPED] = "mapped",         [VCPU_THREAD_NOT_SEEN] = "not_seen",
	[VCPU_THREAD_NO_ACCESS] = "no_access",   [VCPU_THREAD_AMBIGUOUS] = "ambiguous",
	[VCPU_THREAD_SHARED] = "shared_thread",  [VCPU_THREAD_EXITED] = "thread_exited",
	[VCPU_THREAD_NO_PROCESS] = "no_process",
};

const char *vcpu_thread_reason_to_string(enum vcpu_thread_reason r)
{
	return (unsigned)r < VCPU_THREAD__MAX ? reason_names[r] : "unknown";
}

void vcpu_thread_init(struct vcpu_thread *t, enum vcpu_thread_reason reason)
{
	*t = (struct vcpu_thread){ .fd = -1, .reason = reason };
}

void vcpu_thread_release(struct vcpu_thread *t, enum vcpu_thread_reason reason)
{
	t->fd = safe_close(t->fd);
	t->tid = 0;
	t->read_ok = false;
	t->reason = reason;
}

int vcpu_thread_open(const char *proc_root, pid_t pid, pid_t tid)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%d/task/%d/schedstat", proc_root, (int)pid, (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

void vcpu_thread_assign(struct vcpu_thread *t, pid_t tid, int fd)
{
	safe_close(t->fd);
	t->fd = fd;
	t->tid = tid;
	t->read_ok = false;
	t->reason = VCPU_THREAD_MAPPED;
}
