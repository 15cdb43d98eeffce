/* SPDX-License-Identifier: MIT */
/*
 * The set of VMs being observed, and the scrape that turns them into an
 * exposition. Sources (procfs, hand-off, stats files, canary) add and remove
 * VMs from the main thread; HTTP threads scrape. One mutex orders the two.
 *
 * The collector writes the KVM families and its own self-metrics; every
 * other family comes from a writer that its owner registered (a source's
 * counters, the vhost-user tap's), called under the lock at each scrape.
 */
#pragma once

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "expo/exposition.h"
#include "expo/family.h"
#include "expo/outbuf.h"
#include "kvmstats.h"
#include "translate.h"
#include "vm.h"

/* Where a registered writer's families go in the exposition. */
enum collector_writer_kind {
	/*
	 * Exporter self-metrics (kvmstats_exporter_*): after the collector's
	 * own, before the scrape duration; left out with
	 * --web.disable-exporter-metrics.
	 */
	COLLECTOR_WRITER_SELF,
	/* Other families (vhost_user_*): after every self-metric. */
	COLLECTOR_WRITER_FAMILIES,
};

/*
 * What a scrape can be limited to (collect[]/exclude[], --collector.NAME):
 * the four sources by their vm_source bit, the tap's families, and the
 * exporter's own metrics. Registered writers belong to a collector by kind:
 * COLLECTOR_WRITER_SELF to "exporter", COLLECTOR_WRITER_FAMILIES to "vhost".
 */
enum collector_id {
	COLLECTOR_PROCFS = VM_SOURCE_PROCFS,
	COLLECTOR_FILE = VM_SOURCE_FILE,
	COLLECTOR_CANARY = VM_SOURCE_CANARY,
	COLLECTOR_HANDOFF = VM_SOURCE_HANDOFF,
	COLLECTOR_VHOST = VM_SOURCE__MAX,
	COLLECTOR_EXPORTER,
	COLLECTOR__MAX,
};
#define COLLECTORS_ALL ((1u << COLLECTOR__MAX) - 1)

/* "procfs", "file", "canary", "handoff", "vhost", "exporter", by enum collector_id. */
extern const char *const collector_names[COLLECTOR__MAX];

struct collector_writer {
	enum collector_writer_kind kind;
	family_writer_fn write;
	void *userdata;
};

struct collector {
	pthread_mutex_t lock;
	struct vm **vms;
	size_t n_vms;
	size_t cap_vms;
	struct kvmstats_schema_cache *schemas;
	bool per_vcpu;
	bool ready;
	/* --kvm.stats-include/-exclude: applied when a schema is first translated. */
	kvmstats_family_keep_fn family_keep;
	void *family_keep_userdata;

	/* Self-metrics; written under lock. */
	uint64_t read_errors;
	uint64_t scrapes;
	/* Fds found but refused (malformed, wrong kind); counted from any thread, without the lock.
	 */
	atomic_uint_fast64_t rejected_fds;
	/* --web.disable-exporter-metrics: only the per-source read metrics remain. */
	bool disable_exporter_metrics;
	/* 1u << enum collector_id: the enabled collectors; the current scrape's subset. */
	uint32_t collectors;
	uint32_t scrape_collectors;
	/* Per source, this scrape: time spent reading its files, and whether all reads succeeded.
	 */
	double source_read_seconds[VM_SOURCE__MAX];
	bool source_read_ok[VM_SOURCE__MAX];
	/* Called after every scrape, outside the lock (the canary's trigger). */
	void (*after_scrape)(void *userdata);
	void *after_scrape_userdata;
	struct pollfd *pollfds; /* reused by the scrape's liveness check */
	size_t n_pollfds;
	/* Registered writers, in the order they were registered. */
	struct collector_writer *writers;
	size_t n_writers;
};

/* Initialises an empty collector. 0 or -ENOMEM. */
int collector_init(struct collector *c, bool per_vcpu);
/* Frees every VM (closing its fds) and the collector's memory. */
void collector_release(struct collector *c);

/*
 * Interns the file's schema and builds its translation if it is new.
 * 0, -ENOMEM, or -EINVAL when the file's kind is unknown.
 */
int collector_prepare_file(struct collector *c, struct kvmstats_file *f);

/*
 * Takes ownership of vm, makes its name unique (suffixing "-<pid>" or "-N")
 * and escapes it (a name_escaped set by the caller is kept if the name is).
 * Call with the lock held. 0 or -ENOMEM (vm freed). Cannot fail when the
 * name is free, name_escaped is set and collector_reserve() made room.
 */
int collector_add_vm(struct collector *c, struct vm *vm);
/* Makes room for n more VMs, so that adding them needs no allocation. 0 or -ENOMEM. */
int collector_reserve(struct collector *c, size_t n);
/* Whether a VM of that name is tracked. */
bool collector_name_taken(const struct collector *c, const char *name);
/* The index of vm in c->vms, or -1. */
ssize_t collector_find_vm(const struct collector *c, const struct vm *vm);
/* Removes and frees VM i. Call with the lock held. */
void collector_remove_vm(struct collector *c, size_t i);

/* Counts a stats fd found but refused; any thread, lock held or not. */
void collector_count_rejected_fd(struct collector *c);

/*
 * Registers fn to write its families at every scrape, under the lock, in
 * registration order within its kind. 0 or -ENOMEM.
 */
int collector_add_writer(struct collector *c, enum collector_writer_kind kind, family_writer_fn fn,
			 void *userdata);
/* Unregisters what collector_add_writer() registered; takes the lock. */
void collector_remove_writer(struct collector *c, family_writer_fn fn, void *userdata);

/* Reads every file (one pread each) and writes the exposition in fmt; thread-safe. 0 or -errno. */
int collector_collect(struct collector *c, struct outbuf *out, enum exposition_format fmt);

/*
 * collector_collect() limited to the collectors in mask (1u << enum
 * collector_id, within c->collectors): only their VMs are read and written,
 * the tap's and the exporter's families only when named.
 */
int collector_collect_only(struct collector *c, struct outbuf *out, enum exposition_format fmt,
			   uint32_t mask);

/*
 * Writes the whole exposition from the values of the last reads: the KVM
 * families, the self-metrics (scrape duration measured from `started`, a
 * CLOCK_MONOTONIC time in seconds), the registered writers' families and
 * the end. Call with the lock held. 0 (a failed allocation shows in out->failed).
 */
int collector_write(struct collector *c, struct outbuf *out, enum exposition_format fmt,
		    double started);
