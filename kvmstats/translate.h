/* SPDX-License-Identifier: MIT */
/*
 * Translation of KVM stats descriptors into Prometheus metric families,
 * following the contract in docs/metrics.md: kvm_vm_<stat> / kvm_vcpu_<stat>,
 * unit suffixes, counters/gauges/histograms, histogram _sum taken from the
 * companion cumulative stat.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmstats.h"
#include "scale.h"

enum kvmstats_metric_type {
	KVMSTATS_METRIC_COUNTER,
	KVMSTATS_METRIC_GAUGE,
	KVMSTATS_METRIC_HISTOGRAM,
};

/* How vCPU values are combined into one per-VM value. */
enum kvmstats_aggregation {
	KVMSTATS_AGG_SUM,
	KVMSTATS_AGG_MAX,
};

/* One Prometheus family made from one descriptor. */
struct kvmstats_family {
	char *name;       /* "kvm_vcpu_halt_wait_seconds"; counter samples add "_total" */
	char *metric;     /* the name in HELP/TYPE: name, or name + "_total" for counters */
	const char *unit; /* "seconds", "bytes", "cycles", or NULL */
	char *help;       /* unescaped */
	enum kvmstats_metric_type type;
	enum kvmstats_aggregation agg;
	uint32_t desc;         /* descriptor index in the schema */
	int32_t sum_desc;      /* histograms: companion cumulative descriptor for _sum, or -1 */
	uint32_t n_buckets;    /* histograms: descriptor size */
	char **le;             /* histograms: n_buckets bound strings, the last "+Inf" */
	char **le_openmetrics; /* the same bounds in OpenMetrics' canonical float form */
};

/* All families of one schema, sorted by name. */
struct kvmstats_translation {
	struct kvmstats_family *families;
	size_t n_families;
	unsigned
		n_skipped; /* descriptors not exported: unsupported, unrepresentable or colliding */
	unsigned n_filtered; /* families left out because the caller's filter said so */
};

/*
 * A caller's choice of families: true keeps the family whose samples are
 * named metric ("kvm_vcpu_exits_total", "kvm_vcpu_halt_wait_seconds").
 */
typedef bool (*kvmstats_family_keep_fn)(const char *metric, void *userdata);

/*
 * Builds the families of a schema; its kind selects the kvm_vm_ or kvm_vcpu_
 * prefix. 0 or -ENOMEM / -EINVAL (unknown kind).
 */
int kvmstats_translate(const struct kvmstats_schema *s, struct kvmstats_translation **ret);

/*
 * kvmstats_translate() keeping only the families keep() accepts (keep may be
 * NULL: all). A histogram left out does not take its companion counter with
 * it: the counter is then exported on its own ("..._seconds_total") if keep()
 * accepts that name.
 */
int kvmstats_translate_filtered(const struct kvmstats_schema *s, kvmstats_family_keep_fn keep,
				void *userdata, struct kvmstats_translation **ret);

/* Frees a translation. Accepts NULL, returns NULL. */
struct kvmstats_translation *kvmstats_translation_free(struct kvmstats_translation *t);

/*
 * The <stat> part of a family name for a descriptor name: lower-cased,
 * [^a-z0-9_] mapped to '_', "_hist" dropped for histograms, a unit token
 * dropped where the unit suffix adds it back, then the unit suffix appended.
 * Returns the length or -ENOBUFS.
 */
int kvmstats_stat_name(const char *desc_name, unsigned type, unsigned unit, char *buf, size_t len);
