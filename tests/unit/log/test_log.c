/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the logger (log/log.c): logfmt and JSON lines, levels,
 * long lines, and lines from several threads that never interleave.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "capture.h"
#include "log/log.h"
#include "macro.h"

/* ---- logging --------------------------------------------------------------------------- */

/* Checks "ts=YYYY-MM-DDTHH:MM:SS.mmmZ " and returns what follows. */
static const char *skip_timestamp(const char *line)
{
	static const char shape[] = "ts=dddd-dd-ddTdd:dd:dd.dddZ ";

	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd' ? (line[i] < '0' || line[i] > '9') : line[i] != shape[i])
			fail_msg("bad timestamp in '%s'", line);
	}
	return line + sizeof(shape) - 1;
}

/* Splits s into lines (in place) and returns each line's text after the timestamp. */
static size_t log_lines(char *s, const char **lines, size_t max)
{
	char *save = NULL, *line;
	size_t n = 0;

	for (line = strtok_r(s, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save))
		lines[n++] = skip_timestamp(line);
	return n;
}

static void test_log_format(void **state)
{
	const char *lines[8];
	struct capture c;
	char *s;

	log_set_level(LOG_LEVEL_DEBUG);
	capture_start(&c, STDERR_FILENO);
	log_info("hello \"world\"\nsecond\\line\t\x01", "a=%d b=\"%s\" path=%s", 1, "two\nlines",
		 "/x\\y");
	log_debug("plain", NULL);
	log_warn("empty tail", "%s", "");
	log_error("error", "err=\"%s\"", strerror(ENOENT));
	log_info("", NULL);
	s = capture_stop(&c);
	log_set_level(LOG_LEVEL_INFO);

	assert_int_equal(count_char(s, '\n'), 5);
	assert_int_equal(s[strlen(s) - 1], '\n');
	assert_int_equal(log_lines(s, lines, ELEMENTSOF(lines)), 5);
	assert_string_equal(lines[0], "level=info msg=\"hello \\\"world\\\"\\nsecond\\\\line\\t"
				      "\\u0001\" a=1 b=\"two\\nlines\" path=/x\\y");
	assert_string_equal(lines[1], "level=debug msg=\"plain\"");
	assert_string_equal(lines[2], "level=warn msg=\"empty tail\"");
	assert_string_equal(lines[3],
			    "level=error msg=\"error\" err=\"No such file or directory\"");
	assert_string_equal(lines[4], "level=info msg=\"\"");
	free(s);
}

static void test_log_levels(void **state)
{
	static const struct {
		const char *s;
		int r;
		enum log_level level;
	} cases[] = {
		{ "debug", 0, LOG_LEVEL_DEBUG },
		{ "info", 0, LOG_LEVEL_INFO },
		{ "warn", 0, LOG_LEVEL_WARN },
		{ "error", 0, LOG_LEVEL_ERROR },
		{ "", -EINVAL, 0 },
		{ "Info", -EINVAL, 0 },
		{ "warning", -EINVAL, 0 },
		{ "info ", -EINVAL, 0 },
	};
	struct capture c;
	char *s;

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		enum log_level l = LOG_LEVEL_ERROR;

		assert_int_equal(log_level_parse(cases[i].s, &l), cases[i].r);
		if (cases[i].r == 0)
			assert_int_equal(l, cases[i].level);
	}
	assert_int_equal(log_level_parse(NULL, &(enum log_level){ 0 }), -EINVAL);

	log_set_level(LOG_LEVEL_WARN);
	capture_start(&c, STDERR_FILENO);
	log_debug("no", NULL);
	log_info("no", NULL);
	log_warn("yes", NULL);
	log_error("yes", NULL);
	s = capture_stop(&c);
	log_set_level(LOG_LEVEL_INFO);
	assert_int_equal(count_char(s, '\n'), 2);
	assert_non_null(strstr(s, "level=warn msg=\"yes\""));
	assert_non_null(strstr(s, "level=error msg=\"yes\""));
	assert_null(strstr(s, "\"no\""));
	free(s);
}

static void test_log_long_line(void **state)
{
	char msg[5000], tail[3000];
	struct capture c;
	char *s;

	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	memset(tail, 't', sizeof(tail) - 1);
	tail[sizeof(tail) - 1] = '\0';
	capture_start(&c, STDERR_FILENO);
	log_info(msg, "k=%s", tail);
	s = capture_stop(&c);
	assert_int_equal(count_char(s, '\n'), 1);
	assert_int_equal(strlen(skip_timestamp(s)),
			 strlen("level=info msg=\"\" k=\n") + strlen(msg) + strlen(tail));
	free(s);
}

#define LOG_THREADS 8
#define LOG_LINES   300

static void *log_thread(void *arg)
{
	for (int i = 0; i < LOG_LINES; i++)
		log_info("concurrent", "thread=%d i=%d pad=%0200d", (int)(intptr_t)arg, i, 0);
	return NULL;
}

static void test_log_threads(void **state)
{
	pthread_t t[LOG_THREADS];
	struct capture c;
	size_t lines = 0;
	char *s, *line, *save = NULL;

	capture_start(&c, STDERR_FILENO);
	for (intptr_t i = 0; i < LOG_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, log_thread, (void *)i), 0);
	for (int i = 0; i < LOG_THREADS; i++)
		pthread_join(t[i], NULL);
	s = capture_stop(&c);

	/* Every line whole: lines never interleave. */
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *rest = skip_timestamp(line);

		assert_int_equal(strncmp(rest, "level=info msg=\"concurrent\" thread=", 35), 0);
		assert_int_equal(strlen(strstr(rest, "pad=")), 4 + 200);
		lines++;
	}
	assert_int_equal(lines, LOG_THREADS * LOG_LINES);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_format),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_log_long_line),
		cmocka_unit_test(test_log_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
