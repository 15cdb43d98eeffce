/* SPDX-License-Identifier: MIT */
/*
 * The process_* families every client_golang exporter has (CPU time,
 * memory, fds and their limit, start time, network bytes), read from
 * /proc/self at each scrape, so that dashboards and alerts written for
 * node_exporter's self-monitoring work unchanged. Registered as an exporter
 * self-metric writer: --web.disable-exporter-metrics hides them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expo/family.h"

/* The /proc/<pid>/stat fields used here. */
struct proc_stat {
	uint64_t utime, stime; /* clock ticks */
	uint64_t starttime;    /* clock ticks after boot */
	uint64_t vsize;        /* bytes */
	uint64_t rss;          /* pages */
};

/* What does not change while the process runs, read once. */
struct process_metrics {
	long ticks_per_second;
	long page_size;
	uint64_t boot_time; /* seconds since the epoch, from /proc/stat btime */
	bool have_boot_time;
	const char *proc_self; /* "/proc/self"; tests point it elsewhere */
};

/* Fills pm for this process. 0, or -errno when sysconf or /proc/stat fails. */
int process_metrics_init(struct process_metrics *pm);

/* Parses a /proc/<pid>/stat line (the command may hold spaces and ')'). 0 or -EINVAL. */
int proc_stat_parse(const char *text, struct proc_stat *ret);

/* The "btime" of /proc/stat. 0 or -EINVAL. */
int proc_boot_time_parse(const char *text, uint64_t *ret);

/* InOctets and OutOctets of the IpExt lines of /proc/<pid>/net/netstat. 0 or -EINVAL. */
int proc_netstat_octets(const char *text, uint64_t *ret_in, uint64_t *ret_out);

/*
 * Spells ticks / per_second as an exact decimal ("12.34") when per_second
 * divides a power of ten up to 10^9, else to 9 significant digits. The length.
 */
size_t ticks_to_seconds(uint64_t ticks, long per_second, char *buf, size_t len);

/* A family_writer_fn (userdata: struct process_metrics *): the process_* families. */
void process_metrics_write(void *userdata, struct family_writer *w);
