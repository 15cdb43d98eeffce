/* SPDX-License-Identifier: MIT */
/*
 * Text exposition (format 0.0.4) of the KVM families and the exporter's own.
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
			 const struct series *s)
{
	const struct kvmstats_desc *d = &schema->descs[f->desc];

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
			put_labels(out, vm, vcpu, f->le[b]);
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

static void write_header(struct outbuf *out, const struct kvmstats_family *f)
{
	static const char *const type_names[] = {
		[KVMSTATS_METRIC_COUNTER] = "counter",
		[KVMSTATS_METRIC_GAUGE] = "gauge",
		[KVMSTATS_METRIC_HISTOGRAM] = "histogram",
	};

	outbuf_puts(out, "# HELP ");
	outbuf_puts(out, f->metric);
	outbuf_putc(out, ' ');
	escape_puts(out, f->help, ESCAPE_HELP_TEXT);
	outbuf_puts(out, "\n# TYPE ");
	outbuf_puts(out, f->metric);
	outbuf_putc(out, ' ');
	outbuf_puts(out, type_names[f->type]);
	outbuf_putc(out, '\n');
}

/* Writes every series of family f (the family of translation t) for every VM using t. */
static void write_family_series(struct outbuf *out, const struct kvmstats_family *f,
				const struct kvmstats_translation *t, struct vm *const *vms,
				size_t n_vms, bool vcpu_kind, bool per_vcpu)
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
			write_series(out, f, vm->vm_file->schema, vm, -1, &s);
			continue;
		}
		if (per_vcpu) {
			for (size_t j = 0; j < vm->n_vcpus; j++) {
				if (!vm->vcpus[j].read_ok)
					continue;
				s = (struct series){ .files = &vm->vcpus[j].file, .n = 1 };
				write_series(out, f, vm->vcpus[j].file->schema, vm,
					     vm->vcpus[j].file->vcpu, &s);
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
		write_series(out, f, vm->vcpus[0].file->schema, vm, -1, &s);
	}
}

/* Merges the translations of one kind (VM or vCPU) and writes their families. */
static int write_kind(struct outbuf *out, struct vm *const *vms, size_t n_vms, bool vcpu_kind,
		      bool per_vcpu)
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

		write_header(out, first);
		for (size_t i = 0; i < m.n; i++) {
			if (!current[i] || strcmp(current[i]->name, first->name) != 0)
				continue;
			cursor[i]++;
			/* Same name, other type (only between foreign saved files): keep the first. */
			if (current[i]->type != first->type)
				continue;
			write_family_series(out, current[i], t[i], vms, n_vms, vcpu_kind, per_vcpu);
		}
	}
	return 0;
}

