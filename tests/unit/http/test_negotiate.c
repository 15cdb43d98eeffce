/* SPDX-License-Identifier: MIT */
/*
 * Accept and Accept-Encoding as real scrapers and browsers send them, and as
 * a hostile client might: weights, wildcards, specificity, q=0, garbage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "http/negotiate.h"

#define TEXT EXPOSITION_TEXT_004
#define OM   EXPOSITION_OPENMETRICS_100

/* Prometheus 2.x (2.42 in Debian 12) without and with native histograms. */
#define PROMETHEUS_2                                                                               \
	"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"   \
	"q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
#define PROMETHEUS_2_PROTOBUF                                                                      \
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"                 \
	"encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,"                     \
	"application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,"        \
	"*/*;q=0.1"
/* Prometheus 2.49+ scrape_protocols, and 3.x with its escaping parameter. */
#define SCRAPE_PROTOCOLS                                                                           \
	"application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"           \
	"version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
#define PROMETHEUS_3                                                                               \
	"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"                   \
	"application/openmetrics-text;version=0.0.1;q=0.4,"                                        \
	"text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"                                     \
	"text/plain;version=0.0.4;q=0.2,*/*;q=0.1"

static const struct {
	const char *accept;
	enum exposition_format want;
} format_cases[] = {
	/* Scrapers. */
	{ PROMETHEUS_2, OM },
	{ PROMETHEUS_2_PROTOBUF, OM },
	{ SCRAPE_PROTOCOLS, OM },
	{ PROMETHEUS_3, OM },
	{ "application/openmetrics-text", OM },
	{ "application/openmetrics-text; version=1.0.0; charset=utf-8", OM },
	{ "application/openmetrics-text;version=\"1.0.0\"", OM },
	{ "Application/OpenMetrics-Text;VERSION=1.0.0", OM },
	{ "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.6", OM },
	{ "text/plain;version=0.0.4;q=0.6,application/openmetrics-text;version=1.0.0;q=0.5", TEXT },
	/* No header, browsers, curl, plain text. */
	{ NULL, TEXT },
	{ "", TEXT },
	{ "*/*", TEXT },
	{ "text/plain", TEXT },
	{ "text/plain;version=0.0.4", TEXT },
	{ "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", TEXT },
	/* Equal weights: no preference, so the default. */
	{ "application/openmetrics-text,text/plain", TEXT },
	{ "text/plain,application/openmetrics-text", TEXT },
	/* Versions we cannot send do not count. */
	{ "application/openmetrics-text;version=0.0.1", TEXT },
	{ "application/openmetrics-text;version=2.0.0", TEXT },
	{ "application/openmetrics-text;version=0.0.1,text/plain;q=0.1", TEXT },
	/* q=0: not acceptable. */
	{ "application/openmetrics-text;q=0", TEXT },
	{ "application/openmetrics-text;version=1.0.0;q=0.000,text/plain;q=0.001", TEXT },
	{ "text/plain;q=0,*/*;q=0.1", OM },
	/* The most specific range decides, whatever its place or weight. */
	{ "*/*;q=1,application/openmetrics-text;q=0", TEXT },
	{ "application/openmetrics-text;version=1.0.0;q=0,application/openmetrics-text;q=1", TEXT },
	{ "text/*;q=0.2,application/*;q=0.3", OM },
	{ "application/*", OM },
	{ "text/*", TEXT },
	/* The first of equally specific ranges counts. */
	{ "application/openmetrics-text;q=0.9,application/openmetrics-text;q=0.1,text/plain;q=0.5",
	  OM },
	/* Whitespace and empty elements or parameters. */
	{ " application/openmetrics-text ; version=1.0.0 ; q=0.9 , text/plain ; q=0.1", OM },
	{ ",,application/openmetrics-text;;q=0.9,,", OM },
	/* Garbage elements are ignored, never taken at weight 1. */
	{ "application/openmetrics-text;q=2", TEXT },
	{ "application/openmetrics-text;q=1.5", TEXT },
	{ "application/openmetrics-text;q=0.0001", TEXT },
	{ "application/openmetrics-text;q=-1", TEXT },
	{ "application/openmetrics-text;q=", TEXT },
	{ "application/openmetrics-text;q", TEXT },
	{ "application/openmetrics-text;q=0.5x", TEXT },
	{ "application/openmetrics-text;version=\"1.0.0", TEXT },
	{ "application/ openmetrics-text", TEXT },
	{ "application", TEXT },
	{ "/openmetrics-text", TEXT },
	{ "*/openmetrics-text", TEXT },
	{ "\"application/openmetrics-text\"", TEXT },
	{ "application/openmetrics-text\x01", TEXT },
	{ "application/openmetrics-text;foo=\"a,b\\\"c\",text/plain;q=0.1", OM },
	{ "garbage;;;===,,,\"", TEXT },
	{ "bad/\"x,y\";q=1,application/openmetrics-text;q=0.5,text/plain;q=0.4", OM },
	{ "text/plain;q=0.1,\xff\xfe/\x80", TEXT },
};

