/* SPDX-License-Identifier: MIT */
/*
 * Any bytes, as a saved stats file: the reader either rejects them with a
 * rule, or accepts a file whose every descriptor lies inside the data it
 * read; the translation of an accepted schema then holds the contract
 * (sorted unique valid names, bucket bounds increasing and ending at +Inf,
 * every descriptor accounted for) and every value formats exactly.
 *
 * Build with FUZZ_STRICT_NAMES defined to also require that no two families
 * expose the same sample name (a counter "foo" and a gauge "foo_total" do).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kvmstats.h"
#include "scale.h"
#include "translate.h"

static bool metric_name_valid(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* Compares two plain non-negative decimals ("12", "0.5") numerically. */
static int decimal_cmp(const char *a, const char *b)
{
	size_t ia = strcspn(a, "."), ib = strcspn(b, ".");
	int r;

	if (ia != ib)
		return ia < ib ? -1 : 1;
	r = strncmp(a, b, ia);
	if (r != 0)
		return r;
	a += ia + (a[ia] == '.');
	b += ib + (b[ib] == '.');
	for (; *a || *b; a++, b++) {
		char x = *a ? *a : '0', y = *b ? *b : '0';

		if (x != y)
			return x < y ? -1 : 1;
		if (!*a || !*b) {
			/* The rest of the longer one decides; it has no trailing zeros. */
			return *a ? 1 : -1;
		}
	}
	return 0;
}

static void check_decimal(const char *s)
{
	bool point = false;

	CHECK(*s);
	CHECK(!(s[0] == '0' && s[1] && s[1] != '.'));
	for (const char *p = s; *p; p++) {
		if (*p == '.') {
			CHECK(!point && p > s && p[1]);
			point = true;
			continue;
		}
		CHECK(*p >= '0' && *p <= '9');
	}
	if (point)
		CHECK(s[strlen(s) - 1] != '0');
}

static void format_scaled(kvmstats_u128 v, const struct kvmstats_desc *d)
{
	char buf[KVMSTATS_SCALED_BUFSIZE];
	int r = kvmstats_format_scaled(buf, sizeof(buf), v, kvmstats_desc_radix(d), d->exponent);

	/* The translation keeps only descriptors that print exactly. */
	CHECK(r > 0 && (size_t)r == strlen(buf));
	check_decimal(buf);
}

static void check_family(const struct kvmstats_file *f, const struct kvmstats_family *fam)
{
	const struct kvmstats_schema *s = f->schema;
	const struct kvmstats_desc *d;
	char buf[KVMSTATS_SCALED_BUFSIZE];

	CHECK(fam->desc < s->num_desc);
	d = &s->descs[fam->desc];
	CHECK(d->supported);
	CHECK(metric_name_valid(fam->name));
	CHECK(strncmp(fam->name, s->kind == KVMSTATS_KIND_VCPU ? "kvm_vcpu_" : "kvm_vm_",
		      s->kind == KVMSTATS_KIND_VCPU ? 9 : 7) == 0);
	CHECK(fam->help && fam->help[0]);
	CHECK(fam->agg == (d->type == KVMSTATS_TYPE_PEAK ? KVMSTATS_AGG_MAX : KVMSTATS_AGG_SUM));

	if (fam->type != KVMSTATS_METRIC_HISTOGRAM) {
		CHECK(d->type != KVMSTATS_TYPE_LINEAR_HIST && d->type != KVMSTATS_TYPE_LOG_HIST);
		CHECK(fam->sum_desc == -1 && fam->n_buckets == 0 && !fam->le);
		CHECK(d->size == 1);
		format_scaled(kvmstats_file_value(f, d, 0), d);
		/* Two vCPUs' worth, as the aggregate sums them. */
		format_scaled((kvmstats_u128)kvmstats_file_value(f, d, 0) * 2, d);
		if (fam->type == KVMSTATS_METRIC_COUNTER)
			CHECK(d->type == KVMSTATS_TYPE_CUMULATIVE);
		return;
	}

	CHECK(d->type == KVMSTATS_TYPE_LINEAR_HIST || d->type == KVMSTATS_TYPE_LOG_HIST);
	CHECK(fam->n_buckets == d->size && fam->n_buckets >= 1);
	CHECK(strcmp(fam->le[fam->n_buckets - 1], "+Inf") == 0);
	for (uint32_t i = 0; i + 1 < fam->n_buckets; i++) {
		check_decimal(fam->le[i]);
		if (i > 0)
			CHECK(decimal_cmp(fam->le[i - 1], fam->le[i]) < 0);
	}

	kvmstats_u128 cumulative = 0;
	for (uint32_t b = 0; b < fam->n_buckets; b++) {
		cumulative += kvmstats_file_value(f, d, b);
		CHECK(kvmstats_format_u128(buf, sizeof(buf), cumulative) > 0);
	}
	if (fam->sum_desc >= 0) {
		const struct kvmstats_desc *sd;

		CHECK((uint32_t)fam->sum_desc < s->num_desc);
		sd = &s->descs[fam->sum_desc];
		CHECK(sd->supported && sd->type == KVMSTATS_TYPE_CUMULATIVE && sd->size == 1);
		CHECK(sd->unit == d->unit);
		format_scaled(kvmstats_file_value(f, sd, 0), sd);
	}
}

