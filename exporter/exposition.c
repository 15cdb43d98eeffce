/* SPDX-License-Identifier: MIT */
/*
 * Exposition of the KVM families and the exporter's own, in text format 0.0.4
 * or OpenMetrics 1.0.0. The two differ only in metadata lines (family names,
 * UNIT, HELP escaping), the spelling of "le" and the final "# EOF"; samples
 * and values are the same bytes.
 *
 * Every family must be contiguous in the output, but VMs may come from
 * different kernels (saved files) and so have different schemas. The
 * translations of all schemas in use are sorted by family name; walking them
 * side by side like a merge yields each family once, and for each VM an O(1)
 * answer to "does your schema have this family". No allocation per series:
 * values go straight into the reused output buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "collector.h"
#include "escape.h"
#include "exposition.h"
#include "macro.h"

/* The distinct translations of one scrape with their merge cursors. */
struct merge {
	const struct kvmstats_translation **t;
	size_t *cursor;
	const struct kvmstats_family **current; /* family of t[i] at this step, or NULL */
	size_t n;
};

static int merge_add(struct merge *m, const struct kvmstats_translation *t, size_t cap)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->t[i] == t)
			return (int)i;
	if (m->n == cap)
		return -ENOBUFS;
	m->t[m->n] = t;
	m->cursor[m->n] = 0;
	return (int)m->n++;
}

/* The translation a VM uses for a kind: its VM file's, or its vCPUs' (all share one). */
static const struct kvmstats_translation *vm_translation(const struct vm *vm, bool vcpu)
{
	if (vcpu)
		return vm->n_vcpus > 0 && !vm->ambiguous ? file_translation(vm->vcpus[0].file) : NULL;
	return vm->vm_file ? file_translation(vm->vm_file) : NULL;
}

static void put_scaled(struct outbuf *out, kvmstats_u128 v, const struct kvmstats_desc *d)
{
	char buf[KVMSTATS_SCALED_BUFSIZE];
	int r;

	/* Most stats are plain counts: no scaling to do. */
	if (d->exponent == 0) {
		outbuf_put_u128(out, v);
		return;
	}
	r = kvmstats_format_scaled(buf, sizeof(buf), v, kvmstats_desc_radix(d),
				       d->exponent);

	/* Translation only keeps representable descriptors, so this cannot fail. */
	if (r < 0) {
		out->failed = true;
		return;
	}
	outbuf_put(out, buf, (size_t)r);
}

/* Writes `{vm="...",vcpu="N"` plus an optional extra label, then `}`. */
static void put_labels(struct outbuf *out, const struct vm *vm, int vcpu, const char *le)
{
	outbuf_puts(out, "{vm=\"");
	outbuf_puts(out, vm->name_escaped);
	outbuf_putc(out, '"');
	if (vcpu >= 0) {
		outbuf_puts(out, ",vcpu=\"");
		outbuf_put_u64(out, (uint64_t)vcpu);
		outbuf_putc(out, '"');
	}
	if (le) {
		outbuf_puts(out, ",le=\"");
		outbuf_puts(out, le);
		outbuf_putc(out, '"');
	}
	outbuf_puts(out, "} ");
}

/*
 * The files whose values make one series: the VM file, one vCPU, or every
 * vCPU of the VM (aggregate). NULL when any of them failed to read: a sum
 * over the vCPUs that did read would be a silently wrong number.
 */
struct series {
	struct kvmstats_file *const *files;
	size_t n;
	size_t stride; /* in bytes, to walk vm_vcpu arrays and plain pointers alike */
};

static struct kvmstats_file *series_file(const struct series *s, size_t i)
{
	return *(struct kvmstats_file *const *)((const char *)s->files + i * s->stride);
}

static kvmstats_u128 series_value(const struct series *s, const struct kvmstats_desc *d,
				  unsigned idx, enum kvmstats_aggregation agg)
{
	kvmstats_u128 v = 0;

	for (size_t i = 0; i < s->n; i++) {
		uint64_t x = kvmstats_file_value(series_file(s, i), d, idx);

		if (agg == KVMSTATS_AGG_MAX)
			v = x > v ? x : v;
		else
			v += x;
	}
	return v;
}

