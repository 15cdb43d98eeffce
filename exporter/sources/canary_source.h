/* SPDX-License-Identifier: MIT */
/*
 * The canary VM as a source (--kvm.canary): adds the exporter's own VM to
 * the collector, runs a burst of its guest code when asked (after each
 * scrape), and reports whether KVM works on this host.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "collector.h"
#include "expo/family.h"
#include "sources/canary.h"

struct canary_source {
	struct collector *collector;
	struct canary *canary; /* NULL when the host cannot run it */
	/* Self-metrics; written and read under the collector's lock. */
	bool up;
	uint64_t bursts;
};

/*
 * Makes the canary VM, runs a first burst and adds the VM to c. A host
 * without KVM is what the canary reports (canary_up 0), not a failure:
 * 0 then too. -errno when the VM exists but cannot be observed.
 */
int canary_source_start(struct canary_source *s, struct collector *c);

/* Runs one burst of guest code and counts it (main thread). */
void canary_source_burst(struct canary_source *s);

/* Writes the kvmstats_exporter_canary_* families (a family_writer_fn; userdata: the source). */
void canary_source_write_metrics(void *userdata, struct family_writer *w);

/* Frees the canary VM (after its VM left the collector). */
void canary_source_release(struct canary_source *s);
