/* SPDX-License-Identifier: MIT */
/* Unit tests for the hand-off protocol's message validation (handoff_msg.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sources/handoff_msg.h"
#include "macro.h"

static int parse(const char *json, bool registered, struct handoff_msg *m,
		 enum handoff_reject *reason, char *why, size_t why_len)
{
	return handoff_msg_parse(json, strlen(json), registered, m, reason, why, why_len);
}

static void test_register(void **state)
{
	static const char json[] =
		"{\"version\": 1, \"vm\": {\"name\": \"web-1\", \"uuid\": \"0b0e8f1a\","
		" \"labels\": {\"tenant\": \"a\", \"az\": \"z\\u00e9\"}},"
		" \"fds\": [\"vm\", \"vcpu:0\", \"vcpu:16383\"]}";
	enum handoff_reject reason;
	struct handoff_msg m;
	char why[256] = "";

	assert_int_equal(parse(json, false, &m, &reason, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(m.kind, HANDOFF_MSG_REGISTER);
	assert_string_equal(m.name, "web-1");
	assert_string_equal(m.uuid, "0b0e8f1a");
	assert_int_equal(m.n_labels, 2);
	/* Sorted by name. */
	assert_string_equal(m.labels[0].name, "az");
	assert_string_equal(m.labels[0].value, "z\xc3\xa9");
	assert_string_equal(m.labels[1].name, "tenant");
	assert_int_equal(m.n_roles, 3);
	assert_int_equal(m.roles[0], HANDOFF_ROLE_VM);
	assert_int_equal(m.roles[1], 0);
	assert_int_equal(m.roles[2], 16383);
	handoff_msg_release(&m);
	assert_null(m.name);

	/* Minimal: no uuid, no labels, no fds yet; an empty uuid is no uuid. */
	assert_int_equal(parse("{\"version\":1,\"vm\":{\"name\":\"x\",\"uuid\":\"\"},\"fds\":[]}",
			       false, &m, &reason, why, sizeof(why)),
			 0);
	assert_null(m.uuid);
	assert_int_equal(m.n_roles, 0);
	assert_int_equal(m.n_labels, 0);
	handoff_msg_release(&m);
}

static void test_later(void **state)
{
	enum handoff_reject reason;
	struct handoff_msg m;
	char why[256];

	assert_int_equal(parse("{\"fds\":[\"vcpu:2\",\"vcpu:10\"]}", true, &m, &reason, why,
			       sizeof(why)),
			 0);
	assert_int_equal(m.kind, HANDOFF_MSG_ADD);
	assert_int_equal(m.n_roles, 2);
	assert_int_equal(m.roles[1], 10);
	handoff_msg_release(&m);

	assert_int_equal(parse("{\"remove\":[\"vm\",\"vcpu:2\"]}", true, &m, &reason, why,
			       sizeof(why)),
			 0);
	assert_int_equal(m.kind, HANDOFF_MSG_REMOVE);
	assert_int_equal(m.n_roles, 2);
	assert_int_equal(m.roles[0], HANDOFF_ROLE_VM);
	handoff_msg_release(&m);

	assert_int_equal(parse("{\"threads\":{\"vcpu:0\":4279,\"vcpu:16383\":2147483647}}", true,
			       &m, &reason, why, sizeof(why)),
			 0);
	assert_int_equal(m.kind, HANDOFF_MSG_THREADS);
	assert_int_equal(m.n_roles, 2);
	assert_int_equal(m.roles[0], 0);
	assert_int_equal(m.tids[0], 4279);
	assert_int_equal(m.roles[1], 16383);
	assert_int_equal(m.tids[1], 2147483647);
	handoff_msg_release(&m);
}