static void write_series(struct outbuf *out, const struct kvmstats_family *f,
			 const struct kvmstats_schema *schema, const struct vm *vm, int vcpu,
			 const struct series *s, enum exposition_format fmt)
{
	const struct kvmstats_desc *d = &schema->descs[f->desc];
	/* Both spellings are made once per schema; a scrape only picks one. */
	char *const *le = fmt == EXPOSITION_OPENMETRICS_100 ? f->le_openmetrics : f->le;

	switch (f->type) {
	case KVMSTATS_METRIC_COUNTER:
		outbuf_puts(out, f->name);
		outbuf_puts(out, "_total");
		put_labels(out, vm, vcpu, NULL);
		put_scaled(out, series_value(s, d, 0, f->agg), d);
		outbuf_putc(out, '\n');
		break;
	case KVMSTATS_METRIC_GAUGE:
		outbuf_puts(out, f->name);
		put_labels(out, vm, vcpu, NULL);
		put_scaled(out, series_value(s, d, 0, f->agg), d);
		outbuf_putc(out, '\n');
		break;
	case KVMSTATS_METRIC_HISTOGRAM: {
		kvmstats_u128 cumulative = 0;

		for (uint32_t b = 0; b < f->n_buckets; b++) {
			cumulative += series_value(s, d, b, KVMSTATS_AGG_SUM);
			outbuf_puts(out, f->name);
			outbuf_puts(out, "_bucket");
			put_labels(out, vm, vcpu, le[b]);
			outbuf_put_u128(out, cumulative);
			outbuf_putc(out, '\n');
		}
		if (f->sum_desc >= 0) {
			const struct kvmstats_desc *sd = &schema->descs[f->sum_desc];

			outbuf_puts(out, f->name);
			outbuf_puts(out, "_sum");
			put_labels(out, vm, vcpu, NULL);
			put_scaled(out, series_value(s, sd, 0, KVMSTATS_AGG_SUM), sd);
			outbuf_putc(out, '\n');
		}
		outbuf_puts(out, f->name);
		outbuf_puts(out, "_count");
		put_labels(out, vm, vcpu, NULL);
		outbuf_put_u128(out, cumulative);
		outbuf_putc(out, '\n');
		break;
	}
	}
}

/* Whether a family name ends in "_<unit>", as OpenMetrics requires of a UNIT line. */
static bool name_has_unit(const char *family, const char *unit)
{
	size_t n = strlen(family), u = strlen(unit);

	return n > u + 1 && family[n - u - 1] == '_' && strcmp(family + n - u, unit) == 0;
}

/*
 * The metadata of one family. Text 0.0.4 names a counter by its sample
 * (x_total) and has no units; OpenMetrics names the family (x), wants TYPE,
 * UNIT, HELP in that order, and escapes '"' in HELP too.
 */
static void put_header(struct outbuf *out, enum exposition_format fmt, const char *family,
		       enum kvmstats_metric_type type, const char *unit, const char *help)
{
	static const char *const type_names[] = {
		[KVMSTATS_METRIC_COUNTER] = "counter",
		[KVMSTATS_METRIC_GAUGE] = "gauge",
		[KVMSTATS_METRIC_HISTOGRAM] = "histogram",
	};
	const char *total = type == KVMSTATS_METRIC_COUNTER ? "_total" : "";

	if (fmt == EXPOSITION_OPENMETRICS_100) {
		outbuf_puts(out, "# TYPE ");
		outbuf_puts(out, family);
		outbuf_putc(out, ' ');
		outbuf_puts(out, type_names[type]);
		/* A unit that is not the name's suffix would fail the whole scrape. */
		if (unit && name_has_unit(family, unit)) {
			outbuf_puts(out, "\n# UNIT ");
			outbuf_puts(out, family);
			outbuf_putc(out, ' ');
			outbuf_puts(out, unit);
		}
		outbuf_puts(out, "\n# HELP ");
		outbuf_puts(out, family);
		outbuf_putc(out, ' ');
		escape_puts(out, help, ESCAPE_HELP_OPENMETRICS);
		outbuf_putc(out, '\n');
		return;
	}
	outbuf_puts(out, "# HELP ");
	outbuf_puts(out, family);
	outbuf_puts(out, total);
	outbuf_putc(out, ' ');
	escape_puts(out, help, ESCAPE_HELP_TEXT);
	outbuf_puts(out, "\n# TYPE ");
	outbuf_puts(out, family);
	outbuf_puts(out, total);
	outbuf_putc(out, ' ');
	outbuf_puts(out, type_names[type]);
	outbuf_putc(out, '\n');
}

