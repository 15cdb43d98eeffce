/* SPDX-License-Identifier: MIT */
/*
 * Which host thread runs each vCPU of a VM whose VMM process is known
 * (procfs and hand-off VMs), found at discovery and rescan time, never at
 * scrape time. Needs ptrace-read rights over the VMM (CAP_SYS_PTRACE) for
 * /proc/PID/task/TID/syscall; without them vCPUs stay unmapped, counted.
 */
#pragma once

#include "collector.h"

/*
 * Looks at every thread of the VM's process (up to max_passes times while
 * some vCPU is not seen, 2 ms apart) and maps each vCPU to the thread seen
 * blocked in KVM_RUN on that vCPU's fd, or, failing that, to its creating
 * thread when that thread is named "CPU <n>/KVM" for the same vCPU (QEMU).
 * Conflicting evidence leaves a vCPU unmapped. Runs on the main thread;
 * takes the collector lock to change the VM. Returns the passes made.
 */
unsigned vcpu_map_vm(struct collector *c, const char *proc_root, struct vm *vm,
		     unsigned max_passes);
