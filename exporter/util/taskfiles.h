/* SPDX-License-Identifier: MIT */
/*
 * Parsers for the per-thread files of /proc/PID/task/TID that map a vCPU to
 * its thread and measure it: schedstat, syscall, stat, comm, and the link of
 * a vCPU fd. Pure: they take the bytes read and never touch the file system.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* /proc/PID/task/TID/schedstat: "<run ns> <run-queue wait ns> <timeslices>\n". */
struct schedstat {
	uint64_t cpu_ns;
	uint64_t run_delay_ns;
	uint64_t timeslices;
};

/* The longest schedstat line: three u64 in decimal, two spaces, a newline. */
#define SCHEDSTAT_MAX_LEN (3 * 20 + 3)

/* Parses a schedstat line exactly. 0, or -EBADMSG for anything else. */
int schedstat_parse(const char *buf, size_t len, struct schedstat *ret);

enum task_syscall_state {
	TASK_SYSCALL_RUNNING, /* "running": on a CPU or runnable; the kernel says nothing more */
	TASK_SYSCALL_USER,    /* "-1 sp pc": blocked, but not in a system call */
	TASK_SYSCALL_IN_CALL, /* "nr a0 .. a5 sp pc": blocked in system call nr */
};

struct task_syscall {
	enum task_syscall_state state;
	long nr;
	uint64_t args[6];
};

/* Parses /proc/PID/task/TID/syscall. 0, or -EBADMSG. */
int task_syscall_parse(const char *buf, size_t len, struct task_syscall *ret);

/*
 * The flags field (the 9th) of /proc/PID/task/TID/stat, found after the
 * last ')' so that a thread name holding spaces or parentheses cannot shift
 * it. 0, or -EBADMSG.
 */
int task_stat_flags(const char *buf, size_t len, uint64_t *ret);

/* Kernel task flags (include/linux/sched.h) of threads that are not the VMM's own. */
#define TASK_PF_IO_WORKER   UINT64_C(0x00000010)
#define TASK_PF_USER_WORKER UINT64_C(0x00004000)
#define TASK_PF_KTHREAD     UINT64_C(0x00200000)

/* The vCPU id of a vCPU fd's link, "anon_inode:kvm-vcpu:<n>"; -1 for anything else. */
int kvm_vcpu_link_index(const char *link);

/*
 * The vCPU index in a QEMU vCPU thread name, "CPU <n>/KVM" as comm holds it
 * (with or without its newline); -1 for anything else.
 */
int qemu_vcpu_thread_index(const char *comm, size_t len);

/* The creating thread in a vCPU stats id, "kvm-<tid>/vcpu-<n>"; -1 when it is not one. */
long kvm_stats_id_creator(const char *id);