/* Writes every series of family f (the family of translation t) for every VM using t. */
static void write_family_series(struct outbuf *out, const struct kvmstats_family *f,
				const struct kvmstats_translation *t, struct vm *const *vms,
				size_t n_vms, bool vcpu_kind, bool per_vcpu,
				enum exposition_format fmt)
{
	for (size_t i = 0; i < n_vms; i++) {
		struct vm *vm = vms[i];
		struct series s;

		if (vm_translation(vm, vcpu_kind) != t)
			continue;
		if (!vcpu_kind) {
			if (!vm->vm_read_ok)
				continue;
			s = (struct series){ .files = &vm->vm_file, .n = 1, .stride = 0 };
			write_series(out, f, vm->vm_file->schema, vm, -1, &s, fmt);
			continue;
		}
		if (per_vcpu) {
			for (size_t j = 0; j < vm->n_vcpus; j++) {
				if (!vm->vcpus[j].read_ok)
					continue;
				s = (struct series){ .files = &vm->vcpus[j].file, .n = 1 };
				write_series(out, f, vm->vcpus[j].file->schema, vm,
					     vm->vcpus[j].file->vcpu, &s, fmt);
			}
			continue;
		}
		bool all_ok = true;
		for (size_t j = 0; j < vm->n_vcpus; j++)
			all_ok = all_ok && vm->vcpus[j].read_ok;
		if (!all_ok)
			continue;
		s = (struct series){ .files = &vm->vcpus[0].file, .n = vm->n_vcpus,
				     .stride = sizeof(struct vm_vcpu) };
		write_series(out, f, vm->vcpus[0].file->schema, vm, -1, &s, fmt);
	}
}

/* Merges the translations of one kind (VM or vCPU) and writes their families. */
static int write_kind(struct outbuf *out, struct vm *const *vms, size_t n_vms, bool vcpu_kind,
		      bool per_vcpu, enum exposition_format fmt)
{
	/* Distinct schemas per kind are few (one per kernel); the bound is generous. */
	enum { MAX_SCHEMAS = 64 };
	const struct kvmstats_translation *t[MAX_SCHEMAS];
	const struct kvmstats_family *current[MAX_SCHEMAS];
	size_t cursor[MAX_SCHEMAS];
	struct merge m = { .t = t, .cursor = cursor, .current = current };

	for (size_t i = 0; i < n_vms; i++) {
		const struct kvmstats_translation *vt = vm_translation(vms[i], vcpu_kind);

		/* Beyond the bound (only foreign saved files get there) a VM is left out. */
		if (vt)
			(void)merge_add(&m, vt, MAX_SCHEMAS);
	}

	for (;;) {
		const struct kvmstats_family *first = NULL;

		for (size_t i = 0; i < m.n; i++) {
			current[i] = cursor[i] < t[i]->n_families ? &t[i]->families[cursor[i]]
								  : NULL;
			if (current[i] && (!first || strcmp(current[i]->name, first->name) < 0))
				first = current[i];
		}
		if (!first)
			break;

		put_header(out, fmt, first->name, first->type, first->unit, first->help);
		for (size_t i = 0; i < m.n; i++) {
			if (!current[i] || strcmp(current[i]->name, first->name) != 0)
				continue;
			cursor[i]++;
			/* Same name, other type (only between foreign saved files): keep the first. */
			if (current[i]->type != first->type)
				continue;
			write_family_series(out, current[i], t[i], vms, n_vms, vcpu_kind, per_vcpu,
					    fmt);
		}
	}
	return 0;
}

