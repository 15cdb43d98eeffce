/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "expo/escape.h"
#include "expo/family.h"

/* Whether a family name ends in "_<unit>", as OpenMetrics requires of a UNIT line. */
static bool name_has_unit(const char *family, const char *unit)
{
	size_t n = strlen(family), u = strlen(unit);

	return n > u + 1 && family[n - u - 1] == '_' && strcmp(family + n - u, unit) == 0;
}

/*
 * The metadata of one family. Text 0.0.4 names a counter by its sample
 * (x_total) and has no units; OpenMetrics names the family (x), wants TYPE,
 * UNIT, HELP in that order, and escapes '"' in HELP too.
 */
void family_begin(struct family_writer *w, const char *family, enum family_type type,
		  const char *unit, const char *help)
{
	struct outbuf *out = w->out;
	enum exposition_format fmt = w->fmt;
	static const char *const type_names[] = {
		[FAMILY_COUNTER] = "counter",
		[FAMILY_GAUGE] = "gauge",
		[FAMILY_HISTOGRAM] = "histogram",
	};
	const char *total = type == FAMILY_COUNTER ? "_total" : "";

	w->family = family;
	w->type = type;

	if (fmt == EXPOSITION_OPENMETRICS_100) {
		outbuf_puts(out, "# TYPE ");
		outbuf_puts(out, family);
		outbuf_putc(out, ' ');
		outbuf_puts(out, type_names[type]);
		/* A unit that is not the name's suffix would fail the whole scrape. */
		if (unit && name_has_unit(family, unit)) {
			outbuf_puts(out, "\n# UNIT ");
			outbuf_puts(out, family);
			outbuf_putc(out, ' ');
			outbuf_puts(out, unit);
		}
		outbuf_puts(out, "\n# HELP ");
		outbuf_puts(out, family);
		outbuf_putc(out, ' ');
		escape_puts(out, help, ESCAPE_HELP_OPENMETRICS);
		outbuf_putc(out, '\n');
		return;
	}
	outbuf_puts(out, "# HELP ");
	outbuf_puts(out, family);
	outbuf_puts(out, total);
	outbuf_putc(out, ' ');
	escape_puts(out, help, ESCAPE_HELP_TEXT);
	outbuf_puts(out, "\n# TYPE ");
	outbuf_puts(out, family);
	outbuf_puts(out, total);
	outbuf_putc(out, ' ');
	outbuf_puts(out, type_names[type]);
	outbuf_putc(out, '\n');
}

void family_value_seconds(struct family_writer *w, double seconds)
{
	family_value_start(w);
	outbuf_printf(w->out, "%.6f\n", seconds);
}

void family_write_u64(struct family_writer *w, const char *family, enum family_type type,
		      const char *help, uint64_t v)
{
	family_begin(w, family, type, NULL, help);
	family_sample(w, NULL);
	family_value_u64(w, v);
}

void family_write_seconds(struct family_writer *w, const char *family, const char *help,
			  double seconds)
{
	family_begin(w, family, FAMILY_GAUGE, "seconds", help);
	family_sample(w, NULL);
	family_value_seconds(w, seconds);
}
