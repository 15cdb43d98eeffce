/* SPDX-License-Identifier: MIT */
/* Writing kvm_vm_info and the KVM families of the observed VMs (docs/metrics.md). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "expo/family.h"

struct vm;

/*
 * Writes kvm_vm_info and every KVM family for the VMs, from the values of
 * their last read; per_vcpu adds the vcpu label instead of aggregating.
 * VMs beyond 64 distinct schemas of a kind are left out.
 */
void kvm_families_write(struct family_writer *w, struct vm *const *vms, size_t n_vms,
			bool per_vcpu);