static void write_info(struct outbuf *out, struct vm *const *vms, size_t n_vms,
		       enum exposition_format fmt)
{
	/* A gauge in both formats (not an OpenMetrics info): one family name for both. */
	put_header(out, fmt, "kvm_vm_info", KVMSTATS_METRIC_GAUGE, NULL,
		   "Identity of each observed VM; the value is always 1.");
	for (size_t i = 0; i < n_vms; i++) {
		const struct vm *vm = vms[i];

		if (vm->exited)
			continue;
		outbuf_puts(out, "kvm_vm_info{vm=\"");
		outbuf_puts(out, vm->name_escaped);
		outbuf_puts(out, "\",uuid=\"");
		escape_puts(out, vm->uuid ? vm->uuid : "", ESCAPE_LABEL_VALUE);
		outbuf_puts(out, "\",pid=\"");
		if (vm->pid > 0)
			outbuf_put_u64(out, (uint64_t)vm->pid);
		outbuf_puts(out, "\",vmm=\"");
		escape_puts(out, vm->vmm ? vm->vmm : "", ESCAPE_LABEL_VALUE);
		outbuf_puts(out, "\",kvm_id=\"");
		escape_puts(out, vm->kvm_id ? vm->kvm_id : "", ESCAPE_LABEL_VALUE);
		outbuf_puts(out, "\",source=\"");
		outbuf_puts(out, vm_source_to_string(vm->source));
		outbuf_putc(out, '"');
		/* Hand-off labels: names validated, values escaped when registered. */
		for (size_t j = 0; j < vm->n_labels; j++) {
			outbuf_putc(out, ',');
			outbuf_puts(out, vm->label_names[j]);
			outbuf_puts(out, "=\"");
			outbuf_puts(out, vm->label_values_escaped[j]);
			outbuf_putc(out, '"');
		}
		outbuf_puts(out, "} 1\n");
	}
}

const char *exposition_content_type(enum exposition_format fmt)
{
	return fmt == EXPOSITION_OPENMETRICS_100
		       ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
		       : "text/plain; version=0.0.4; charset=utf-8";
}

int exposition_write_kvm(struct outbuf *out, struct vm *const *vms, size_t n_vms, bool per_vcpu,
			 enum exposition_format fmt)
{
	int r;

	if (n_vms > 0)
		write_info(out, vms, n_vms, fmt);
	r = write_kind(out, vms, n_vms, false, per_vcpu, fmt);
	if (r < 0)
		return r;
	return write_kind(out, vms, n_vms, true, per_vcpu, fmt);
}

void exposition_write_end(struct outbuf *out, enum exposition_format fmt)
{
	if (fmt == EXPOSITION_OPENMETRICS_100)
		outbuf_puts(out, "# EOF\n");
}

/* Self-metric families: counters are named without "_total", as put_header() wants. */
#define GAUGE   KVMSTATS_METRIC_GAUGE
#define COUNTER KVMSTATS_METRIC_COUNTER

