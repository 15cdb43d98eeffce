/* SPDX-License-Identifier: MIT */
/* Command line: kingpin-style long flags, --no-<flag> for booleans, --help text. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector.h"
#include "log/log.h"
#include "vhost/config.h"

/* Where the hand-off socket listens unless --kvm.handoff-socket says otherwise. */
#define CLI_PROGRAM                "kvmstats_exporter"
#define CLI_DEFAULT_PORT           "9977"
#define CLI_DEFAULT_TELEMETRY_PATH "/metrics"
#define CLI_DEFAULT_HANDOFF_SOCKET "/run/kvmstats_exporter/handoff.sock"

struct options {
	char **listen; /* --web.listen-address, repeatable; default ":9977" */
	size_t n_listen;
	char *telemetry_path; /* --web.telemetry-path, default "/metrics" */
	bool systemd_socket;
	bool disable_exporter_metrics;
	/* --web.disable-exporter-metrics */ /* --web.systemd-socket, default off */
	bool once;                           /* --once */
	char **stats_files;                  /* --kvm.stats-file, repeatable */
	size_t n_stats_files;
	bool per_vcpu;        /* --kvm.per-vcpu, default off */
	char *stats_include;  /* --kvm.stats-include, a checked regex; default none */
	char *stats_exclude;  /* --kvm.stats-exclude, a checked regex; default none */
	bool procfs;          /* --kvm.procfs, default on */
	uint64_t rescan_usec; /* --kvm.rescan-interval, default 5s */
	bool canary;          /* --kvm.canary, default off */
	char *handoff_socket; /* --kvm.handoff-socket, default CLI_DEFAULT_HANDOFF_SOCKET; "" = off
			       */
	uint32_t *handoff_allow_uids; /* --kvm.handoff-allow-uid, repeatable; default 0 and euid */
	size_t n_handoff_allow_uids;
	uint32_t *handoff_allow_gids; /* --kvm.handoff-allow-gid, repeatable; default none */
	size_t n_handoff_allow_gids;
	unsigned handoff_max_connections;         /* --kvm.handoff-max-connections, default 256 */
	char *web_config_file;                    /* --web.config.file, default none */
	unsigned max_requests;                    /* --web.max-requests, default 40; 0 = no limit */
	enum log_level log_level;                 /* --log.level, default info */
	enum log_format log_format;               /* --log.format, default logfmt */
	struct vhost_proxy_config *vhost_proxies; /* --vhost.proxy, repeatable; default none */
	size_t n_vhost_proxies;
	enum vhost_policy vhost_policy; /* --vhost.policy, default observe */
	/*
	 * --[no-]collector.NAME, --collector.disable-defaults: the collectors
	 * (1u << enum collector_id) that run and may be asked for with
	 * collect[]; folded with the --kvm.* flags after parsing (procfs,
	 * handoff_socket, canary and disable_exporter_metrics agree with it).
	 */
	uint32_t collectors;
	uint32_t collectors_on, collectors_off; /* as given */
	bool collectors_disable_defaults;
};

/* The collectors on without --collector.* flags: all but the canary. */
#define CLI_DEFAULT_COLLECTORS                                                                     \
	((1u << COLLECTOR_PROCFS) | (1u << COLLECTOR_FILE) | (1u << COLLECTOR_HANDOFF) |           \
	 (1u << COLLECTOR_VHOST) | (1u << COLLECTOR_EXPORTER))

enum cli_result {
	CLI_RUN = 0, /* options parsed: run */
	CLI_EXIT_OK, /* --help or --version printed: exit 0 */
};

/*
 * Parses argv into *ret (defaults first; on error or --help *ret is left
 * releasable). Returns enum cli_result, or
 * -EINVAL after printing one line "kvmstats_exporter: <what was wrong>"
 * to stderr.
 */
int cli_parse(int argc, char **argv, struct options *ret);

/* Frees what cli_parse() allocated. */
void options_release(struct options *o);

/* Prints --help on stdout (cli_usage.c). */
void cli_print_usage(void);
