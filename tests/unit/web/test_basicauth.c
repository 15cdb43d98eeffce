/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for basic authentication (web/basicauth.c): bcrypt against
 * hashes made here with crypt_r(), the Authorization header's decoding, the
 * cache of successful logins, and checks from several threads at once.
 */
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "web/basicauth.h"
#include "web/webconfig.h"

static char *make_hash(const char *prefix, unsigned long cost, const char *password)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	char *hash;

	assert_non_null(cd);
	assert_non_null(crypt_gensalt_rn(prefix, cost, NULL, 0, salt, sizeof(salt)));
	assert_non_null(crypt_r(password, salt, cd));
	assert_int_equal(cd->output[0], '$');
	hash = strdup(cd->output);
	assert_non_null(hash);
	free(cd);
	return hash;
}

static void test_bcrypt(void **state)
{
	char *hash = make_hash("$2b$", 4, "correct horse");

	assert_int_equal(strncmp(hash, "$2b$04$", 7), 0);
	assert_int_equal(strlen(hash), 60);
	assert_true(basicauth_bcrypt_verify(hash, "correct horse"));
	assert_false(basicauth_bcrypt_verify(hash, "correct horse "));
	assert_false(basicauth_bcrypt_verify(hash, "Correct horse"));
	assert_false(basicauth_bcrypt_verify(hash, ""));
	assert_false(basicauth_bcrypt_verify(hash, NULL));
	assert_false(basicauth_bcrypt_verify(NULL, "x"));
	/* Not a hash crypt_r accepts: false, not a crash. */
	assert_false(basicauth_bcrypt_verify("$2b$04$short", "x"));
	assert_false(basicauth_bcrypt_verify("", ""));
	free(hash);

	/* $2y$ (htpasswd, PHP) and $2a$ verify too; the toolkit's own test hash. */
	hash = make_hash("$2y$", 4, "pw");
	assert_true(basicauth_bcrypt_verify(hash, "pw"));
	free(hash);
	hash = make_hash("$2a$", 4, "pw");
	assert_true(basicauth_bcrypt_verify(hash, "pw"));
	free(hash);
	assert_true(basicauth_bcrypt_verify(
		"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi", "fakepassword"));
}

static void test_parse_header(void **state)
{
	static const struct {
		const char *header;
		const char *user, *password; /* NULL: -EINVAL */
	} cases[] = {
		{ "Basic YWxpY2U6c2VjcmV0", "alice", "secret" },
		{ "basic YWxpY2U6c2VjcmV0", "alice", "secret" },
		{ "BASIC YWxpY2U6c2VjcmV0", "alice", "secret" },
		{ "Basic YWxpY2U6", "alice", "" },         /* "alice:" */
		{ "Basic OnB3", "", "pw" },                /* ":pw" */
		{ "Basic YTpiOmM=", "a", "b:c" },          /* the first ':' splits */
		{ "Basic YWxpY2U=", NULL, NULL },          /* no ':' */
		{ "Basic YWxpY2U6c2VjcmV0=", NULL, NULL }, /* bad padding */
		{ "Basic YWxpY2U6c2Vjc", NULL, NULL },     /* not a multiple of 4 */
		{ "Basic YW xpY2U6c2VjcmV0", NULL, NULL }, /* space inside */
		{ "Basic  YWxpY2U6c2VjcmV0", NULL, NULL }, /* two spaces */
		{ "Basic YQA6Yg==", NULL, NULL },          /* "a\0:b" */
		{ "Basic YTpiAA==", NULL, NULL },          /* "a:b\0" */
		{ "Basic ", NULL, NULL },
		{ "Basic", NULL, NULL },
		{ "Bearer YWxpY2U6c2VjcmV0", NULL, NULL },
		{ "", NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *user = NULL, *password = NULL;
		int r = basicauth_parse_header(cases[i].header, &user, &password);

		if (!cases[i].user) {
			if (r != -EINVAL)
				fail_msg("case %zu (%s): %d", i, cases[i].header, r);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(user, cases[i].user);
		assert_string_equal(password, cases[i].password);
		free(user);
		free(password);
	}
	assert_int_equal(basicauth_parse_header(NULL, &(char *){ NULL }, &(char *){ NULL }),
			 -EINVAL);
}

static double elapsed_ms(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void test_check(void **state)
{
	char *hash = make_hash("$2b$", 8, "secret");
	struct webconfig_user alice = { .name = (char *)"alice", .hash = hash };
	struct webconfig c = { .users = &alice, .n_users = 1 };
	struct basicauth *a = NULL;
	struct timespec t0, t1, t2;
	/* base64 of alice:secret, alice:wrong, bob:secret */
	const char *good = "Basic YWxpY2U6c2VjcmV0",
		   *wrong = "Basic YWxpY2U6d3Jvbmc=", *unknown = "Basic Ym9iOnNlY3JldA==";

	assert_int_equal(basicauth_new(&c, &a), 0);

	assert_false(basicauth_check(a, NULL));
	assert_false(basicauth_check(a, "Basic !!!!"));
	assert_false(basicauth_check(a, wrong));
	assert_false(basicauth_check(a, unknown));
	/* Failures are not cached: still false. */
	assert_false(basicauth_check(a, wrong));

	/* The first success pays for bcrypt, the next ones hit the cache. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_true(basicauth_check(a, good));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int i = 0; i < 5; i++)
		assert_true(basicauth_check(a, good));
	clock_gettime(CLOCK_MONOTONIC, &t2);
	if (elapsed_ms(&t1, &t2) / 5 * 4 > elapsed_ms(&t0, &t1))
		fail_msg("cached checks take %.3f ms each, bcrypt %.3f ms",
			 elapsed_ms(&t1, &t2) / 5, elapsed_ms(&t0, &t1));
	/* The cache is per (user, password): a wrong password is still wrong. */
	assert_false(basicauth_check(a, wrong));
	assert_false(basicauth_check(a, unknown));

	assert_null(basicauth_free(a));
	assert_null(basicauth_free(NULL));
	free(hash);
}

struct checker {
	struct basicauth *a;
	const char *header;
	bool want;
	unsigned wrong_answers;
};

static void *check_many(void *arg)
{
	struct checker *k = arg;

	for (int i = 0; i < 20; i++)
		if (basicauth_check(k->a, k->header) != k->want)
			k->wrong_answers++;
	return NULL;
}

/* HTTP threads check at once: right and wrong passwords, cached or not, stay so. */
static void test_threads(void **state)
{
	char *h1 = make_hash("$2b$", 4, "secret"), *h2 = make_hash("$2b$", 4, "other");
	struct webconfig_user users[] = {
		{ .name = (char *)"alice", .hash = h1 },
		{ .name = (char *)"bob", .hash = h2 },
	};
	struct webconfig c = { .users = users, .n_users = 2 };
	struct checker k[4];
	pthread_t t[4];
	struct basicauth *a;

	assert_int_equal(basicauth_new(&c, &a), 0);
	k[0] = (struct checker){ a, "Basic YWxpY2U6c2VjcmV0", true, 0 };  /* alice:secret */
	k[1] = (struct checker){ a, "Basic Ym9iOm90aGVy", true, 0 };      /* bob:other */
	k[2] = (struct checker){ a, "Basic YWxpY2U6b3RoZXI=", false, 0 }; /* alice:other */
	k[3] = (struct checker){ a, "Basic Ym9iOnNlY3JldA==", false, 0 }; /* bob:secret */
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, check_many, &k[i]), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(k[i].wrong_answers, 0);
	}
	basicauth_free(a);
	free(h1);
	free(h2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bcrypt),
		cmocka_unit_test(test_parse_header),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
