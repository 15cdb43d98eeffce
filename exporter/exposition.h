/* SPDX-License-Identifier: MIT */
/* Writing the text exposition (format 0.0.4) of observed VMs and self-metrics. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "outbuf.h"

struct vm;
struct collector;

/*
 * Writes kvm_vm_info and every KVM family for the VMs, from the values of
 * their last read; per_vcpu adds the vcpu label instead of aggregating.
 * VMs beyond 64 distinct schemas of a kind are left out. Returns 0.
 */
int exposition_write_kvm(struct outbuf *out, struct vm *const *vms, size_t n_vms, bool per_vcpu);

/* Writes the kvmstats_exporter_* families. Call with the collector locked. */
int exposition_write_self(struct outbuf *out, const struct collector *c, double scrape_seconds);
