/* SPDX-License-Identifier: MIT */
/* procfs discovery of stats fds held by VMM processes (needs CAP_SYS_PTRACE). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "collector.h"
#include "expo/family.h"
#include "sources/procfs_quiet.h"

struct procfs_source {
	struct collector *collector;
	const char *proc_root; /* "/proc" */
	int epoll_fd;          /* new VMs' pidfds are added here */
	/* Processes to leave alone (hand-off peers: their fds come over the socket); may be NULL.
	 */
	bool (*skip_pid)(void *userdata, pid_t pid);
	void *skip_userdata;
	/*
	 * Asked now and then during a scan; true stops it with -EINTR, changing
	 * nothing it has not finished (a shutdown asked for during a long first
	 * scan). May be NULL.
	 */
	bool (*interrupted)(void *userdata);
	void *interrupted_userdata;
	unsigned generation;
	/* Processes as the last scan left them (procfs_quiet.h), read again only if they ran. */
	struct procfs_quiet_list quiet;
	bool warned_denied;
	bool warned_getfd;
	/* Self-metrics of the last scan; written and read under the collector's lock. */
	uint64_t scans;
	bool scan_ok;
	double scan_seconds;
};

/*
 * Scans every process for stats fds, adds new VMs and vCPUs, drops what
 * VMMs no longer hold. Runs on the main thread. 0, -EINTR (interrupted()
 * said so; VMs it did not reach are kept as they were), or -errno (no /proc).
 */
int procfs_scan(struct procfs_source *p);

/* Frees what the scans keep between them. */
void procfs_source_release(struct procfs_source *p);

/* Removes the VM watched by pidfd (its process exited); false if none matched. */
bool procfs_vm_exited(struct procfs_source *p, int pidfd);

/* Writes the kvmstats_exporter_procfs_* families (a family_writer_fn; userdata: the source). */
void procfs_write_metrics(void *userdata, struct family_writer *w);
