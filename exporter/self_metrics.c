/* SPDX-License-Identifier: MIT */
/* The exporter's own families (kvmstats_exporter_*; docs/metrics.md). */
#include <stdio.h>

#include "config.h"
#include "collector.h"
#include "expo/family.h"
#include "self_metrics.h"

/* Self-metric families: counters are named without "_total", as family_write_header() wants. */
#define GAUGE   FAMILY_GAUGE
#define COUNTER FAMILY_COUNTER

int self_metrics_write(struct outbuf *out, const struct collector *c, double scrape_seconds,
		       enum exposition_format fmt)
{
	size_t per_source[VM_SOURCE__MAX] = { 0 };
	size_t fds = 0, skipped = 0;

	for (size_t i = 0; i < c->n_vms; i++) {
		const struct vm *vm = c->vms[i];

		per_source[vm->source]++;
		fds += vm_n_files(vm);
		if (vm->vm_file)
			skipped += file_translation(vm->vm_file)->n_skipped;
		for (size_t j = 0; j < vm->n_vcpus; j++)
			skipped += file_translation(vm->vcpus[j].file)->n_skipped;
	}

	/* Kept even with --web.disable-exporter-metrics, like node_scrape_collector_*. */
	family_write_header(out, fmt, "kvmstats_exporter_collector_duration_seconds", GAUGE, "seconds",
		   "Time this scrape spent reading the stats files of each source.");
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++)
		outbuf_printf(out,
			      "kvmstats_exporter_collector_duration_seconds{collector=\"%s\"} %.6f\n",
			      vm_source_to_string(s), c->source_read_seconds[s]);
	family_write_header(out, fmt, "kvmstats_exporter_collector_success", GAUGE, NULL,
		   "Whether every stats file of each source read successfully in this scrape.");
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++)
		outbuf_printf(out, "kvmstats_exporter_collector_success{collector=\"%s\"} %d\n",
			      vm_source_to_string(s), c->source_read_ok[s] ? 1 : 0);
	if (c->disable_exporter_metrics)
		return 0;

	family_write_header(out, fmt, "kvmstats_exporter_build_info", GAUGE, NULL,
		   "Version and revision of the exporter; the value is always 1.");
	outbuf_puts(out, "kvmstats_exporter_build_info{version=\"" PROJECT_VERSION
			 "\",revision=\"" PROJECT_REVISION "\"} 1\n");

	family_write_header(out, fmt, "kvmstats_exporter_vms", GAUGE, NULL,
		   "VMs currently observed, by source.");
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++)
		outbuf_printf(out, "kvmstats_exporter_vms{source=\"%s\"} %zu\n",
			      vm_source_to_string(s), per_source[s]);

	family_write_header(out, fmt, "kvmstats_exporter_stats_fds", GAUGE, NULL,
		   "KVM stats files (fds or saved blobs) currently held.");
	outbuf_printf(out, "kvmstats_exporter_stats_fds %zu\n", fds);

	family_write_header(out, fmt, "kvmstats_exporter_skipped_stats", GAUGE, NULL,
		   "Descriptors in held files not exported: unknown type, unit or base, "
		   "unrepresentable scale, or a name clash.");
	outbuf_printf(out, "kvmstats_exporter_skipped_stats %zu\n", skipped);

	family_write_header(out, fmt, "kvmstats_exporter_read_errors", COUNTER, NULL,
		   "Reads of a stats file that failed; its series are left out of that scrape.");
	outbuf_printf(out, "kvmstats_exporter_read_errors_total %llu\n",
		      (unsigned long long)c->read_errors);

	family_write_header(out, fmt, "kvmstats_exporter_rejected_fds", COUNTER, NULL,
		   "Stats fds found but refused (malformed, or not the kind their link said).");
	outbuf_printf(out, "kvmstats_exporter_rejected_fds_total %llu\n",
		      (unsigned long long)c->rejected_fds);

	if (c->procfs_enabled) {
		family_write_header(out, fmt, "kvmstats_exporter_procfs_scan_duration_seconds", GAUGE,
			   "seconds", "Duration of the last /proc scan for stats fds.");
		outbuf_printf(out, "kvmstats_exporter_procfs_scan_duration_seconds %.6f\n",
			      c->procfs_scan_seconds);
		family_write_header(out, fmt, "kvmstats_exporter_procfs_scan_success", GAUGE, NULL,
			   "Whether the last /proc scan could read every process it needed "
			   "(0 without CAP_SYS_PTRACE).");
		outbuf_printf(out, "kvmstats_exporter_procfs_scan_success %d\n",
			      c->procfs_scan_ok ? 1 : 0);
		family_write_header(out, fmt, "kvmstats_exporter_procfs_scans", COUNTER, NULL,
			   "Scans of /proc for stats fds.");
		outbuf_printf(out, "kvmstats_exporter_procfs_scans_total %llu\n",
			      (unsigned long long)c->procfs_scans);
	}

	if (c->handoff_enabled) {
		family_write_header(out, fmt, "kvmstats_exporter_handoff_connections", GAUGE, NULL,
			   "Open connections on the hand-off socket.");
		outbuf_printf(out, "kvmstats_exporter_handoff_connections %zu\n",
			      c->handoff_connections);
		family_write_header(out, fmt, "kvmstats_exporter_handoff_messages", COUNTER, NULL,
			   "Messages received on hand-off connections, accepted or not.");
		outbuf_printf(out, "kvmstats_exporter_handoff_messages_total %llu\n",
			      (unsigned long long)c->handoff_messages);
		family_write_header(out, fmt, "kvmstats_exporter_handoff_rejected", COUNTER, NULL,
			   "Hand-off messages and connections refused, by reason.");
		for (unsigned r = 0; r < HANDOFF_REJECT__MAX; r++)
			outbuf_printf(out, "kvmstats_exporter_handoff_rejected_total{reason=\"%s\"} %llu\n",
				      handoff_reject_to_string(r),
				      (unsigned long long)c->handoff_rejected[r]);
	}

	if (c->canary_enabled) {
		family_write_header(out, fmt, "kvmstats_exporter_canary_up", GAUGE, NULL,
			   "Whether the canary VM's last burst of guest code ran as expected "
			   "(KVM works on this host).");
		outbuf_printf(out, "kvmstats_exporter_canary_up %d\n", c->canary_up ? 1 : 0);
		family_write_header(out, fmt, "kvmstats_exporter_canary_bursts", COUNTER, NULL,
			   "Bursts of guest code run by the canary VM.");
		outbuf_printf(out, "kvmstats_exporter_canary_bursts_total %llu\n",
			      (unsigned long long)c->canary_bursts);
	}

	family_write_header(out, fmt, "kvmstats_exporter_scrape_duration_seconds", GAUGE, "seconds",
		   "Time this scrape took to read every stats file and format the KVM metrics.");
	outbuf_printf(out, "kvmstats_exporter_scrape_duration_seconds %.6f\n", scrape_seconds);
	return 0;
}