int exposition_write_self(struct outbuf *out, const struct collector *c, double scrape_seconds,
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
	put_header(out, fmt, "kvmstats_exporter_collector_duration_seconds", GAUGE, "seconds",
		   "Time this scrape spent reading the stats files of each source.");
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++)
		outbuf_printf(out,
			      "kvmstats_exporter_collector_duration_seconds{collector=\"%s\"} %.6f\n",
			      vm_source_to_string(s), c->source_read_seconds[s]);
	put_header(out, fmt, "kvmstats_exporter_collector_success", GAUGE, NULL,
		   "Whether every stats file of each source read successfully in this scrape.");
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++)
		outbuf_printf(out, "kvmstats_exporter_collector_success{collector=\"%s\"} %d\n",
			      vm_source_to_string(s), c->source_read_ok[s] ? 1 : 0);
	if (c->disable_exporter_metrics)
		return 0;

	put_header(out, fmt, "kvmstats_exporter_build_info", GAUGE, NULL,
		   "Version and revision of the exporter; the value is always 1.");
	outbuf_puts(out, "kvmstats_exporter_build_info{version=\"" PROJECT_VERSION
			 "\",revision=\"" PROJECT_REVISION "\"} 1\n");

	put_header(out, fmt, "kvmstats_exporter_vms", GAUGE, NULL,
		   "VMs currently observed, by source.");
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++)
		outbuf_printf(out, "kvmstats_exporter_vms{source=\"%s\"} %zu\n",
			      vm_source_to_string(s), per_source[s]);

	put_header(out, fmt, "kvmstats_exporter_stats_fds", GAUGE, NULL,
		   "KVM stats files (fds or saved blobs) currently held.");
	outbuf_printf(out, "kvmstats_exporter_stats_fds %zu\n", fds);

	put_header(out, fmt, "kvmstats_exporter_skipped_stats", GAUGE, NULL,
		   "Descriptors in held files not exported: unknown type, unit or base, "
		   "unrepresentable scale, or a name clash.");
	outbuf_printf(out, "kvmstats_exporter_skipped_stats %zu\n", skipped);

	put_header(out, fmt, "kvmstats_exporter_read_errors", COUNTER, NULL,
		   "Reads of a stats file that failed; its series are left out of that scrape.");
	outbuf_printf(out, "kvmstats_exporter_read_errors_total %llu\n",
		      (unsigned long long)c->read_errors);

	put_header(out, fmt, "kvmstats_exporter_rejected_fds", COUNTER, NULL,
		   "Stats fds found but refused (malformed, or not the kind their link said).");
	outbuf_printf(out, "kvmstats_exporter_rejected_fds_total %llu\n",
		      (unsigned long long)c->rejected_fds);

	if (c->procfs_enabled) {
		put_header(out, fmt, "kvmstats_exporter_procfs_scan_duration_seconds", GAUGE,
			   "seconds", "Duration of the last /proc scan for stats fds.");
		outbuf_printf(out, "kvmstats_exporter_procfs_scan_duration_seconds %.6f\n",
			      c->procfs_scan_seconds);
		put_header(out, fmt, "kvmstats_exporter_procfs_scan_success", GAUGE, NULL,
			   "Whether the last /proc scan could read every process it needed "
			   "(0 without CAP_SYS_PTRACE).");
		outbuf_printf(out, "kvmstats_exporter_procfs_scan_success %d\n",
			      c->procfs_scan_ok ? 1 : 0);
		put_header(out, fmt, "kvmstats_exporter_procfs_scans", COUNTER, NULL,
			   "Scans of /proc for stats fds.");
		outbuf_printf(out, "kvmstats_exporter_procfs_scans_total %llu\n",
			      (unsigned long long)c->procfs_scans);
	}

	if (c->handoff_enabled) {
		put_header(out, fmt, "kvmstats_exporter_handoff_connections", GAUGE, NULL,
			   "Open connections on the hand-off socket.");
		outbuf_printf(out, "kvmstats_exporter_handoff_connections %zu\n",
			      c->handoff_connections);
		put_header(out, fmt, "kvmstats_exporter_handoff_messages", COUNTER, NULL,
			   "Messages received on hand-off connections, accepted or not.");
		outbuf_printf(out, "kvmstats_exporter_handoff_messages_total %llu\n",
			      (unsigned long long)c->handoff_messages);
		put_header(out, fmt, "kvmstats_exporter_handoff_rejected", COUNTER, NULL,
			   "Hand-off messages and connections refused, by reason.");
		for (unsigned r = 0; r < HANDOFF_REJECT__MAX; r++)
			outbuf_printf(out, "kvmstats_exporter_handoff_rejected_total{reason=\"%s\"} %llu\n",
				      handoff_reject_to_string(r),
				      (unsigned long long)c->handoff_rejected[r]);
	}

	if (c->canary_enabled) {
		put_header(out, fmt, "kvmstats_exporter_canary_up", GAUGE, NULL,
			   "Whether the canary VM's last burst of guest code ran as expected "
			   "(KVM works on this host).");
		outbuf_printf(out, "kvmstats_exporter_canary_up %d\n", c->canary_up ? 1 : 0);
		put_header(out, fmt, "kvmstats_exporter_canary_bursts", COUNTER, NULL,
			   "Bursts of guest code run by the canary VM.");
		outbuf_printf(out, "kvmstats_exporter_canary_bursts_total %llu\n",
			      (unsigned long long)c->canary_bursts);
	}

	put_header(out, fmt, "kvmstats_exporter_scrape_duration_seconds", GAUGE, "seconds",
		   "Time this scrape took to read every stats file and format the KVM metrics.");
	outbuf_printf(out, "kvmstats_exporter_scrape_duration_seconds %.6f\n", scrape_seconds);
	return 0;
}
