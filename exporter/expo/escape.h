/* SPDX-License-Identifier: MIT */
/*
 * The one escaper for everything user- or peer-controlled that goes into an
 * exposition: label values and HELP text, in text 0.0.4 and OpenMetrics modes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "expo/outbuf.h"

enum escape_mode {
	ESCAPE_LABEL_VALUE,      /* both formats: \\ \" \n */
	ESCAPE_HELP_TEXT,        /* text 0.0.4 HELP: \\ \n */
	ESCAPE_HELP_OPENMETRICS, /* OpenMetrics HELP: \\ \" \n */
};

/*
 * Appends s[0..n) escaped for mode. Each maximal invalid UTF-8 sequence
 * (and each NUL byte) becomes one U+FFFD, so the exposition is always valid
 * UTF-8.
 */
void escape_put(struct outbuf *b, const char *s, size_t n, enum escape_mode mode);

/* escape_put() on a NUL-terminated string. */
void escape_puts(struct outbuf *b, const char *s, enum escape_mode mode);

/* True if s is a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not "__" prefixed). */
bool escape_label_name_valid(const char *s);
