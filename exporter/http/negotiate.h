/* SPDX-License-Identifier: MIT */
/*
 * Content negotiation for the telemetry path: the exposition format from
 * Accept, gzip from Accept-Encoding (RFC 9110, 12.5.1 and 12.5.3). Pure
 * functions of the header values that never allocate: a client controls them.
 */
#pragma once

#include <stdbool.h>

#include "expo/exposition.h"

/*
 * The format Accept prefers. OpenMetrics 1.0.0 only when its weight is
 * higher than text 0.0.4's, each weighed by the most specific media range
 * that names it (so "text/plain;q=0,*" does not serve text); text 0.0.4 for
 * NULL, ties, garbage, and when neither is acceptable.
 */
enum exposition_format negotiate_format(const char *accept);

/* Whether Accept-Encoding allows gzip (weight above 0) and does not prefer identity to it. */
bool negotiate_gzip(const char *accept_encoding);
