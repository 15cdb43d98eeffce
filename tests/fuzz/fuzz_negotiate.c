/* SPDX-License-Identifier: MIT */
/*
 * Accept and Accept-Encoding come from any client: whatever the bytes, the
 * parsers terminate, stay in bounds, and a leading element that settles the
 * answer is never overridden by what follows it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/negotiate.h"

/* negotiate_*() of prefix + data, as a NUL-terminated header value. */
static char *with_prefix(const char *prefix, const uint8_t *data, size_t size)
{
	size_t n = strlen(prefix);
	char *s = malloc(n + size + 1);

	CHECK(s);
	memcpy(s, prefix, n);
	memcpy(s + n, data, size);
	s[n + size] = '\0';
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = with_prefix("", data, size);
	enum exposition_format f = negotiate_format(s);

	CHECK(f == EXPOSITION_TEXT_004 || f == EXPOSITION_OPENMETRICS_100);
	(void)negotiate_gzip(s);
	free(s);

	/* The most specific range at the highest weight, first: nothing after it can win. */
	s = with_prefix("text/plain;version=0.0.4;q=1,", data, size);
	CHECK(negotiate_format(s) == EXPOSITION_TEXT_004);
	free(s);
	s = with_prefix("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0,",
			data, size);
	CHECK(negotiate_format(s) == EXPOSITION_OPENMETRICS_100);
	free(s);
	/* The first mention of a coding counts. */
	s = with_prefix("gzip;q=0,", data, size);
	CHECK(!negotiate_gzip(s));
	free(s);
	s = with_prefix("gzip,identity;q=0,", data, size);
	CHECK(negotiate_gzip(s));
	free(s);
	return 0;
}
