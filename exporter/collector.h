/* SPDX-License-Identifier: MIT */
/*
 * The set of VMs being observed, and the scrape that turns them into an
 * exposition. Sources (procfs, hand-off, stats files, canary) add and remove VMs from
 * the main thread; HTTP threads scrape. One mutex orders the two.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "expo/exposition.h"
#include "sources/handoff_msg.h"
#include "kvmstats.h"
#include "expo/outbuf.h"
#include "translate.h"

struct vhost_taps;

/* Where a VM was found; also its `source` label. */
enum vm_source {
	VM_SOURCE_PROCFS,
	VM_SOURCE_FILE,
	VM_SOURCE_CANARY,
	VM_SOURCE_HANDOFF,
	VM_SOURCE__MAX,
};

const char *vm_source_to_string(enum vm_source s);

struct vm_vcpu {
	struct kvmstats_file *file;
	int target_fd; /* the fd number in the VMM (procfs), -1 otherwise */
	bool read_ok;  /* the last scrape's read succeeded */
};

struct vm {
	char *name;          /* `vm` label, unique among tracked VMs */
	char *name_escaped;  /* name escaped for a label value, made once */
	char *uuid;          /* "" when unknown */
	char *vmm;           /* "qemu", "firecracker", ...; "" when unknown */
	char *kvm_id;        /* id of the VM stats file ("kvm-1234"), or derived from a vCPU's */
	pid_t pid;           /* the process holding the fds; 0 for files */
	enum vm_source source;
	int pidfd;           /* watched for exit; -1 when there is no process */
	int conn_fd;         /* hand-off connection (not owned): hung up = gone; else -1 */
	char **label_names;  /* extra kvm_vm_info labels (hand-off), valid names */
	char **label_values_escaped; /* their values, escaped for a label value */
	size_t n_labels;
	struct kvmstats_file *vm_file; /* may be NULL (e.g. only vCPU fds are held) */
	int vm_target_fd;    /* fd number of vm_file in the VMM, or -1 */
	bool vm_read_ok;
	struct vm_vcpu *vcpus; /* sorted by vCPU index */
	size_t n_vcpus;
	bool exited;         /* its process is gone; removal is pending */
	bool ambiguous;      /* procfs: several VMs in one process (vCPUs skipped) */
	unsigned scan_seen;  /* procfs: generation of the last scan that saw it */
};

struct collector {
	pthread_mutex_t lock;
	struct vm **vms;
	size_t n_vms;
	size_t cap_vms;
	struct kvmstats_schema_cache *schemas;
	bool per_vcpu;
	bool ready;

	/* Self-metrics; written under lock. */
	uint64_t read_errors;
	uint64_t rejected_fds;   /* fds found but refused (malformed, wrong kind) */
	uint64_t scrapes;
	/* --web.disable-exporter-metrics: only the per-source read metrics remain. */
	bool disable_exporter_metrics;
	/* Per source, this scrape: time spent reading its files, and whether all reads succeeded. */
	double source_read_seconds[VM_SOURCE__MAX];
	bool source_read_ok[VM_SOURCE__MAX];
	bool procfs_enabled;
	bool procfs_permission_denied;
	double procfs_scan_seconds;
	bool procfs_scan_ok;
	uint64_t procfs_scans;
	/* Called after every scrape, outside the lock (the canary's trigger). */
	void (*after_scrape)(void *userdata);
	void *after_scrape_userdata;
	struct pollfd *pollfds; /* reused by the scrape's liveness check */
	size_t n_pollfds;
	bool canary_enabled;
	bool canary_up;
	uint64_t canary_bursts;
	bool handoff_enabled;
	size_t handoff_connections;
	uint64_t handoff_messages;
	uint64_t handoff_rejected[HANDOFF_REJECT__MAX];
	struct vhost_taps *vhost_taps; /* not owned; its vhost_user_* families, or NULL */
};

/* Initialises an empty collector. 0 or -ENOMEM. */
int collector_init(struct collector *c, bool per_vcpu);
/* Frees every VM (closing its fds) and the collector's memory. */
void collector_release(struct collector *c);

/* Allocates an empty VM; the caller fills it and hands it to collector_add_vm(). */
struct vm *vm_new(enum vm_source source);
/* Frees a VM and closes its fds. Accepts NULL, returns NULL. */
struct vm *vm_free(struct vm *vm);
/* Adds a vCPU file to a VM (takes ownership on success). 0, -EEXIST (index taken), -ENOMEM. */
int vm_add_vcpu(struct vm *vm, struct kvmstats_file *f, int target_fd);
/* Closes and removes vCPU i. */
void vm_remove_vcpu(struct vm *vm, size_t i);
/* Total stats fds/files the VM holds. */
size_t vm_n_files(const struct vm *vm);

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

/* Reads every file (one pread each) and writes the exposition in fmt; thread-safe. 0 or -errno. */
int collector_collect(struct collector *c, struct outbuf *out, enum exposition_format fmt);

/* The translation of a prepared file's schema. */
const struct kvmstats_translation *file_translation(const struct kvmstats_file *f);
