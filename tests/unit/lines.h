/* SPDX-License-Identifier: MIT */
/* Whole lines of an exposition, for the tests that read one. Include after cmocka.h. */
#pragma once

#include <stdbool.h>
#include <string.h>

/* Where line stands in text as a whole line, or NULL. */
static inline const char *find_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return p;
	return NULL;
}

static inline bool has_line(const char *text, const char *line)
{
	return find_line(text, line) != NULL;
}

/* Fails unless line is in text; returns where. */
static inline const char *assert_line(const char *text, const char *line)
{
	const char *p = find_line(text, line);

	if (!p)
		fail_msg("missing line: %s", line);
	return p;
}

static inline void assert_no_line(const char *text, const char *line)
{
	if (has_line(text, line))
		fail_msg("unexpected line: %s", line);
}
