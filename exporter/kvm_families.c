/* SPDX-License-Identifier: MIT */
/*
 * Exposition of the KVM families (kvm_vm_info, kvm_vm_*, kvm_vcpu_*), in text
 * format 0.0.4 or OpenMetrics 1.0.0. The two differ only in metadata lines (family names,
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

#include "expo/escape.h"
#include "expo/family.h"
#include "kvm_families.h"
#include "macro.h"
#include "vm.h"

_Static_assert((int)KVMSTATS_METRIC_COUNTER == (int)FAMILY_COUNTER &&
		       (int)KVMSTATS_METRIC_GAUGE == (int)FAMILY_GAUGE &&
		       (int)KVMSTATS_METRIC_HISTOGRAM == (int)FAMILY_HISTOGRAM,
	       "a translation's metric type is a family type");

static enum family_type family_type_of(enum kvmstats_metric_type t)
{
	return (enum family_type)t;
}

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
		return vm->n_vcpus > 0 && !vm->ambiguous ? vm_file_translation(vm->vcpus[0].file)
							 : NULL;
	return vm->vm_file ? vm_file_translation(vm->vm_file) : NULL;
}

/* Ends a sample with v times the descriptor's scale, as an exact decimal. */
static void value_scaled(struct family_writer *w, kvmstats_u128 v, const struct kvmstats_desc *d)
{
	char buf[KVMSTATS_SCALED_BUFSIZE];
	int r;

	/* Most stats are plain counts: no scaling to do. */
	if (d->exponent == 0) {
		family_value_u128(w, v);
		return;
	}
	r = kvmstats_format_scaled(buf, sizeof(buf), v, kvmstats_desc_radix(d), d->exponent);

	/* Translation only keeps representable descriptors, so this cannot fail. */
	if (r < 0) {
		w->out->failed = true;
		return;
	}
	family_value_text(w, buf, (size_t)r);
}

/* The labels of a series: `{vm="...",vcpu="N"` plus an optional le; the value follows. */
static void series_labels(struct family_writer *w, const struct vm *vm, int vcpu, const char *le)
{
	family_label_escaped_n(w, "vm", vm->name_escaped, vm->name_escaped_len);
	if (vcpu >= 0)
		family_label_u64(w, "vcpu", (uint64_t)vcpu);
	if (le)
		family_label_escaped(w, "le", le);
}

/* A sample's name; the suffix is a literal, so its length is a constant. */
#define SAMPLE(w, suffix) family_sample_n(w, suffix, sizeof(suffix) - 1)

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

static void write_series(struct family_writer *w, const struct kvmstats_family *f,
			 const struct kvmstats_schema *schema, const struct vm *vm, int vcpu,
			 const struct series *s)
{
	const struct kvmstats_desc *d = &schema->descs[f->desc];
	/* Both spellings are made once per schema; a scrape only picks one. */
	char *const *le = w->fmt == EXPOSITION_OPENMETRICS_100 ? f->le_openmetrics : f->le;

	switch (f->type) {
	case KVMSTATS_METRIC_COUNTER:
	case KVMSTATS_METRIC_GAUGE:
		family_sample(w, NULL);
		series_labels(w, vm, vcpu, NULL);
		value_scaled(w, series_value(s, d, 0, f->agg), d);
		break;
	case KVMSTATS_METRIC_HISTOGRAM: {
		kvmstats_u128 cumulative = 0;

		for (uint32_t b = 0; b < f->n_buckets; b++) {
			cumulative += series_value(s, d, b, KVMSTATS_AGG_SUM);
			SAMPLE(w, "_bucket");
			series_labels(w, vm, vcpu, le[b]);
			family_value_u128(w, cumulative);
		}
		if (f->sum_desc >= 0) {
			const struct kvmstats_desc *sd = &schema->descs[f->sum_desc];

			SAMPLE(w, "_sum");
			series_labels(w, vm, vcpu, NULL);
			value_scaled(w, series_value(s, sd, 0, KVMSTATS_AGG_SUM), sd);
		}
		SAMPLE(w, "_count");
		series_labels(w, vm, vcpu, NULL);
		family_value_u128(w, cumulative);
		break;
	}
	}
}

