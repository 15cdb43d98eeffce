/* SPDX-License-Identifier: MIT */
/* JSON and journal renderings of log events, and the logfmt tail they parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log/log_sinks.h"

/* The buffer's bytes as a NUL-terminated string (caller frees). */
static char *text(const struct outbuf *b)
{
	char *s = malloc(b->len + 1);

	assert_non_null(s);
	memcpy(s, b->data, b->len);
	s[b->len] = '\0';
	return s;
}

static void test_logfmt_next(void **state)
{
	const char *tail = "vm=web-1 err=\"no such file\" q=\"a \\\"b\\\" c\\\\d\" bare  last=";
	const char *p = tail, *end = tail + strlen(tail);
	struct outbuf k = { 0 }, v = { 0 };
	static const char *const want[][2] = {
		{ "vm", "web-1" }, { "err", "no such file" }, { "q", "a \"b\" c\\d" },
		{ "bare", "" }, { "last", "" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char *ks, *vs;

		assert_true(logfmt_next(&p, end, &k, &v));
		ks = text(&k);
		vs = text(&v);
		assert_string_equal(ks, want[i][0]);
		assert_string_equal(vs, want[i][1]);
		free(ks);
		free(vs);
	}
	assert_false(logfmt_next(&p, end, &k, &v));
	outbuf_release(&k);
	outbuf_release(&v);
}

static void test_json_line(void **state)
{
	const char *tail = "vm=\"a\\\"b\" pid=42 raw=\"\x01\xff\"";
	struct outbuf b = { 0 };
	char *s;

	(void)state;
	assert_int_equal(log_json_line(&b, "2026-11-21T05:00:00.000Z", "warn", "say \"hi\"\n", tail,
				       strlen(tail)),
			 0);
	s = text(&b);
	assert_string_equal(s, "{\"ts\":\"2026-11-21T05:00:00.000Z\",\"level\":\"warn\","
			       "\"msg\":\"say \\\"hi\\\"\\u000a\",\"vm\":\"a\\\"b\",\"pid\":\"42\","
			       "\"raw\":\"\\u0001\\ufffd\"}\n");
	free(s);
	outbuf_release(&b);
}

static void test_json_no_tail(void **state)
{
	struct outbuf b = { 0 };
	char *s;

	(void)state;
	assert_int_equal(log_json_line(&b, "T", "info", "started", "", 0), 0);
	s = text(&b);
	assert_string_equal(s, "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"started\"}\n");
	free(s);
	outbuf_release(&b);
}

static void test_journal_record(void **state)
{
	const char *tail;
	struct outbuf b = { 0 };
	static const char want_head[] = "MESSAGE=VM gone\n"
					"PRIORITY=4\n"
					"SYSLOG_IDENTIFIER=kvmstats_exporter\n"
					"VM=web-1\n";

	(void)state;
	/* A tail value with a real newline takes the binary form. */
	tail = "vm=web-1 err=\"two\nlines\" message=clash 9lives=x";
	assert_int_equal(log_journal_record(&b, 4, "VM gone", tail, strlen(tail)), 0);
	assert_true(b.len > sizeof(want_head) - 1);
	assert_memory_equal(b.data, want_head, sizeof(want_head) - 1);

	const char *p = b.data + sizeof(want_head) - 1;
	uint64_t len;

	assert_memory_equal(p, "ERR\n", 4);
	memcpy(&len, p + 4, sizeof(len));
	assert_int_equal(le64toh(len), strlen("two\nlines"));
	assert_memory_equal(p + 12, "two\nlines\n", 10);
	p += 22;
	static const char want_tail[] = "KVMSTATS_MESSAGE=clash\nKVMSTATS_9LIVES=x\n";
	assert_int_equal((size_t)(b.data + b.len - p), sizeof(want_tail) - 1);
	assert_memory_equal(p, want_tail, sizeof(want_tail) - 1);
	outbuf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_logfmt_next),
		cmocka_unit_test(test_json_line),
		cmocka_unit_test(test_json_no_tail),
		cmocka_unit_test(test_journal_record),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