static void write_info(struct outbuf *out, struct vm *const *vms, size_t n_vms)
{
	outbuf_puts(out, "# HELP kvm_vm_info Identity of each observed VM; the value is always 1.\n"
			 "# TYPE kvm_vm_info gauge\n");
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

int exposition_write_kvm(struct outbuf *out, struct vm *const *vms, size_t n_vms, bool per_vcpu)
{
	int r;

	if (n_vms > 0)
		write_info(out, vms, n_vms);
	r = write_kind(out, vms, n_vms, false, per_vcpu);
	if (r < 0)
		return r;
	return write_kind(out, vms, n_vms, true, per_vcpu);
}

static void write_gauge_header(struct outbuf *out, const char *name, const char *help,
			       const char *type)
{
	outbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int exposition_write_self(struct outbuf *out, const struct collector *c, double scrape_seconds)
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

	write_gauge_header(out, "kvmstats_exporter_build_info",
			   "Version and revision of the exporter; the value is always 1.", "gauge");
	outbuf_puts(out, "kvmstats_exporter_build_info{version=\"" PROJECT_VERSION
			 "\",revision=\"" PROJECT_REVISION "\"} 1\n");

	write_gauge_header(out, "kvmstats_exporter_vms", "VMs currently observed, by source.",
			   "gauge");
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++)
		outbuf_printf(out, "kvmstats_exporter_vms{source=\"%s\"} %zu\n",
			      vm_source_to_string(s), per_source[s]);

	write_gauge_header(out, "kvmstats_exporter_stats_fds",
			   "KVM stats files (fds or saved blobs) currently held.", "gauge");
	outbuf_printf(out, "kvmstats_exporter_stats_fds %zu\n", fds);

	write_gauge_header(out, "kvmstats_exporter_skipped_stats",
			   "Descriptors in held files not exported: unknown type, unit or base, "
			   "unrepresentable scale, or a name clash.",
			   "gauge");
	outbuf_printf(out, "kvmstats_exporter_skipped_stats %zu\n", skipped);

	write_gauge_header(out, "kvmstats_exporter_read_errors_total",
			   "Reads of a stats file that failed; its series are left out of that scrape.",
			   "counter");
	outbuf_printf(out, "kvmstats_exporter_read_errors_total %llu\n",
		      (unsigned long long)c->read_errors);

	write_gauge_header(out, "kvmstats_exporter_rejected_fds_total",
			   "Stats fds found but refused (malformed, or not the kind their link said).",
			   "counter");
	outbuf_printf(out, "kvmstats_exporter_rejected_fds_total %llu\n",
		      (unsigned long long)c->rejected_fds);

	if (c->procfs_enabled) {
		write_gauge_header(out, "kvmstats_exporter_procfs_scan_duration_seconds",
				   "Duration of the last /proc scan for stats fds.", "gauge");
		outbuf_printf(out, "kvmstats_exporter_procfs_scan_duration_seconds %.6f\n",
			      c->procfs_scan_seconds);
		write_gauge_header(out, "kvmstats_exporter_procfs_scan_success",
				   "Whether the last /proc scan could read every process it needed "
				   "(0 without CAP_SYS_PTRACE).",
				   "gauge");
		outbuf_printf(out, "kvmstats_exporter_procfs_scan_success %d\n",
			      c->procfs_scan_ok ? 1 : 0);
		write_gauge_header(out, "kvmstats_exporter_procfs_scans_total",
				   "Scans of /proc for stats fds.", "counter");
		outbuf_printf(out, "kvmstats_exporter_procfs_scans_total %llu\n",
			      (unsigned long long)c->procfs_scans);
	}

	if (c->handoff_enabled) {
		write_gauge_header(out, "kvmstats_exporter_handoff_connections",
				   "Open connections on the hand-off socket.", "gauge");
		outbuf_printf(out, "kvmstats_exporter_handoff_connections %zu\n",
			      c->handoff_connections);
		write_gauge_header(out, "kvmstats_exporter_handoff_messages_total",
				   "Messages received on hand-off connections, accepted or not.",
				   "counter");
		outbuf_printf(out, "kvmstats_exporter_handoff_messages_total %llu\n",
			      (unsigned long long)c->handoff_messages);
		write_gauge_header(out, "kvmstats_exporter_handoff_rejected_total",
				   "Hand-off messages and connections refused, by reason.", "counter");
		for (unsigned r = 0; r < HANDOFF_REJECT__MAX; r++)
			outbuf_printf(out, "kvmstats_exporter_handoff_rejected_total{reason=\"%s\"} %llu\n",
				      handoff_reject_to_string(r),
				      (unsigned long long)c->handoff_rejected[r]);
	}

	if (c->canary_enabled) {
		write_gauge_header(out, "kvmstats_exporter_canary_up",
				   "Whether the canary VM's last burst of guest code ran as expected "
				   "(KVM works on this host).",
				   "gauge");
		outbuf_printf(out, "kvmstats_exporter_canary_up %d\n", c->canary_up ? 1 : 0);
		write_gauge_header(out, "kvmstats_exporter_canary_bursts_total",
				   "Bursts of guest code run by the canary VM.", "counter");
		outbuf_printf(out, "kvmstats_exporter_canary_bursts_total %llu\n",
			      (unsigned long long)c->canary_bursts);
	}

	write_gauge_header(out, "kvmstats_exporter_scrape_duration_seconds",
			   "Time this scrape took to read every stats file and format the KVM "
			   "metrics.",
			   "gauge");
	outbuf_printf(out, "kvmstats_exporter_scrape_duration_seconds %.6f\n", scrape_seconds);
	return 0;
}
