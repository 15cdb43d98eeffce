/* SPDX-License-Identifier: MIT */
/*
 * The two exposition formats, text 0.0.4 and OpenMetrics 1.0.0
 * (docs/metrics.md, "Formats"): their names, Content-Type and ending.
 */
#pragma once

#include "expo/outbuf.h"

enum exposition_format {
	EXPOSITION_TEXT_004,        /* text/plain; version=0.0.4 */
	EXPOSITION_OPENMETRICS_100, /* application/openmetrics-text; version=1.0.0 */
};

/* The Content-Type header value of a format. */
const char *exposition_content_type(enum exposition_format fmt);

/* Ends an exposition: "# EOF" for OpenMetrics, nothing for text 0.0.4. */
void exposition_write_end(struct outbuf *out, enum exposition_format fmt);