static const struct {
	const char *accept_encoding;
	bool want;
} gzip_cases[] = {
	{ NULL, false },
	{ "", false },
	{ "gzip", true },
	{ "GZIP", true },
	{ "x-gzip", true },
	{ "gzip, deflate, br", true },
	{ "deflate, gzip;q=1.0, *;q=0.5", true },
	{ "br;q=1.0, gzip;q=0.8, *;q=0.1", true },
	{ "identity", false },
	{ "deflate, br", false },
	{ "*", true },
	{ "*;q=0", false },
	{ "gzip;q=0", false },
	{ "gzip;q=0.000", false },
	{ "gzip;q=0, *", false },
	{ "gzip;q=0.001", true },
	/* An explicit preference for identity wins; equal weights take gzip. */
	{ "gzip;q=0.5, identity", false },
	{ "gzip;q=0.5, identity;q=0.5", true },
	{ "identity;q=0, gzip", true },
	{ "gzip;q=1, identity;q=0.9", true },
	/* The first mention counts. */
	{ "gzip;q=0, gzip", false },
	{ " gzip ; q=0.7 ", true },
	/* Garbage. */
	{ "gzip;q=2", false },
	{ "gzip;q=", false },
	{ "gzip;q=0.5;q=", false },
	{ "gzip;q=abc", false },
	{ "gzip/x", false },
	{ "\"gzip\"", false },
	{ ";;,,gzip", true },
	{ "gz ip", false },
	{ "\xffgzip", false },
};

static void test_format(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(format_cases); i++) {
		enum exposition_format got = negotiate_format(format_cases[i].accept);

		if (got != format_cases[i].want)
			fail_msg("Accept: %s: got %s, want %s",
				 format_cases[i].accept ? format_cases[i].accept : "(none)",
				 got == OM ? "OpenMetrics" : "text 0.0.4",
				 format_cases[i].want == OM ? "OpenMetrics" : "text 0.0.4");
	}
}

static void test_gzip(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(gzip_cases); i++) {
		bool got = negotiate_gzip(gzip_cases[i].accept_encoding);

		if (got != gzip_cases[i].want)
			fail_msg("Accept-Encoding: %s: got %s",
				 gzip_cases[i].accept_encoding ? gzip_cases[i].accept_encoding
							       : "(none)",
				 got ? "gzip" : "identity");
	}
}

/* A header as long as the connection memory limit allows: linear, no crash, text. */
static void test_long_headers(void **state)
{
	enum { N = 32 * 1024 };
	char *s = malloc(N + 1);

	(void)state;
	assert_non_null(s);
	for (size_t i = 0; i < N; i++)
		s[i] = ",;=\"\\a/*"[i % 8];
	s[N] = '\0';
	assert_int_equal(negotiate_format(s), TEXT);
	assert_false(negotiate_gzip(s));
	/* Many valid elements, the one that matters last. */
	for (size_t i = 0; i + 6 <= N; i += 6)
		memcpy(s + i, "x/y;q=", 6);
	memset(s + N - 40, ',', 40);
	memcpy(s + N - 40, ",application/openmetrics-text", 29);
	assert_int_equal(negotiate_format(s), OM);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_long_headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
