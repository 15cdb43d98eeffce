/* SPDX-License-Identifier: MIT */
/*
 * The scrape's side of vCPU threads: one pread of each mapped thread's
 * schedstat file, and the kvm_vcpu_thread_* families (docs/metrics.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "expo/family.h"
#include "vm.h"

/*
 * Reads the schedstat of every mapped vCPU of the VM (one pread each). A
 * thread that exited (or whose file reads wrong) is dropped and its file
 * closed. Call with the collector lock held.
 */
void vcpu_threads_read(struct vm *vm);

/*
 * Writes kvm_vcpu_thread_cpu_seconds_total, _run_delay_seconds_total,
 * _timeslices_total (per VM, or per vCPU with per_vcpu) and
 * kvm_vcpu_thread_unmapped{reason}, from the values of the last read.
 */
void vcpu_thread_families_write(struct family_writer *w, struct vm *const *vms, size_t n_vms,
				bool per_vcpu);
