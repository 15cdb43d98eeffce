/* SPDX-License-Identifier: MIT */
/*
 * Descriptor -> Prometheus family translation (the contract in
 * docs/metrics.md). Done once per schema; scrapes only look values up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "help.h"
#include "macro.h"
#include "translate.h"

/* Longest family name we build: prefix + descriptor name + unit suffix. */
#define NAME_MAX_LEN (KVMSTATS_MAX_NAME_SIZE + 32)

static bool is_hist(unsigned type)
{
	return type == KVMSTATS_TYPE_LINEAR_HIST || type == KVMSTATS_TYPE_LOG_HIST;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static const char *unit_suffix(unsigned unit)
{
	switch (unit) {
	case KVMSTATS_UNIT_SECONDS:
		return "seconds";
	case KVMSTATS_UNIT_BYTES:
		return "bytes";
	case KVMSTATS_UNIT_CYCLES:
		return "cycles";
	default:
		return NULL;
	}
}

int kvmstats_stat_name(const char *desc_name, unsigned type, unsigned unit, char *buf, size_t len)
{
	static const char *const seconds_tokens[] = { "_ns", "_us", "_ms", "_seconds" };
	const char *suffix = unit_suffix(unit);
	size_t n = strlen(desc_name);
	int r;

	if (n + 1 > len)
		return -ENOBUFS;
	for (size_t i = 0; i < n; i++) {
		char c = desc_name[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			c = '_';
		buf[i] = c;
	}

	if (is_hist(type) && ends_with(buf, n, "_hist"))
		n -= strlen("_hist");

	/* Drop a unit token only where the suffix puts the base unit back. */
	if (unit == KVMSTATS_UNIT_SECONDS) {
		for (size_t i = 0; i < ELEMENTSOF(seconds_tokens); i++)
			if (ends_with(buf, n, seconds_tokens[i])) {
				n -= strlen(seconds_tokens[i]);
				break;
			}
	} else if (suffix) {
		char token[16];

		snprintf(token, sizeof(token), "_%s", suffix);
		if (ends_with(buf, n, token))
			n -= strlen(token);
	}

	if (suffix)
		r = snprintf(buf + n, len - n, "_%s", suffix);
	else
		r = snprintf(buf + n, len - n, "%s", "");
	if (r < 0 || (size_t)r >= len - n)
		return -ENOBUFS;
	return (int)n + r;
}

/* Whether the exporter can print this descriptor exactly. */
static bool representable(const struct kvmstats_desc *d)
{
	if (!d->supported)
		return false;
	if (d->exponent > KVMSTATS_SCALE_MAX_EXPONENT || d->exponent < -KVMSTATS_SCALE_MAX_EXPONENT)
		return false;
	if (!is_hist(d->type))
		return d->size == 1; /* arrays of scalars are not something the kernel makes */
	/* A log bucket bound is 2^k - 1: keep k within 128 bits. */
	if (d->type == KVMSTATS_TYPE_LOG_HIST && d->size > 128)
		return false;
	return d->size >= 1;
}

static void family_release(struct kvmstats_family *f)
{
	free(f->name);
	free(f->metric);
	free(f->help);
	for (uint32_t i = 0; f->le && i < f->n_buckets; i++)
		free(f->le[i]);
	free(f->le);
	for (uint32_t i = 0; f->le_openmetrics && i < f->n_buckets; i++)
		free(f->le_openmetrics[i]);
	free(f->le_openmetrics);
}

struct kvmstats_translation *kvmstats_translation_free(struct kvmstats_translation *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n_families; i++)
		family_release(&t->families[i]);
	free(t->families);
	free(t);
	return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct kvmstats_translation *, kvmstats_translation_free)

/* The inclusive upper bound of bucket i, as an integer in the descriptor's scale. */
static kvmstats_u128 bucket_bound(const struct kvmstats_desc *d, uint32_t i)
{
	if (d->type == KVMSTATS_TYPE_LINEAR_HIST)
		return (kvmstats_u128)(i + 1) * d->bucket_size - 1;
	return ((kvmstats_u128)1 << i) - 1; /* log: bucket 0 is {0}, bucket k ends at 2^k - 1 */
}

static int family_init(struct kvmstats_family *f, const struct kvmstats_desc *d, uint32_t index,
		       const char *prefix, bool vcpu)
{
	char name[NAME_MAX_LEN];
	size_t plen = strlen(prefix);
	int r;

	*f = (struct kvmstats_family){ .desc = index, .sum_desc = -1 };
	memcpy(name, prefix, plen);
	r = kvmstats_stat_name(d->name, d->type, d->unit, name + plen, sizeof(name) - plen);
	if (r < 0)
		return r;
	f->name = strdup(name);
	f->help = kvmstats_help_text(d->name, vcpu, d->type, d->unit, d->base, d->exponent);
	if (!f->name || !f->help)
		return -ENOMEM;
	f->unit = unit_suffix(d->unit);
	f->agg = d->type == KVMSTATS_TYPE_PEAK ? KVMSTATS_AGG_MAX : KVMSTATS_AGG_SUM;

	if (is_hist(d->type)) {
		f->type = KVMSTATS_METRIC_HISTOGRAM;
		f->n_buckets = d->size;
		f->le = calloc(d->size, sizeof(char *));
		if (!f->le)
			return -ENOMEM;
		for (uint32_t i = 0; i + 1 < d->size; i++) {
			char bound[KVMSTATS_SCALED_BUFSIZE];

			r = kvmstats_format_scaled(bound, sizeof(bound), bucket_bound(d, i),
						   kvmstats_desc_radix(d), d->exponent);
			if (r < 0)
				return r;
			f->le[i] = strdup(bound);
			if (!f->le[i])
				return -ENOMEM;
		}
		f->le[d->size - 1] = strdup("+Inf");
		if (!f->le[d->size - 1])
			return -ENOMEM;
		f->le_openmetrics = calloc(d->size, sizeof(char *));
		if (!f->le_openmetrics)
			return -ENOMEM;
		for (uint32_t i = 0; i < d->size; i++) {
			char bound[KVMSTATS_CANONICAL_BUFSIZE];

			r = kvmstats_format_canonical(bound, sizeof(bound), f->le[i]);
			if (r < 0)
				return r;
			f->le_openmetrics[i] = strdup(bound);
			if (!f->le_openmetrics[i])
				return -ENOMEM;
		}
	} else if (d->type == KVMSTATS_TYPE_CUMULATIVE && d->unit != KVMSTATS_UNIT_BOOLEAN) {
		f->type = KVMSTATS_METRIC_COUNTER;
	} else {
		f->type = KVMSTATS_METRIC_GAUGE;
	}
	return 0;
}

/* By name, then descriptor index, so that "the first descriptor wins" is well defined. */
static int family_cmp(const void *a, const void *b)
{
	const struct kvmstats_family *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	return r ? r : (x->desc > y->desc) - (x->desc < y->desc);
}

static int family_name_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct kvmstats_family *)elem)->name);
}

