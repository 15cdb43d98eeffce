/* SPDX-License-Identifier: MIT */
/*
 * The schema cache (kvmstats/schema_cache.c): files of one layout share one
 * interned schema, its userdata lives as long as a file uses it, and pruning
 * frees what no file holds.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blobs.h"
#include "kvmstats.h"
#include "macro.h"

static unsigned userdata_frees;

static void count_userdata_free(void *p)
{
	(void)p;
	userdata_frees++;
}

static void test_schema_cache(void **state)
{
	struct kvmstats_schema_cache *c = kvmstats_schema_cache_new();
	struct kvmstats_file *a, *b, *v0, *v1;
	struct kvmstats_schema *shared;
	uint8_t *buf = copy_blob(&vcpu_blob);

	(void)state;
	assert_non_null(c);
	a = open_ok(vm_blob.data, vm_blob.len);
	b = open_ok(vm_blob.data, vm_blob.len);
	v0 = open_ok(vcpu_blob.data, vcpu_blob.len);
	/* Another vCPU of the same VM: different id, same schema. */
	memcpy(buf + ID_OFFSET, "kvm-5702/vcpu-1", 16);
	v1 = open_ok(buf, vcpu_blob.len);
	assert_int_equal(v1->vcpu, 1);

	assert_ptr_not_equal(a->schema, b->schema);
	assert_true(kvmstats_schema_equal(a->schema, b->schema));
	assert_true(kvmstats_schema_equal(v0->schema, v1->schema));
	assert_false(kvmstats_schema_equal(a->schema, v0->schema));

	assert_int_equal(kvmstats_schema_cache_intern(c, a), 0);
	shared = a->schema;
	assert_int_equal(shared->n_ref, 2); /* a and the cache */
	shared->userdata = shared;
	shared->userdata_free = count_userdata_free;
	assert_int_equal(kvmstats_schema_cache_intern(c, b), 0);
	assert_ptr_equal(b->schema, shared);
	assert_int_equal(shared->n_ref, 3);
	/* Interning twice is harmless. */
	assert_int_equal(kvmstats_schema_cache_intern(c, b), 0);
	assert_ptr_equal(b->schema, shared);
	assert_int_equal(shared->n_ref, 3);

	assert_int_equal(kvmstats_schema_cache_intern(c, v0), 0);
	assert_int_equal(kvmstats_schema_cache_intern(c, v1), 0);
	assert_ptr_equal(v0->schema, v1->schema);
	assert_ptr_not_equal(v0->schema, shared);
	v0->schema->userdata_free = count_userdata_free;
	assert_int_equal(v0->schema->n_ref, 3);

	/* Values stay per file: the schema is shared, the data is not. */
	assert_int_equal(value_of(a, "mmu_cache_miss", 0), 4);
	assert_int_equal(value_of(v1, "exits", 0), 101);

	/* In use: prune keeps both. */
	kvmstats_schema_cache_prune(c);
	assert_int_equal(userdata_frees, 0);

	kvmstats_file_free(a);
	kvmstats_file_free(b);
	assert_int_equal(shared->n_ref, 1);
	kvmstats_schema_cache_prune(c);
	assert_int_equal(userdata_frees, 1); /* the VM schema, and only it */

	kvmstats_file_free(v0);
	assert_int_equal(v1->schema->n_ref, 2);
	kvmstats_schema_cache_prune(c);
	assert_int_equal(userdata_frees, 1);

	/* A new file of a pruned schema gets a fresh cache entry. */
	a = open_ok(vm_blob.data, vm_blob.len);
	assert_int_equal(kvmstats_schema_cache_intern(c, a), 0);
	assert_int_equal(a->schema->n_ref, 2);

	/* The cache's references go with it; the files keep theirs. */
	assert_null(kvmstats_schema_cache_free(c));
	assert_int_equal(userdata_frees, 1);
	assert_int_equal(v1->schema->n_ref, 1);
	assert_int_equal(a->schema->n_ref, 1);
	kvmstats_file_free(v1);
	assert_int_equal(userdata_frees, 2);
	kvmstats_file_free(a);
	assert_null(kvmstats_schema_cache_free(NULL));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema_cache),
	};

	return cmocka_run_group_tests(tests, blobs_setup, blobs_teardown);
}
