/* SPDX-License-Identifier: MIT */
/*
 * The shim's hand-off messages (contrib/preload/preload_msg.c): what it sends
 * and how it reads answers. Registered from contrib/preload/meson.build.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "preload_msg.h"

static void test_register(void **state)
{
	char buf[512];
	const int roles[] = { PRELOAD_ROLE_VM, 0, 7 };
	int n;

	n = preload_msg_register(buf, sizeof(buf), "web-1", NULL, roles, 1);
	assert_string_equal(buf, "{\"version\":1,\"vm\":{\"name\":\"web-1\"},\"fds\":[\"vm\"]}");
	assert_int_equal(n, (int)strlen(buf));

	preload_msg_register(buf, sizeof(buf), "a\"b\\c\td\x7f", "0b0e-uuid", roles, 3);
	assert_string_equal(buf, "{\"version\":1,\"vm\":{\"name\":\"a\\\"b\\\\c\\u0009d\\u007f\","
				 "\"uuid\":\"0b0e-uuid\"},\"fds\":[\"vm\",\"vcpu:0\",\"vcpu:7\"]}");

	/* UTF-8 passes through as is. */
	preload_msg_register(buf, sizeof(buf), "caf\xc3\xa9", NULL, roles, 0);
	assert_string_equal(buf, "{\"version\":1,\"vm\":{\"name\":\"caf\xc3\xa9\"},\"fds\":[]}");
}

static void test_add_fds(void **state)
{
	char buf[64];
	const int roles[] = { 2, 3 };

	assert_int_equal(preload_msg_add_fds(buf, sizeof(buf), roles, 2), 27);
	assert_string_equal(buf, "{\"fds\":[\"vcpu:2\",\"vcpu:3\"]}");
}

static void test_overflow(void **state)
{
	char buf[1024];
	int roles[64];
	char name[254];

	memset(name, 'x', 253);
	name[253] = '\0';
	for (int i = 0; i < 64; i++)
		roles[i] = 4000 + i;
	/* Every length up to the one needed fails cleanly; the exact one succeeds. */
	int need = preload_msg_add_fds(buf, sizeof(buf), roles, 64);
	assert_true(need > 0);
	for (int size = 0; size <= need; size++)
		assert_int_equal(preload_msg_add_fds(buf, (size_t)size, roles, 64), -ENOBUFS);
	assert_int_equal(preload_msg_add_fds(buf, (size_t)need + 1, roles, 64), need);
	assert_int_equal(preload_msg_register(buf, 100, name, NULL, roles, 1), -ENOBUFS);
	assert_true(preload_msg_register(buf, sizeof(buf), name, NULL, roles, 1) > 253);
}

static int answer(const char *s, char *err, size_t size)
{
	return preload_msg_parse_answer(s, strlen(s), err, size);
}

static void test_answers(void **state)
{
	char err[32];

	assert_int_equal(answer("{\"ok\":true}", err, sizeof(err)), 1);
	assert_int_equal(answer(" { \"ok\" : true } \n", err, sizeof(err)), 1);
	assert_int_equal(preload_msg_parse_answer("{\"ok\":true}", 12, err, sizeof(err)), 1);

	assert_int_equal(answer("{\"ok\":false,\"error\":\"name \\\"web-1\\\" is taken\"}", err,
				sizeof(err)),
			 0);
	assert_string_equal(err, "name \"web-1\" is taken");
	assert_int_equal(answer("{\"error\":\"a\\nb\\u0041\\u00e9\",\"ok\":false}", err,
				sizeof(err)),
			 0);
	assert_string_equal(err, "a bA?");
	assert_int_equal(answer("{\"ok\":false}", err, sizeof(err)), 0);
	assert_string_equal(err, "no reason given");
	/* Long sentences are shortened, not overflowed. */
	assert_int_equal(answer("{\"ok\":false,\"error\":\"0123456789012345678901234567890123456789\"}",
				err, sizeof(err)),
			 0);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	/* Unknown keys of any shape are skipped. */
	assert_int_equal(answer("{\"x\":{\"ok\":false,\"y\":[1,2.5e3,null,\"}\"]},\"ok\":true}", err,
				sizeof(err)),
			 1);
	/* A quoted "ok" inside the error text is not the answer. */
	assert_int_equal(answer("{\"error\":\"\\\"ok\\\":true\",\"ok\":false}", err, sizeof(err)), 0);
}

static void test_bad_answers(void **state)
{
	static const char *const bad[] = {
		"",
		"{",
		"{}",
		"[]",
		"{\"ok\":1}",
		"{\"ok\":\"true\"}",
		"{\"ok\":true",
		"{\"ok\":true}x",
		"{\"ok\":true,}",
		"{ok:true}",
		"{\"ok\":tru}",
		"{\"ok\":true,\"error\":\"x}",
		"{\"ok\":true,\"e\":\"\\q\"}",
		"{\"ok\":true,\"e\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
		"{\"ok\":true,\"e\":\"a\nb\"}",
		"{\"ok\":true,\"e\":\"\\u00g1\"}",
	};
	char err[32];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (answer(bad[i], err, sizeof(err)) != -EBADMSG)
			fail_msg("accepted: %s", bad[i]);
	/* No error buffer at all is fine. */
	assert_int_equal(answer("{\"ok\":false,\"error\":\"x\"}", NULL, 0), 0);
}

static void test_names(void **state)
{
	char name[300];

	assert_true(preload_name_valid("web-1"));
	assert_true(preload_name_valid("caf\xc3\xa9 (prod)"));
	assert_false(preload_name_valid(""));
	assert_false(preload_name_valid("a\nb"));
	assert_false(preload_name_valid("a\x7f"));
	memset(name, 'x', 253);
	name[253] = '\0';
	assert_true(preload_name_valid(name));
	name[253] = 'x';
	name[254] = '\0';
	assert_false(preload_name_valid(name));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register),   cmocka_unit_test(test_add_fds),
		cmocka_unit_test(test_overflow),   cmocka_unit_test(test_answers),
		cmocka_unit_test(test_bad_answers), cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
