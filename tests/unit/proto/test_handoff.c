/* SPDX-License-Identifier: MIT */
/*
 * The hand-off protocol as both ends share it (exporter/proto/handoff.c):
 * what the shim sends, the exporter's answers and how the shim reads them,
 * roles and names. (That the exporter's strict parser accepts what the shim
 * builds is tested in tests/unit/sources/test_handoff_msg.c.)
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/handoff.h"

static void test_register(void **state)
{
	char buf[512];
	const int roles[] = { HANDOFF_ROLE_VM, 0, 7 };
	int n;

	n = handoff_build_register(buf, sizeof(buf), "web-1", NULL, roles, 1);
	assert_string_equal(buf, "{\"version\":1,\"vm\":{\"name\":\"web-1\"},\"fds\":[\"vm\"]}");
	assert_int_equal(n, (int)strlen(buf));

	handoff_build_register(buf, sizeof(buf), "a\"b\\c\td\x7f", "0b0e-uuid", roles, 3);
	assert_string_equal(buf, "{\"version\":1,\"vm\":{\"name\":\"a\\\"b\\\\c\\u0009d\\u007f\","
				 "\"uuid\":\"0b0e-uuid\"},\"fds\":[\"vm\",\"vcpu:0\",\"vcpu:7\"]}");

	/* UTF-8 passes through as is. */
	handoff_build_register(buf, sizeof(buf), "caf\xc3\xa9", NULL, roles, 0);
	assert_string_equal(buf, "{\"version\":1,\"vm\":{\"name\":\"caf\xc3\xa9\"},\"fds\":[]}");
}

static void test_add_fds(void **state)
{
	char buf[64];
	const int roles[] = { 2, 3 };

	assert_int_equal(handoff_build_add(buf, sizeof(buf), roles, 2), 27);
	assert_string_equal(buf, "{\"fds\":[\"vcpu:2\",\"vcpu:3\"]}");
}

static void test_threads(void **state)
{
	char buf[64];
	const int vcpus[] = { 0, 12 }, tids[] = { 4279, 2147483647 };

	assert_int_equal(handoff_build_threads(buf, sizeof(buf), vcpus, tids, 2), 48);
	assert_string_equal(buf, "{\"threads\":{\"vcpu:0\":4279,\"vcpu:12\":2147483647}}");
	assert_int_equal(handoff_build_threads(buf, 48, vcpus, tids, 2), -ENOBUFS);
	assert_int_equal(handoff_build_threads(buf, sizeof(buf), vcpus, tids, 0), 14);
	assert_string_equal(buf, "{\"threads\":{}}");
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
	int need = handoff_build_add(buf, sizeof(buf), roles, 64);
	assert_true(need > 0);
	for (int size = 0; size <= need; size++)
		assert_int_equal(handoff_build_add(buf, (size_t)size, roles, 64), -ENOBUFS);
	assert_int_equal(handoff_build_add(buf, (size_t)need + 1, roles, 64), need);
	assert_int_equal(handoff_build_register(buf, 100, name, NULL, roles, 1), -ENOBUFS);
	assert_true(handoff_build_register(buf, sizeof(buf), name, NULL, roles, 1) > 253);
}

static int answer(const char *s, char *err, size_t size)
{
	return handoff_parse_answer(s, strlen(s), err, size);
}

static void test_answers(void **state)
{
	char err[32];

	assert_int_equal(answer("{\"ok\":true}", err, sizeof(err)), 1);
	assert_int_equal(answer(" { \"ok\" : true } \n", err, sizeof(err)), 1);
	assert_int_equal(handoff_parse_answer("{\"ok\":true}", 12, err, sizeof(err)), 1);

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
	assert_int_equal(answer("{\"ok\":false,\"error\":"
				"\"0123456789012345678901234567890123456789\"}",
				err, sizeof(err)),
			 0);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	/* Unknown keys of any shape are skipped. */
	assert_int_equal(answer("{\"x\":{\"ok\":false,\"y\":[1,2.5e3,null,\"}\"]},\"ok\":true}",
				err, sizeof(err)),
			 1);
	/* A quoted "ok" inside the error text is not the answer. */
	assert_int_equal(answer("{\"error\":\"\\\"ok\\\":true\",\"ok\":false}", err, sizeof(err)),
			 0);
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
		"{\"ok\":true,\"e\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
		"]}",
		"{\"ok\":true,\"e\":\"a\nb\"}",
		"{\"ok\":true,\"e\":\"\\u00g1\"}",
	};
	char err[32];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(err, 'X', sizeof(err));
		if (answer(bad[i], err, sizeof(err)) != -EBADMSG)
			fail_msg("accepted: %s", bad[i]);
		/* Whatever was read of a broken answer, the sentence stays a C string. */
		assert_non_null(memchr(err, '\0', sizeof(err)));
	}
	memset(err, 'X', sizeof(err));
	assert_int_equal(answer("{\"ok\":false,\"error\":\"a long sentence cut by a \x01\"}", err,
				sizeof(err)),
			 -EBADMSG);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	/* No error buffer at all is fine. */
	assert_int_equal(answer("{\"ok\":false,\"error\":\"x\"}", NULL, 0), 0);
}