static void test_refused(void **state)
{
	static const char long_name[] = "{\"version\":1,\"vm\":{\"name\":\"%0254d\"},\"fds\":[]}";
	static const struct {
		const char *json;
		bool registered;
		enum handoff_reject reason;
		const char *expect;
	} cases[] = {
		{ "", false, HANDOFF_REJECT_JSON, "not valid JSON" },
		{ "{\"threads\":[]}", true, HANDOFF_REJECT_JSON, "must be an object" },
		{ "{\"threads\":{\"vm\":1}}", true, HANDOFF_REJECT_ROLE, "is not \"vcpu:N\"" },
		{ "{\"threads\":{\"vcpu:01\":1}}", true, HANDOFF_REJECT_ROLE, "is not \"vcpu:N\"" },
		{ "{\"threads\":{\"vcpu:0\":0}}", true, HANDOFF_REJECT_JSON, "thread id" },
		{ "{\"threads\":{\"vcpu:0\":2147483648}}", true, HANDOFF_REJECT_JSON, "thread id" },
		{ "{\"threads\":{\"vcpu:0\":1.5}}", true, HANDOFF_REJECT_JSON, "thread id" },
		{ "{\"threads\":{\"vcpu:0\":1,\"vcpu:0\":2}}", true, HANDOFF_REJECT_JSON,
		  "not valid JSON" },
		{ "{\"threads\":{},\"remove\":[]}", true, HANDOFF_REJECT_JSON, "exactly one of" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[],\"threads\":{}}", false,
		  HANDOFF_REJECT_JSON, "unknown key" },
		{ "{", false, HANDOFF_REJECT_JSON, "not valid JSON" },
		{ "garbage", false, HANDOFF_REJECT_JSON, "not valid JSON" },
		{ "[]", false, HANDOFF_REJECT_JSON, "must be a JSON object" },
		{ "\"x\"", false, HANDOFF_REJECT_JSON, "must be a JSON object" },
		{ "1", true, HANDOFF_REJECT_JSON, "must be a JSON object" },
		{ "null", true, HANDOFF_REJECT_JSON, "must be a JSON object" },
		{ "{} {}", false, HANDOFF_REJECT_JSON, "not valid JSON" },
		{ "{\"version\":1,\"version\":1}", false, HANDOFF_REJECT_JSON, "not valid JSON" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\\u0000b\"},\"fds\":[]}", false,
		  HANDOFF_REJECT_JSON, "not valid JSON" },
		{ "{\"version\":1,\"vm\":{\"name\":\"\xff\"},\"fds\":[]}", false,
		  HANDOFF_REJECT_JSON, "not valid JSON" },
		{ "{\"vm\":{\"name\":\"a\"},\"fds\":[]}", false, HANDOFF_REJECT_VERSION,
		  "\"version\" is missing" },
		{ "{\"version\":2,\"vm\":{\"name\":\"a\"},\"fds\":[]}", false,
		  HANDOFF_REJECT_VERSION, "must be the number 1" },
		{ "{\"version\":\"1\",\"vm\":{\"name\":\"a\"},\"fds\":[]}", false,
		  HANDOFF_REJECT_VERSION, "must be the number 1" },
		{ "{\"version\":1.0,\"vm\":{\"name\":\"a\"},\"fds\":[]}", false,
		  HANDOFF_REJECT_VERSION, "must be the number 1" },
		{ "{\"fds\":[]}", false, HANDOFF_REJECT_VERSION, "\"version\" is missing" },
		{ "{\"remove\":[]}", false, HANDOFF_REJECT_VERSION, "not registered yet" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[],\"x\":1}", false,
		  HANDOFF_REJECT_JSON, "unknown key \"x\" in the first message" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"nmae\":1},\"fds\":[]}", false,
		  HANDOFF_REJECT_JSON, "unknown key \"nmae\" in \"vm\"" },
		{ "{\"version\":1,\"fds\":[]}", false, HANDOFF_REJECT_JSON, "\"vm\" is missing" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"}}", false, HANDOFF_REJECT_JSON,
		  "\"fds\" is missing" },
		{ "{\"version\":1,\"vm\":[],\"fds\":[]}", false, HANDOFF_REJECT_JSON,
		  "\"vm\" must be an object" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":\"vm\"}", false,
		  HANDOFF_REJECT_JSON, "must be an array" },
		{ "{\"version\":1,\"vm\":{},\"fds\":[]}", false, HANDOFF_REJECT_NAME,
		  "\"vm.name\" is missing" },
		{ "{\"version\":1,\"vm\":{\"name\":\"\"},\"fds\":[]}", false, HANDOFF_REJECT_NAME,
		  "\"vm.name\" must be" },
		{ "{\"version\":1,\"vm\":{\"name\":1},\"fds\":[]}", false, HANDOFF_REJECT_NAME,
		  "\"vm.name\" must be" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\\nb\"},\"fds\":[]}", false,
		  HANDOFF_REJECT_NAME, "\"vm.name\" must be" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\\u007f\"},\"fds\":[]}", false,
		  HANDOFF_REJECT_NAME, "\"vm.name\" must be" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\\u0085\"},\"fds\":[]}", false,
		  HANDOFF_REJECT_NAME, "\"vm.name\" must be" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"uuid\":"
		  "\"01234567890123456789012345678901"
		  "234567890123456789012345678901234\"},\"fds\":[]}",
		  false, HANDOFF_REJECT_NAME, "\"vm.uuid\" must be" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"labels\":[]},\"fds\":[]}", false,
		  HANDOFF_REJECT_JSON, "\"vm.labels\" must be an object" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"labels\":{\"job\":\"x\"}},\"fds\":[]}",
		  false, HANDOFF_REJECT_NAME, "label name \"job\" is reserved" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"labels\":{\"vm\":\"x\"}},\"fds\":[]}",
		  false, HANDOFF_REJECT_NAME, "label name \"vm\" is reserved" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"labels\":{\"__x\":\"x\"}},\"fds\":[]}",
		  false, HANDOFF_REJECT_NAME, "label name \"__x\" is not valid" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"labels\":{\"1a\":\"x\"}},\"fds\":[]}",
		  false, HANDOFF_REJECT_NAME, "label name \"1a\" is not valid" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"labels\":{\"a-b\":\"x\"}},\"fds\":[]}",
		  false, HANDOFF_REJECT_NAME, "label name \"a-b\" is not valid" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"labels\":{\"a\":1}},\"fds\":[]}", false,
		  HANDOFF_REJECT_NAME, "the value of label \"a\" must be" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"labels\":{\"a\":\"\\t\"}},\"fds\":[]}",
		  false, HANDOFF_REJECT_NAME, "the value of label \"a\" must be" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\",\"labels\":{\"a\":\"1\",\"b\":\"1\",\"c\":"
		  "\"1\",\"d\":\"1\",\"e\":\"1\",\"f\":\"1\",\"g\":\"1\",\"h\":\"1\",\"i\":\"1\","
		  "\"j\":\"1\",\"k\":\"1\",\"l\":\"1\",\"m\":\"1\",\"n\":\"1\",\"o\":\"1\",\"p\":"
		  "\"1\",\"q\":\"1\"}},\"fds\":[]}",
		  false, HANDOFF_REJECT_BOUNDS, "has 17 labels, at most 16" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[\"cpu:0\"]}", false,
		  HANDOFF_REJECT_ROLE, "\"fds[0]\" is \"cpu:0\", not a role" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[\"vm\",\"vcpu:16384\"]}", false,
		  HANDOFF_REJECT_ROLE, "\"fds[1]\" is \"vcpu:16384\", not a role" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[\"vcpu:01\"]}", false,
		  HANDOFF_REJECT_ROLE, "not a role" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[\"vcpu:-1\"]}", false,
		  HANDOFF_REJECT_ROLE, "not a role" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[\"vcpu:\"]}", false,
		  HANDOFF_REJECT_ROLE, "not a role" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[\"vcpu:1 \"]}", false,
		  HANDOFF_REJECT_ROLE, "not a role" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[\"VM\"]}", false,
		  HANDOFF_REJECT_ROLE, "not a role" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[0]}", false, HANDOFF_REJECT_ROLE,
		  "\"fds[0]\" is not a string" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[\"vm\",\"vm\"]}", false,
		  HANDOFF_REJECT_ROLE, "\"fds[1]\" repeats role \"vm\"" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[\"vcpu:3\",\"vm\",\"vcpu:3\"]}",
		  false, HANDOFF_REJECT_ROLE, "\"fds[2]\" repeats role \"vcpu:3\"" },
		{ "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[]}", true,
		  HANDOFF_REJECT_VERSION, "already registered" },
		{ "{\"vm\":{\"name\":\"a\"}}", true, HANDOFF_REJECT_VERSION, "already registered" },
		{ "{}", true, HANDOFF_REJECT_JSON, "exactly one of" },
		{ "{\"fds\":[],\"remove\":[]}", true, HANDOFF_REJECT_JSON, "exactly one of" },
		{ "{\"add\":[]}", true, HANDOFF_REJECT_JSON, "unknown key \"add\"" },
		/* A peer's key is repeated without its control characters: one line. */
		{ "{\"a\\nb\\u007f\\u0085\":[]}", true, HANDOFF_REJECT_JSON,
		  "unknown key \"a?b??\"" },
		{ "{\"remove\":[\"vm\",\"vm\"]}", true, HANDOFF_REJECT_ROLE, "repeats role" },
	};
	char json[512];

	for (size_t i = 0; i <= ELEMENTSOF(cases); i++) {
		const char *in = i < ELEMENTSOF(cases) ? cases[i].json : json;
		enum handoff_reject want =
			i < ELEMENTSOF(cases) ? cases[i].reason : HANDOFF_REJECT_NAME;
		const char *expect =
			i < ELEMENTSOF(cases) ? cases[i].expect : "\"vm.name\" must be";
		enum handoff_reject reason = HANDOFF_REJECT__MAX;
		struct handoff_msg m;
		char why[256] = "";

		if (i == ELEMENTSOF(cases))
			snprintf(json, sizeof(json), long_name, 0); /* 254 bytes: one too many */
		if (parse(in, i < ELEMENTSOF(cases) && cases[i].registered, &m, &reason, why,
			  sizeof(why)) != -EINVAL)
			fail_msg("case %zu (%s) was accepted", i, in);
		if (reason != want || !strstr(why, expect))
			fail_msg("case %zu (%s): reason %s, why '%s'; expected %s, '%s'", i, in,
				 handoff_reject_to_string(reason), why,
				 handoff_reject_to_string(want), expect);
		/* One sentence: no newline, and never empty. */
		assert_null(strchr(why, '\n'));
		assert_null(m.name);
		assert_int_equal(m.n_labels, 0);
	}
}

static void test_bounds(void **state)
{
	enum handoff_reject reason;
	struct handoff_msg m;
	char why[256];
	char *big;
	size_t n;

	/* 64 roles fit one message, 65 do not. */
	for (unsigned count = 64; count <= 65; count++) {
		char json[2048] = "{\"fds\":[";

		n = strlen(json);
		for (unsigned i = 0; i < count; i++)
			n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"vcpu:%u\"",
					      i ? "," : "", i);
		snprintf(json + n, sizeof(json) - n, "]}");
		assert_int_equal(parse(json, true, &m, &reason, why, sizeof(why)),
				 count == 64 ? 0 : -EINVAL);
		if (count == 65) {
			assert_int_equal(reason, HANDOFF_REJECT_BOUNDS);
			assert_non_null(strstr(why, "has 65 entries, at most 64"));
		}
		handoff_msg_release(&m);
	}

	/* Exactly 65536 bytes is a message (padded with whitespace), one more is not. */
	big = malloc(HANDOFF_MAX_MESSAGE + 2);
	assert_non_null(big);
	memset(big, ' ', HANDOFF_MAX_MESSAGE + 1);
	memcpy(big, "{\"fds\":[]}", 10);
	assert_int_equal(handoff_msg_parse(big, HANDOFF_MAX_MESSAGE, true, &m, &reason, why,
					   sizeof(why)),
			 0);
	handoff_msg_release(&m);
	assert_int_equal(handoff_msg_parse(big, HANDOFF_MAX_MESSAGE + 1, true, &m, &reason, why,
					   sizeof(why)),
			 -EINVAL);
	assert_int_equal(reason, HANDOFF_REJECT_TRUNCATED);
	free(big);

	/* A long unknown key is clipped in the answer, at a character boundary. */
	{
		char json[512];
		const char *q;

		n = (size_t)snprintf(json, sizeof(json),
				     "{\"version\":1,\"vm\":{\"name\":\"a\"},\"fds\":[],\"");
		for (int i = 0; i < 100; i++)
			n += (size_t)snprintf(json + n, sizeof(json) - n, "\xc3\xa9");
		snprintf(json + n, sizeof(json) - n, "\":1}");
		assert_int_equal(parse(json, false, &m, &reason, why, sizeof(why)), -EINVAL);
		q = strstr(why, "...\"");
		assert_non_null(q);
		assert_true(handoff_text_valid(why, strlen(why), sizeof(why)));
	}
}

/* What the shim builds (proto/handoff.c), the exporter's strict parser accepts as meant. */
static void test_shim_messages(void **state)
{
	static const char name[] = "a \"quoted\" \\ caf\xc3\xa9";
	char buf[HANDOFF_MAX_MESSAGE], why[256];
	int roles[HANDOFF_MAX_FDS_PER_MSG];
	enum handoff_reject reason;
	struct handoff_msg m;
	int n;

	roles[0] = HANDOFF_ROLE_VM;
	for (unsigned i = 1; i < HANDOFF_MAX_FDS_PER_MSG; i++)
		roles[i] = (int)(i * 200);
	n = handoff_build_register(buf, sizeof(buf), name, "0b0e8f1a", roles,
				   HANDOFF_MAX_FDS_PER_MSG);
	assert_true(n > 0);
	assert_int_equal(handoff_msg_parse(buf, (size_t)n, false, &m, &reason, why, sizeof(why)),
			 0);
	assert_int_equal(m.kind, HANDOFF_MSG_REGISTER);
	assert_string_equal(m.name, name);
	assert_string_equal(m.uuid, "0b0e8f1a");
	assert_int_equal(m.n_roles, HANDOFF_MAX_FDS_PER_MSG);
	for (unsigned i = 0; i < HANDOFF_MAX_FDS_PER_MSG; i++)
		assert_int_equal(m.roles[i], roles[i]);
	handoff_msg_release(&m);

	n = handoff_build_add(buf, sizeof(buf), roles + 1, 3);
	assert_true(n > 0);
	assert_int_equal(handoff_msg_parse(buf, (size_t)n, true, &m, &reason, why, sizeof(why)), 0);
	assert_int_equal(m.kind, HANDOFF_MSG_ADD);
	assert_int_equal(m.n_roles, 3);
	assert_int_equal(m.roles[2], 600);
	handoff_msg_release(&m);

	{
		const int vcpus[] = { 0, 200, 16383 }, tids[] = { 1, 4279, 2147483647 };

		n = handoff_build_threads(buf, sizeof(buf), vcpus, tids, 3);
		assert_true(n > 0);
		assert_int_equal(handoff_msg_parse(buf, (size_t)n, true, &m, &reason, why,
						   sizeof(why)),
				 0);
		assert_int_equal(m.kind, HANDOFF_MSG_THREADS);
		assert_int_equal(m.n_roles, 3);
		for (unsigned i = 0; i < 3; i++) {
			assert_int_equal(m.roles[i], vcpus[i]);
			assert_int_equal(m.tids[i], tids[i]);
		}
		handoff_msg_release(&m);
	}

	/* One fd more than a message may carry: the shim never builds it, the exporter refuses it.
	 */
	roles[0] = 1;
	n = handoff_build_add(buf, sizeof(buf), roles, HANDOFF_MAX_FDS_PER_MSG);
	assert_true(n > 0);
	memcpy(buf + n - 2, ",\"vcpu:1\"]}", 12);
	assert_int_equal(handoff_msg_parse(buf, (size_t)n + 9, true, &m, &reason, why, sizeof(why)),
			 -EINVAL);
	assert_int_equal(reason, HANDOFF_REJECT_BOUNDS);
}

static void test_names(void **state)
{
	char buf[16];

	handoff_role_format(HANDOFF_ROLE_VM, buf, sizeof(buf));
	assert_string_equal(buf, "vm");
	handoff_role_format(17, buf, sizeof(buf));
	assert_string_equal(buf, "vcpu:17");
	assert_string_equal(handoff_reject_to_string(HANDOFF_REJECT_PEER), "peer");
	assert_string_equal(handoff_reject_to_string(HANDOFF_REJECT_TRUNCATED), "truncated");
	assert_string_equal(handoff_reject_to_string(HANDOFF_REJECT__MAX), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register),      cmocka_unit_test(test_later),
		cmocka_unit_test(test_refused),       cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_shim_messages), cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