/* Whether family f writes a line (sample, HELP or TYPE) named `line`. */
static bool family_writes(const struct kvmstats_family *f, const char *line)
{
	static const char *const hist_suffixes[] = { "", "_bucket", "_sum", "_count" };
	size_t n = strlen(f->name);

	if (strncmp(line, f->name, n) != 0)
		return false;
	switch (f->type) {
	case KVMSTATS_METRIC_COUNTER:
		return strcmp(line + n, "_total") == 0;
	case KVMSTATS_METRIC_GAUGE:
		return line[n] == '\0';
	case KVMSTATS_METRIC_HISTOGRAM:
		for (size_t i = 0; i < ELEMENTSOF(hist_suffixes); i++)
			if (strcmp(line + n, hist_suffixes[i]) == 0)
				return true;
		return false;
	}
	return false;
}

/*
 * Different names can still print the same line: counter "foo" writes
 * foo_total, which a gauge "foo_total" writes too; histogram "x" writes
 * x_count. Prometheus rejects a whole scrape over such a clash, so the
 * descriptor with the higher index is dropped. families[] is sorted by name;
 * dropped[i] is set for each family to drop. Returns how many.
 */
static unsigned mark_line_clashes(const struct kvmstats_family *families, size_t n, bool *dropped)
{
	static const char *const suffixes[] = { "", "_total", "_bucket", "_sum", "_count" };
	unsigned count = 0;

	for (size_t i = 0; i < n; i++) {
		const struct kvmstats_family *f = &families[i];
		const char *lines[4];
		size_t n_lines = 0;
		char buf[NAME_MAX_LEN + 16];

		if (dropped[i])
			continue;
		if (f->type == KVMSTATS_METRIC_HISTOGRAM) {
			static const char *const hs[] = { "", "_bucket", "_sum", "_count" };

			for (size_t k = 0; k < ELEMENTSOF(hs); k++)
				lines[n_lines++] = hs[k];
		} else {
			lines[n_lines++] = f->type == KVMSTATS_METRIC_COUNTER ? "_total" : "";
		}

		for (size_t l = 0; l < n_lines && !dropped[i]; l++) {
			snprintf(buf, sizeof(buf), "%s%s", f->name, lines[l]);
			for (size_t k = 0; k < ELEMENTSOF(suffixes) && !dropped[i]; k++) {
				size_t blen = strlen(buf), slen = strlen(suffixes[k]);
				char stem[NAME_MAX_LEN + 16];
				const struct kvmstats_family *g;
				size_t gi;

				if (blen < slen || strcmp(buf + blen - slen, suffixes[k]) != 0)
					continue;
				memcpy(stem, buf, blen - slen);
				stem[blen - slen] = '\0';
				g = bsearch(stem, families, n, sizeof(*families),
					    family_name_key_cmp);
				if (!g || g == f)
					continue;
				gi = (size_t)(g - families);
				if (dropped[gi] || !family_writes(g, buf))
					continue;
				dropped[g->desc > f->desc ? gi : i] = true;
				count++;
			}
		}
	}
	return count;
}

