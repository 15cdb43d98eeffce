/* SPDX-License-Identifier: MIT */
/*
 * Which processes a procfs rescan may leave alone. A process that has not
 * run since the last scan (its CPU time, every thread's, live or exited, is
 * the same to the nanosecond) has made no system call: its fd table is as
 * that scan saw it, so it cannot have gained (or lost) a stats fd. Reading
 * one number per process instead of every fd link of every process is what
 * keeps a rescan cheap on a host with thousands of ordinary processes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A process as a scan left it, and the CPU time it had used by then. */
struct procfs_quiet {
	pid_t pid;
	bool vmm; /* its VM is held; else it held no stats fd */
	uint64_t cpu_ns;
};

/* A list of them, sorted by pid once complete. */
struct procfs_quiet_list {
	struct procfs_quiet *items;
	size_t n, cap;
};

/* CPU time of a whole process in ns, from its process CPU clock. 0 or -errno (-ESRCH: gone). */
int procfs_process_cpu_ns(pid_t pid, uint64_t *ret_ns);

/* Appends an entry; false when out of memory (the process is then read next time). */
bool procfs_quiet_add(struct procfs_quiet_list *l, pid_t pid, bool vmm, uint64_t cpu_ns);

/* Sorts a complete list for procfs_quiet_find(). */
void procfs_quiet_finish(struct procfs_quiet_list *l);

/* pid's entry if it has used exactly cpu_ns since, i.e. not run at all; else NULL. */
const struct procfs_quiet *procfs_quiet_find(const struct procfs_quiet_list *l, pid_t pid,
					     uint64_t cpu_ns);

/* Frees the entries; the list is empty and reusable afterwards. */
void procfs_quiet_release(struct procfs_quiet_list *l);
