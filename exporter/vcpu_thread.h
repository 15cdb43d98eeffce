/* SPDX-License-Identifier: MIT */
/*
 * Each vCPU's host thread and its scheduler statistics
 * (/proc/PID/task/TID/schedstat): CPU time, run-queue wait, timeslices.
 *
 * Sources decide which thread runs a vCPU (sources/vcpu_map.c) at discovery
 * and rescan time; a scrape only preads the schedstat file opened then. A
 * vCPU whose thread is not known has no thread series, and is counted by the
 * reason why.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/taskfiles.h"

/* Why a vCPU has no thread; the `reason` label of kvm_vcpu_thread_unmapped. */
enum vcpu_thread_reason {
	VCPU_THREAD_MAPPED,     /* not unmapped: the thread is known */
	VCPU_THREAD_NOT_SEEN,   /* no thread seen in KVM_RUN on it yet */
	VCPU_THREAD_NO_ACCESS,  /* the VMM's task files cannot be read (no ptrace rights) */
	VCPU_THREAD_AMBIGUOUS,  /* the process holds several VMs, or claims conflict */
	VCPU_THREAD_SHARED,     /* one thread ran several vCPUs: its time is not one vCPU's */
	VCPU_THREAD_EXITED,     /* its thread exited; not (yet) seen on another */
	VCPU_THREAD_NO_PROCESS, /* no VMM process to look in (saved files) */
	VCPU_THREAD__MAX,
};

const char *vcpu_thread_reason_to_string(enum vcpu_thread_reason r);

struct vcpu_thread {
	pid_t tid; /* the mapped thread, 0 when none */
	int fd;    /* its schedstat file, -1 when none */
	enum vcpu_thread_reason reason;
	bool read_ok;   /* the last scrape read it */
	bool shared;    /* seen running another vCPU too: never mapped again */
	pid_t seen_tid; /* the last thread seen in KVM_RUN on it (for `shared`) */
	struct schedstat stat;
};

/* An unmapped vCPU thread, for a vCPU just added. */
void vcpu_thread_init(struct vcpu_thread *t, enum vcpu_thread_reason reason);
/* Closes its file and forgets the thread, leaving the reason. */
void vcpu_thread_release(struct vcpu_thread *t, enum vcpu_thread_reason reason);

/* Opens /proc/<pid>/task/<tid>/schedstat (O_CLOEXEC). The fd, or -errno. */
int vcpu_thread_open(const char *proc_root, pid_t pid, pid_t tid);
/* Maps the vCPU to tid, taking ownership of fd (from vcpu_thread_open()). */
void vcpu_thread_assign(struct vcpu_thread *t, pid_t tid, int fd);