#ifdef FUZZ_STRICT_NAMES
/* Every sample name a family writes, for the duplicate check. */
#define EXPOSED_MAX (KVMSTATS_MAX_NAME_SIZE + 64)

static size_t exposed_names(const struct kvmstats_family *fam, char out[4][EXPOSED_MAX])
{
	static const char *const hist[] = { "", "_bucket", "_sum", "_count" };

	if (fam->type == KVMSTATS_METRIC_COUNTER) {
		snprintf(out[0], sizeof(out[0]), "%s_total", fam->name);
		return 1;
	}
	if (fam->type == KVMSTATS_METRIC_GAUGE) {
		snprintf(out[0], sizeof(out[0]), "%s", fam->name);
		return 1;
	}
	for (size_t i = 0; i < 4; i++)
		snprintf(out[i], sizeof(out[i]), "%s%s", fam->name, hist[i]);
	return 4;
}

static void check_exposed_unique(const struct kvmstats_translation *t)
{
	static char a[4][EXPOSED_MAX], b[4][EXPOSED_MAX];

	for (size_t i = 0; i < t->n_families; i++)
		for (size_t j = i + 1; j < t->n_families; j++) {
			size_t na = exposed_names(&t->families[i], a);
			size_t nb = exposed_names(&t->families[j], b);

			for (size_t x = 0; x < na; x++)
				for (size_t y = 0; y < nb; y++)
					CHECK(strcmp(a[x], b[y]) != 0);
		}
}
#endif

static void check_translation(struct kvmstats_file *f)
{
	const struct kvmstats_schema *s = f->schema;
	struct kvmstats_translation *t = NULL;
	size_t merged = 0;
	int r;

	r = kvmstats_translate(s, &t);
	if (r == -ENOMEM)
		return;
	CHECK(r == 0 && t);
	for (size_t i = 0; i < t->n_families; i++) {
		check_family(f, &t->families[i]);
		if (i > 0)
			CHECK(strcmp(t->families[i - 1].name, t->families[i].name) < 0);
		if (t->families[i].sum_desc >= 0)
			merged++;
	}
	/* Every descriptor is a family, a histogram's sum, or counted as skipped. */
	CHECK(t->n_families + merged + t->n_skipped == s->num_desc);
	CHECK(t->n_skipped >= s->n_unsupported);
#ifdef FUZZ_STRICT_NAMES
	check_exposed_unique(t);
#endif
	kvmstats_translation_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kvmstats_file *f = NULL, *g = NULL;
	struct kvmstats_error err;
	char msg[512];
	unsigned n_unsupported = 0;
	int r;

	r = kvmstats_file_open_blob(data, size, &f, &err);
	if (r < 0) {
		CHECK(!f);
		CHECK(r == -EBADMSG || r == -ENOMEM || (r == -EINVAL && !data));
		if (r == -EBADMSG) {
			CHECK(err.rule > KVMSTATS_RULE_NONE && err.rule < KVMSTATS_RULE__MAX);
			CHECK(err.desc >= -1);
			CHECK(memchr(err.desc_name, '\0', sizeof(err.desc_name)));
			for (const char *c = err.desc_name; *c; c++)
				CHECK(*c >= 0x20 && *c <= 0x7e && *c != '"');
			CHECK(kvmstats_error_format(&err, msg, sizeof(msg)) > 0);
			CHECK(strstr(msg, kvmstats_rule_to_string(err.rule)) == msg);
		}
		return 0;
	}

	/* Accepted: everything it will ever read lies inside the file. */
	const struct kvmstats_schema *s = f->schema;
	CHECK(f->blob_size == size);
	CHECK((uint64_t)s->data_offset + s->data_size <= size);
	CHECK(s->data_size <= KVMSTATS_MAX_DATA_SIZE);
	CHECK(s->data_size >= (uint64_t)s->num_desc * 8);
	CHECK(strncmp(f->id, "kvm", 3) == 0);
	CHECK(f->kind == s->kind);
	CHECK(f->kind == kvmstats_parse_id(f->id, NULL, NULL));
	CHECK((f->kind == KVMSTATS_KIND_VCPU) == (f->vcpu >= 0));
	for (uint32_t i = 0; i < s->num_desc; i++) {
		const struct kvmstats_desc *d = &s->descs[i];

		CHECK(d->name && d->name[0] && strlen(d->name) < s->name_size);
		CHECK(d->size > 0);
		CHECK((uint64_t)d->offset + (uint64_t)d->size * 8 <= s->data_size);
		if (!d->supported)
			n_unsupported++;
		for (unsigned k = 0; k < d->size; k++)
			(void)kvmstats_file_value(f, d, k);
	}
	CHECK(n_unsupported == s->n_unsupported);

	/* Parsing is deterministic: a second open gives an equal schema and the same values. */
	r = kvmstats_file_open_blob(data, size, &g, NULL);
	if (r == 0) {
		CHECK(kvmstats_schema_equal(s, g->schema));
		CHECK(memcmp(f->values, g->values, s->data_size) == 0);
		kvmstats_file_free(g);
	} else {
		CHECK(r == -ENOMEM);
	}
	CHECK(kvmstats_file_read(f) == 0);

	/* A file whose id names neither a VM nor a vCPU is translated as a VM's. */
	if (f->kind == KVMSTATS_KIND_UNKNOWN)
		f->schema->kind = KVMSTATS_KIND_VM;
	check_translation(f);

	kvmstats_file_free(f);
	return 0;
}
