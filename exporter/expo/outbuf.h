/* SPDX-License-Identifier: MIT */
/*
 * A growable output buffer, reused across scrapes. It grows or fails, never
 * truncates: after an allocation failure every later write is dropped and
 * `failed` stays set until outbuf_reset(), so the caller answers 500 rather
 * than serving a silently cut exposition.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "scale.h"

struct outbuf {
	char *data; /* not NUL-terminated */
	size_t len;
	size_t cap;
	size_t max; /* hard limit in bytes; 0 means no limit */
	bool failed;
};

/* Empties the buffer, keeping its memory, and clears `failed`. */
void outbuf_reset(struct outbuf *b);
/* Frees the memory (keeping `max`); the struct may be reused afterwards. */
void outbuf_release(struct outbuf *b);
/* Makes room for n more bytes; 0 or -ENOMEM (also beyond `max`), setting failed. */
int outbuf_reserve(struct outbuf *b, size_t n);
/* The growing path of outbuf_put(): reserves, then appends (or fails). */
void outbuf_put_slow(struct outbuf *b, const void *s, size_t n);

/*
 * Appends n bytes. Inline because a scrape appends a dozen pieces per
 * sample: when they fit, an append is a compare and a memcpy.
 */
static inline void outbuf_put(struct outbuf *b, const void *s, size_t n)
{
	if (n == 0)
		return;
	if (__builtin_expect(!b->failed && b->cap - b->len >= n, 1)) {
		memcpy(b->data + b->len, s, n);
		b->len += n;
		return;
	}
	outbuf_put_slow(b, s, n);
}

/* Appends a NUL-terminated string. */
static inline void outbuf_puts(struct outbuf *b, const char *s)
{
	outbuf_put(b, s, strlen(s));
}

/* Appends one character. */
static inline void outbuf_putc(struct outbuf *b, char c)
{
	outbuf_put(b, &c, 1);
}
/* Appends an unsigned integer in decimal. */
void outbuf_put_u64(struct outbuf *b, uint64_t v);
/* Appends a 128-bit unsigned integer in decimal. */
void outbuf_put_u128(struct outbuf *b, kvmstats_u128 v);
/* Appends printf-formatted text (locale-independent formats only). */
void outbuf_printf(struct outbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
