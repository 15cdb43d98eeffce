/* SPDX-License-Identifier: MIT */
/* Naming a VM from its VMM's command line (QEMU -name/-uuid, Firecracker --id, ...). */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Longest VM name taken from a command line; longer ones fall back to pid-<pid>. */
#define VMNAME_MAX 253

struct vm_identity {
	char *name; /* NULL when the command line names no VM */
	char *uuid; /* NULL when unknown */
	char *vmm;  /* "qemu", "firecracker", "crosvm", "cloud-hypervisor", or argv[0]'s basename */
};

/*
 * Parses a NUL-separated command line (as in /proc/PID/cmdline) of len
 * bytes. 0 or -ENOMEM; fields that are not found stay NULL.
 */
int vmname_parse_cmdline(const char *cmdline, size_t len, struct vm_identity *ret);

/* Reads /proc/<pid>/cmdline (at most 64 KiB) and parses it. 0 or -errno. */
int vmname_from_pid(pid_t pid, struct vm_identity *ret);

/* Frees the fields. */
void vm_identity_release(struct vm_identity *id);