/* Writes every series of family f (the family of translation t) for every VM using t. */
static void write_family_series(struct family_writer *w, const struct kvmstats_family *f,
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
			write_series(w, f, vm->vm_file->schema, vm, -1, &s);
			continue;
		}
		if (per_vcpu) {
			for (size_t j = 0; j < vm->n_vcpus; j++) {
				if (!vm->vcpus[j].read_ok)
					continue;
				s = (struct series){ .files = &vm->vcpus[j].file, .n = 1 };
				write_series(w, f, vm->vcpus[j].file->schema, vm,
					     vm->vcpus[j].file->vcpu, &s);
			}
			continue;
		}
		bool all_ok = true;
		for (size_t j = 0; j < vm->n_vcpus; j++)
			all_ok = all_ok && vm->vcpus[j].read_ok;
		if (!all_ok)
			continue;
		s = (struct series){ .files = &vm->vcpus[0].file,
				     .n = vm->n_vcpus,
				     .stride = sizeof(struct vm_vcpu) };
		write_series(w, f, vm->vcpus[0].file->schema, vm, -1, &s);
	}
}

/* Merges the translations of one kind (VM or vCPU) and writes their families. */
static void write_kind(struct family_writer *w, struct vm *const *vms, size_t n_vms, bool vcpu_kind,
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
			current[i] =
				cursor[i] < t[i]->n_families ? &t[i]->families[cursor[i]] : NULL;
			if (current[i] && (!first || strcmp(current[i]->name, first->name) < 0))
				first = current[i];
		}
		if (!first)
			break;

		family_begin(w, first->name, family_type_of(first->type), first->unit, first->help);
		for (size_t i = 0; i < m.n; i++) {
			if (!current[i] || strcmp(current[i]->name, first->name) != 0)
				continue;
			cursor[i]++;
			/* Same name, other type (only between foreign saved files): keep the first.
			 */
			if (current[i]->type != first->type)
				continue;
			write_family_series(w, current[i], t[i], vms, n_vms, vcpu_kind, per_vcpu);
		}
	}
}

static void write_info(struct family_writer *w, struct vm *const *vms, size_t n_vms)
{
	/* A gauge in both formats (not an OpenMetrics info): one family name for both. */
	family_begin(w, "kvm_vm_info", FAMILY_GAUGE, NULL,
		     "Identity of each observed VM; the value is always 1.");
	for (size_t i = 0; i < n_vms; i++) {
		const struct vm *vm = vms[i];

		if (vm->exited)
			continue;
		/* What is not known is left out: an empty label is no label, only noise in joins.
		 */
		family_sample(w, NULL);
		family_label_escaped(w, "vm", vm->name_escaped);
		if (vm->uuid && *vm->uuid)
			family_label(w, "uuid", vm->uuid);
		if (vm->pid > 0)
			family_label_u64(w, "pid", (uint64_t)vm->pid);
		if (vm->vmm && *vm->vmm)
			family_label(w, "vmm", vm->vmm);
		if (vm->kvm_id && *vm->kvm_id)
			family_label(w, "kvm_id", vm->kvm_id);
		family_label_escaped(w, "source", vm_source_to_string(vm->source));
		/* Hand-off labels: names validated, values escaped when registered. */
		for (size_t j = 0; j < vm->n_labels; j++)
			if (vm->label_values_escaped[j][0])
				family_label_escaped(w, vm->label_names[j],
						     vm->label_values_escaped[j]);
		family_value_u64(w, 1);
	}
}

void kvm_families_write(struct family_writer *w, struct vm *const *vms, size_t n_vms, bool per_vcpu)
{
	if (n_vms > 0)
		write_info(w, vms, n_vms);
	write_kind(w, vms, n_vms, false, per_vcpu);
	write_kind(w, vms, n_vms, true, per_vcpu);
}
