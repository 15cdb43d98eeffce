/* SPDX-License-Identifier: MIT */
/*
 * Writing the exposition of observed VMs and self-metrics, in text format
 * 0.0.4 or OpenMetrics 1.0.0 (docs/metrics.md, "Formats").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "outbuf.h"

struct vm;
struct collector;

enum exposition_format {
	EXPOSITION_TEXT_004,        /* text/plain; version=0.0.4 */
	EXPOSITION_OPENMETRICS_100, /* application/openmetrics-text; version=1.0.0 */
};

/* The Content-Type header value of a format. */
const char *exposition_content_type(enum exposition_format fmt);

/*
 * Writes kvm_vm_info and every KVM family for the VMs, from the values of
 * their last read; per_vcpu adds the vcpu label instead of aggregating.
 * VMs beyond 64 distinct schemas of a kind are left out. Returns 0.
 */
int exposition_write_kvm(struct outbuf *out, struct vm *const *vms, size_t n_vms, bool per_vcpu,
			 enum exposition_format fmt);

/* Writes the kvmstats_exporter_* families. Call with the collector locked. */
int exposition_write_self(struct outbuf *out, const struct collector *c, double scrape_seconds,
			  enum exposition_format fmt);

/* Ends an exposition: "# EOF" for OpenMetrics, nothing for text 0.0.4. */
void exposition_write_end(struct outbuf *out, enum exposition_format fmt);