/* keep() on the sample name of a counter family named name: 1, 0, or -ENOMEM. */
static int keep_counter(kvmstats_family_keep_fn keep, void *userdata, const char *name)
{
	_cleanup_free_ char *metric = NULL;

	if (asprintf(&metric, "%s_total", name) < 0)
		return -ENOMEM;
	return keep(metric, userdata);
}

int kvmstats_translate(const struct kvmstats_schema *s, struct kvmstats_translation **ret)
{
	return kvmstats_translate_filtered(s, NULL, NULL, ret);
}

int kvmstats_translate_filtered(const struct kvmstats_schema *s, kvmstats_family_keep_fn keep,
				void *userdata, struct kvmstats_translation **ret)
{
	_cleanup_(kvmstats_translation_freep) struct kvmstats_translation *t = NULL;
	const char *prefix;
	size_t n = 0;
	int r;

	if (s->kind == KVMSTATS_KIND_VM)
		prefix = "kvm_vm_";
	else if (s->kind == KVMSTATS_KIND_VCPU)
		prefix = "kvm_vcpu_";
	else
		return -EINVAL;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->families = calloc(s->num_desc ? s->num_desc : 1, sizeof(*t->families));
	if (!t->families)
		return -ENOMEM;

	for (uint32_t i = 0; i < s->num_desc; i++) {
		if (!representable(&s->descs[i])) {
			t->n_skipped++;
			continue;
		}
		t->n_families = n + 1; /* so that a failure frees this one too */
		r = family_init(&t->families[n], &s->descs[i], i, prefix,
				s->kind == KVMSTATS_KIND_VCPU);
		if (r < 0)
			return r;
		n++;
	}
	t->n_families = n;
	qsort(t->families, n, sizeof(*t->families), family_cmp);

	/*
	 * Equal names after sorting are adjacent. A histogram and a counter of
	 * the same unit and name are one family: the counter is the histogram's
	 * exact _sum. Any other clash keeps the first descriptor and drops the
	 * rest, counted.
	 */
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		struct kvmstats_family *f = &t->families[i];

		if (out > 0 && strcmp(t->families[out - 1].name, f->name) == 0) {
			struct kvmstats_family *prev = &t->families[out - 1];
			struct kvmstats_family *hist = NULL, *sum = NULL;

			if (prev->type == KVMSTATS_METRIC_HISTOGRAM &&
			    f->type == KVMSTATS_METRIC_COUNTER)
				hist = prev, sum = f;
			else if (f->type == KVMSTATS_METRIC_HISTOGRAM &&
				 prev->type == KVMSTATS_METRIC_COUNTER)
				hist = f, sum = prev;

			if (hist && hist->sum_desc < 0 &&
			    s->descs[hist->desc].unit == s->descs[sum->desc].unit) {
				/* The histogram filtered out, its exact sum wanted: keep the
				 * counter. */
				if (keep && !keep(hist->name, userdata)) {
					r = keep_counter(keep, userdata, sum->name);
					if (r < 0)
						return r;
					if (r > 0) {
						family_release(hist);
						t->n_filtered++;
						if (hist == prev)
							*prev = *f;
						continue;
					}
				}
				hist->sum_desc = (int32_t)sum->desc;
				if (hist == f) {
					family_release(prev);
					*prev = *f;
				} else {
					family_release(f);
				}
				continue;
			}
			family_release(f);
			t->n_skipped++;
			continue;
		}
		if (out != i)
			t->families[out] = *f;
		out++;
	}
	t->n_families = out;

	_cleanup_free_ bool *dropped = calloc(out ? out : 1, sizeof(bool));
	if (!dropped)
		return -ENOMEM;
	unsigned clashes = mark_line_clashes(t->families, out, dropped);
	out = 0;
	for (size_t i = 0; i < t->n_families; i++) {
		struct kvmstats_family *f = &t->families[i];

		if (dropped[i]) {
			family_release(f);
			continue;
		}
		if (asprintf(&f->metric, "%s%s", f->name,
			     f->type == KVMSTATS_METRIC_COUNTER ? "_total" : "") < 0) {
			f->metric = NULL;
			for (size_t j = i + 1; j < t->n_families; j++)
				family_release(&t->families[j]);
			family_release(f);
			t->n_families = out;
			return -ENOMEM;
		}
		if (keep && !keep(f->metric, userdata)) {
			family_release(f);
			t->n_filtered++;
			continue;
		}
		t->families[out++] = *f;
	}
	t->n_families = out;
	t->n_skipped += clashes;

	*ret = TAKE_PTR(t);
	return 0;
}
