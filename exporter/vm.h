/* SPDX-License-Identifier: MIT */
/*
 * One observed VM: its identity (the labels of kvm_vm_info), the stats
 * files it holds (the VM's and one per vCPU) and how its last read went.
 * The collector owns the set of VMs; sources fill a VM in and hand it over.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kvmstats.h"
#include "translate.h"
#include "vcpu_thread.h"

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
	int target_fd;             /* the fd number in the VMM (procfs), -1 otherwise */
	bool read_ok;              /* the last scrape's read succeeded */
	struct vcpu_thread thread; /* the host thread running it, if known */
};

struct vm {
	char *name;              /* `vm` label, unique among tracked VMs */
	char *name_escaped;      /* name escaped for a label value, made once */
	size_t name_escaped_len; /* its length (collector_add_vm()) */
	char *uuid;              /* "" when unknown */
	char *vmm;               /* "qemu", "firecracker", ...; "" when unknown */
	char *kvm_id; /* id of the VM stats file ("kvm-1234"), or derived from a vCPU's */
	pid_t pid;    /* the process holding the fds; 0 for files */
	enum vm_source source;
	int pidfd;                   /* watched for exit; -1 when there is no process */
	int conn_fd;                 /* hand-off connection (not owned): hung up = gone; else -1 */
	char **label_names;          /* extra kvm_vm_info labels (hand-off), valid names */
	char **label_values_escaped; /* their values, escaped for a label value */
	size_t n_labels;
	struct kvmstats_file *vm_file; /* may be NULL (e.g. only vCPU fds are held) */
	int vm_target_fd;              /* fd number of vm_file in the VMM, or -1 */
	bool vm_read_ok;
	struct vm_vcpu *vcpus; /* sorted by vCPU index */
	size_t n_vcpus;
	bool exited;        /* its process is gone; removal is pending */
	bool ambiguous;     /* procfs: several VMs in one process (vCPUs skipped) */
	unsigned scan_seen; /* procfs: generation of the last scan that saw it */
};

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

/* The translation of a prepared file's schema (collector_prepare_file()). */
const struct kvmstats_translation *vm_file_translation(const struct kvmstats_file *f);
