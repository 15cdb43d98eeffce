/* SPDX-License-Identifier: MIT */
/*
 * The one family writer: metadata lines (HELP, TYPE, UNIT) of a family in
 * text 0.0.4 or OpenMetrics. Every family in the exposition, KVM, vhost-user
 * or the exporter's own, gets its header here.
 */
#pragma once

#include "expo/exposition.h"
#include "expo/outbuf.h"

enum family_type {
	FAMILY_COUNTER,
	FAMILY_GAUGE,
	FAMILY_HISTOGRAM,
};

/*
 * Writes the metadata of one family. `family` is the family name without
 * "_total" (text 0.0.4 names a counter by its sample, x_total; OpenMetrics
 * names the family, x). unit may be NULL; it is written (OpenMetrics only)
 * when the name ends in "_<unit>". help is escaped for the format.
 */
void family_write_header(struct outbuf *out, enum exposition_format fmt, const char *family,
			 enum family_type type, const char *unit, const char *help);