static void test_names(void **state)
{
	char name[300];

	assert_true(handoff_name_valid("web-1"));
	assert_true(handoff_name_valid("caf\xc3\xa9 (prod)"));
	assert_false(handoff_name_valid(""));
	assert_false(handoff_name_valid("a\nb"));
	assert_false(handoff_name_valid("a\x7f"));
	memset(name, 'x', 253);
	name[253] = '\0';
	assert_true(handoff_name_valid(name));
	name[253] = 'x';
	name[254] = '\0';
	assert_false(handoff_name_valid(name));
	/* What the exporter refuses, the shim does not send: C1 controls, broken UTF-8. */
	assert_false(handoff_name_valid("a\xc2\x85"));
	assert_false(handoff_name_valid("caf\xc3"));
	assert_false(handoff_name_valid("\xc0\xaf"));
	assert_false(handoff_name_valid("\xed\xa0\x80"));
	assert_true(handoff_uuid_valid(""));
	assert_true(handoff_uuid_valid("0b0e5d2c-9f4e-4bb5-a5f4-3e4f1c7c3d11"));
	assert_false(handoff_uuid_valid("a\tb"));
}

static void test_text_valid(void **state)
{
	assert_true(handoff_text_valid("", 0, 10));
	assert_true(handoff_text_valid("web-1 (prod)", 12, 12));
	assert_false(handoff_text_valid("web-1 (prod)", 12, 11));
	assert_true(handoff_text_valid("\xe2\x82\xac\xf0\x9f\x98\x80", 7, 10)); /* euro, emoji */
	assert_false(handoff_text_valid("a\tb", 3, 10));
	assert_false(handoff_text_valid("a\x7f", 2, 10));
	assert_false(handoff_text_valid("\xc2\x85", 2, 10));         /* C1 NEL */
	assert_false(handoff_text_valid("\xc0\xae", 2, 10));         /* overlong */
	assert_false(handoff_text_valid("\xed\xa0\x80", 3, 10));     /* surrogate */
	assert_false(handoff_text_valid("\xf4\x90\x80\x80", 4, 10)); /* above U+10FFFF */
	assert_false(handoff_text_valid("\xe2\x82", 2, 10));         /* cut short */
	assert_false(handoff_text_valid("a\0b", 3, 10));
}

static void test_roles(void **state)
{
	static const char *const bad[] = {
		"",        "VM",         "vcpu",    "vcpu:",   "vcpu:-1", "vcpu:+1",
		"vcpu:01", "vcpu:16384", "vcpu:1x", "vcpu: 1", "vm ",
	};
	char buf[32];
	int role;

	assert_int_equal(handoff_role_parse("vm", &role), 0);
	assert_int_equal(role, HANDOFF_ROLE_VM);
	assert_int_equal(handoff_role_parse("vcpu:0", &role), 0);
	assert_int_equal(role, 0);
	assert_int_equal(handoff_role_parse("vcpu:16383", &role), 0);
	assert_int_equal(role, HANDOFF_MAX_VCPU_INDEX);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (handoff_role_parse(bad[i], &role) != -EINVAL)
			fail_msg("accepted role: \"%s\"", bad[i]);
	/* Formatting and parsing agree for every role. */
	for (int r = HANDOFF_ROLE_VM; r <= HANDOFF_MAX_VCPU_INDEX; r++) {
		handoff_role_format(r, buf, sizeof(buf));
		assert_int_equal(handoff_role_parse(buf, &role), 0);
		assert_int_equal(role, r);
	}
}

/* The exporter's answers, read back by the shim's reader. */
static void test_answer_round_trip(void **state)
{
	char buf[HANDOFF_MAX_ANSWER], err[HANDOFF_MAX_ANSWER], long_error[4000];
	int n;

	n = handoff_build_answer(buf, sizeof(buf), NULL);
	assert_string_equal(buf, "{\"ok\":true}");
	assert_int_equal(handoff_parse_answer(buf, (size_t)n, err, sizeof(err)), 1);

	n = handoff_build_answer(buf, sizeof(buf), "name \"web-1\" is taken\\");
	assert_string_equal(buf, "{\"ok\":false,\"error\":\"name \\\"web-1\\\" is taken\\\\\"}");
	assert_int_equal(handoff_parse_answer(buf, (size_t)n, err, sizeof(err)), 0);
	assert_string_equal(err, "name \"web-1\" is taken\\");

	/* However long the sentence, the answer stays within the bound and well-formed. */
	memset(long_error, '"', sizeof(long_error) - 1);
	long_error[sizeof(long_error) - 1] = '\0';
	n = handoff_build_answer(buf, sizeof(buf), long_error);
	assert_true(n > 0 && (size_t)n < HANDOFF_MAX_ANSWER);
	assert_int_equal(handoff_parse_answer(buf, (size_t)n, err, sizeof(err)), 0);
	assert_true(strlen(err) > 100);

	/* Too small a buffer fails, never truncates. */
	assert_int_equal(handoff_build_answer(buf, 8, NULL), -ENOBUFS);
	assert_int_equal(handoff_build_answer(buf, 0, "x"), -ENOBUFS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register),    cmocka_unit_test(test_add_fds),
		cmocka_unit_test(test_overflow),    cmocka_unit_test(test_answers),
		cmocka_unit_test(test_bad_answers), cmocka_unit_test(test_names),
		cmocka_unit_test(test_roles),       cmocka_unit_test(test_answer_round_trip),
		cmocka_unit_test(test_text_valid),  cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
