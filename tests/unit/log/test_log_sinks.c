/* SPDX-License-Identifier: MIT */
/* JSON and journal renderings of log events, and the logfmt tail they parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
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
		{ "vm", "web-1" },       { "err", "no such file" },
		{ "q", "a \"b\" c\\d" }, { "bare", "" },
		{ "last", "" },
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
	/* NUL-terminated fields; the newline stays in the value (sd_journal_sendv encodes it). */
	static const char want[] = "MESSAGE=VM gone\0"
				   "PRIORITY=4\0"
				   "SYSLOG_IDENTIFIER=kvmstats_exporter\0"
				   "VM=web-1\0"
				   "ERR=two\nlines\0"
				   "KVMSTATS_MESSAGE=clash\0"
				   "KVMSTATS_9LIVES=x\0";

	(void)state;
	tail = "vm=web-1 err=\"two\nlines\" message=clash 9lives=x";
	assert_int_equal(log_journal_record(&b, 4, "VM gone", tail, strlen(tail)), 0);
	assert_int_equal(b.len, sizeof(want) - 1);
	assert_memory_equal(b.data, want, sizeof(want) - 1);
	outbuf_release(&b);
}

/* More fields than a record may carry: refused before anything is sent. */
static void test_journal_too_many_fields(void **state)
{
	struct outbuf tail = { 0 }, b = { 0 };

	(void)state;
	for (int i = 0; i < LOG_JOURNAL_FIELDS_MAX; i++)
		outbuf_printf(&tail, "k%d=v ", i);
	assert_false(tail.failed);
	assert_int_equal(log_journal_record(&b, 6, "m", tail.data, tail.len), 0);
	assert_int_equal(log_journal_send(b.data, b.len), -E2BIG);
	outbuf_release(&tail);
	outbuf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_logfmt_next),
		cmocka_unit_test(test_json_line),
		cmocka_unit_test(test_json_no_tail),
		cmocka_unit_test(test_journal_record),
		cmocka_unit_test(test_journal_too_many_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
