/* SPDX-License-Identifier: MIT */
/*
 * Interning of schemas. A host has one VM schema and one vCPU schema per
 * kernel, so a linear list is all it takes; sharing them makes the per-schema
 * translation (names, HELP, bucket bounds) a one-time cost instead of a
 * per-vCPU one.
 */
#include <errno.h>
#include <stdlib.h>

#include "kvmstats.h"

struct kvmstats_schema_cache {
	struct kvmstats_schema **schemas;
	size_t n;
	size_t cap;
};

struct kvmstats_schema_cache *kvmstats_schema_cache_new(void)
{
	return calloc(1, sizeof(struct kvmstats_schema_cache));
}

struct kvmstats_schema_cache *kvmstats_schema_cache_free(struct kvmstats_schema_cache *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n; i++)
		kvmstats_schema_unref(c->schemas[i]);
	free(c->schemas);
	free(c);
	return NULL;
}

int kvmstats_schema_cache_intern(struct kvmstats_schema_cache *c, struct kvmstats_file *f)
{
	for (size_t i = 0; i < c->n; i++) {
		if (kvmstats_schema_equal(c->schemas[i], f->schema)) {
			kvmstats_schema_unref(f->schema);
			f->schema = kvmstats_schema_ref(c->schemas[i]);
			return 0;
		}
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4;
		struct kvmstats_schema **p = reallocarray(c->schemas, cap, sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->schemas = p;
		c->cap = cap;
	}
	c->schemas[c->n++] = kvmstats_schema_ref(f->schema);
	return 0;
}

void kvmstats_schema_cache_prune(struct kvmstats_schema_cache *c)
{
	size_t j = 0;

	for (size_t i = 0; i < c->n; i++) {
		if (c->schemas[i]->n_ref == 1)
			kvmstats_schema_unref(c->schemas[i]);
		else
			c->schemas[j++] = c->schemas[i];
	}
	c->n = j;
}
