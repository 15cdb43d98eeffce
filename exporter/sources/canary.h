/* SPDX-License-Identifier: MIT */
/*
 * The canary: one tiny VM of the exporter's own whose vCPU runs a short,
 * known burst of guest code on demand. It proves that KVM works on this host
 * and gives a fresh host live data to look at.
 */
#pragma once

#include <stdbool.h>

struct canary;

/* Port I/O exits the guest makes per burst (then one HLT exit). */
#define CANARY_IO_EXITS_PER_BURST 16

/*
 * Creates the VM and its vCPU. On failure returns -errno and writes one
 * sentence naming the step that failed into errbuf.
 */
int canary_new(struct canary **ret, char *errbuf, size_t errlen);

/* Runs one burst; 0 when the guest did exactly what it should, else -errno / -EPROTO. */
int canary_burst(struct canary *c);

/* New stats fds (owned by the caller) for the VM and the vCPU. 0 or -errno. */
int canary_stats_fds(struct canary *c, int *ret_vm_fd, int *ret_vcpu_fd);

/* Destroys the VM. Accepts NULL, returns NULL. */
struct canary *canary_free(struct canary *c);
