/* SPDX-License-Identifier: MIT */
/*
 * The one family writer. Every family in the exposition, KVM, vhost-user or
 * the exporter's own, is written through it: the metadata lines (HELP, TYPE,
 * UNIT) in text 0.0.4 or OpenMetrics, sample names, labels (values escaped
 * by the one escaper) and values (integers, exact decimals, seconds).
 *
 *     family_begin(w, "x", FAMILY_COUNTER, NULL, "Help.");
 *     family_sample(w, NULL);              // "x_total"
 *     family_label(w, "vm", name);         // {vm="..."
 *     family_value_u64(w, 3);              // } 3\n
 *
 * Sample and label calls are inline: a scrape writes them for every series.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "expo/escape.h"
#include "expo/exposition.h"
#include "expo/outbuf.h"

enum family_type {
	FAMILY_COUNTER,
	FAMILY_GAUGE,
	FAMILY_HISTOGRAM,
};

struct family_writer {
	struct outbuf *out;
	enum exposition_format fmt;
	/* The family being written (family_begin()). */
	const char *family;
	enum family_type type;
	char sep; /* before the next label: '{' for the first, ',' after */
};

/*
 * What a part of the daemon registers to have its families written at each
 * scrape (sources, the vhost-user tap): called with the scrape's writer.
 */
typedef void (*family_writer_fn)(void *userdata, struct family_writer *w);

/* A writer appending to out in fmt. */
static inline struct family_writer family_writer_init(struct outbuf *out,
						      enum exposition_format fmt)
{
	return (struct family_writer){ .out = out, .fmt = fmt };
}

/*
 * Writes the metadata of one family and makes it the current one. `family`
 * is the name without "_total" (text 0.0.4 names a counter by its sample,
 * x_total; OpenMetrics names the family, x). unit may be NULL; it is written
 * (OpenMetrics only) when the name ends in "_<unit>". help is escaped.
 */
void family_begin(struct family_writer *w, const char *family, enum family_type type,
		  const char *unit, const char *help);

/* family_sample() with the suffix's length given (a hot path's constant). */
static inline void family_sample_n(struct family_writer *w, const char *suffix, size_t suffix_len)
{
	outbuf_puts(w->out, w->family);
	if (suffix)
		outbuf_put(w->out, suffix, suffix_len);
	else if (w->type == FAMILY_COUNTER)
		outbuf_put(w->out, "_total", 6);
	w->sep = '{';
}

/*
 * Starts a sample of the current family: its name, then suffix ("_bucket",
 * "_sum", "_count"), or with suffix NULL the family's own sample (counters
 * "_total"). Labels and one value follow.
 */
static inline void family_sample(struct family_writer *w, const char *suffix)
{
	family_sample_n(w, suffix, suffix ? strlen(suffix) : 0);
}

/* Starts a label: `{name="` or `,name="`; the caller writes the value and closes it. */
static inline void family_label_start(struct family_writer *w, const char *name)
{
	struct outbuf *b = w->out;
	size_t n = strlen(name);

	/* One bounds check for the four pieces: this runs for every label of every series. */
	if (__builtin_expect(!b->failed && b->cap - b->len >= n + 3, 1)) {
		char *p = b->data + b->len;

		p[0] = w->sep;
		memcpy(p + 1, name, n);
		p[n + 1] = '=';
		p[n + 2] = '"';
		b->len += n + 3;
	} else {
		outbuf_putc(b, w->sep);
		outbuf_put(b, name, n);
		outbuf_put(b, "=\"", 2);
	}
	w->sep = ',';
}

/*
 * A label whose value is escaped already (made once, written at every
 * scrape), of known length: one bounds check for the whole label.
 */
static inline void family_label_escaped_n(struct family_writer *w, const char *name,
					  const char *escaped, size_t len)
{
	struct outbuf *b = w->out;
	size_t n = strlen(name);

	if (__builtin_expect(!b->failed && b->cap - b->len >= n + len + 4, 1)) {
		char *p = b->data + b->len;

		p[0] = w->sep;
		memcpy(p + 1, name, n);
		p[n + 1] = '=';
		p[n + 2] = '"';
		memcpy(p + n + 3, escaped, len);
		p[n + 3 + len] = '"';
		b->len += n + len + 4;
		w->sep = ',';
		return;
	}
	family_label_start(w, name);
	outbuf_put(b, escaped, len);
	outbuf_putc(b, '"');
}

/* The same for a NUL-terminated value. */
static inline void family_label_escaped(struct family_writer *w, const char *name,
					const char *escaped)
{
	family_label_escaped_n(w, name, escaped, strlen(escaped));
}

/* A label with any value: escaped here. */
static inline void family_label(struct family_writer *w, const char *name, const char *value)
{
	family_label_start(w, name);
	escape_puts(w->out, value, ESCAPE_LABEL_VALUE);
	outbuf_putc(w->out, '"');
}

/* A label with an unsigned number as value. */
static inline void family_label_u64(struct family_writer *w, const char *name, uint64_t v)
{
	family_label_start(w, name);
	outbuf_put_u64(w->out, v);
	outbuf_putc(w->out, '"');
}

/* Ends the labels (if any) before the value. */
static inline void family_value_start(struct family_writer *w)
{
	if (w->sep == ',')
		outbuf_put(w->out, "} ", 2);
	else
		outbuf_put(w->out, " ", 1);
}

/* Ends the sample with an unsigned integer value. */
static inline void family_value_u64(struct family_writer *w, uint64_t v)
{
	family_value_start(w);
	outbuf_put_u64(w->out, v);
	outbuf_putc(w->out, '\n');
}

/* Ends the sample with a 128-bit unsigned integer value. */
static inline void family_value_u128(struct family_writer *w, kvmstats_u128 v)
{
	family_value_start(w);
	outbuf_put_u128(w->out, v);
	outbuf_putc(w->out, '\n');
}

/* Ends the sample with a value already spelled (an exact decimal). */
static inline void family_value_text(struct family_writer *w, const char *s, size_t n)
{
	family_value_start(w);
	outbuf_put(w->out, s, n);
	outbuf_putc(w->out, '\n');
}

/* Ends the sample with 0 or 1. */
static inline void family_value_bool(struct family_writer *w, bool v)
{
	family_value_u64(w, v ? 1 : 0);
}

/* Ends the sample with a duration in seconds, to the microsecond. */
void family_value_seconds(struct family_writer *w, double seconds);

/* A family of one sample without labels: its header, then `family[_total] v`. */
void family_write_u64(struct family_writer *w, const char *family, enum family_type type,
		      const char *help, uint64_t v);

/* A gauge of one duration without labels, in seconds (unit "seconds"). */
void family_write_seconds(struct family_writer *w, const char *family, const char *help,
			  double seconds);

/* Ends the exposition: "# EOF" for OpenMetrics, nothing for text 0.0.4. */
static inline void family_writer_end(struct family_writer *w)
{
	exposition_write_end(w->out, w->fmt);
}
