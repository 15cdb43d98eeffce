/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "expo/outbuf.h"
#include "scale.h"

/*
 * Small, because short-lived buffers (an escaped VM name kept per VM) take
 * their memory with them; the reused exposition buffer doubles to its steady
 * size once and then stays there.
 */
#define OUTBUF_MIN_CAP 256

void outbuf_reset(struct outbuf *b)
{
	b->len = 0;
	b->failed = false;
}

void outbuf_release(struct outbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->failed = false;
	/* `max` is configuration, not state: a reused struct keeps its limit. */
}

int outbuf_reserve(struct outbuf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (b->failed)
		return -ENOMEM;
	if (b->cap - b->len >= n)
		return 0;

	if (n > SIZE_MAX - b->len)
		goto fail;
	need = b->len + n;
	if (b->max != 0 && need > b->max)
		goto fail;

	cap = b->cap > SIZE_MAX / 2 ? SIZE_MAX : b->cap * 2;
	if (cap < OUTBUF_MIN_CAP)
		cap = OUTBUF_MIN_CAP;
	if (cap < need)
		cap = need;
	if (b->max != 0 && cap > b->max)
		cap = b->max;

	p = realloc(b->data, cap);
	if (!p)
		goto fail;
	b->data = p;
	b->cap = cap;
	return 0;

fail:
	b->failed = true;
	return -ENOMEM;
}

void outbuf_put_slow(struct outbuf *b, const void *s, size_t n)
{
	if (n == 0 || outbuf_reserve(b, n) < 0)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

void outbuf_put_u64(struct outbuf *b, uint64_t v)
{
	char tmp[20]; /* UINT64_MAX has 20 digits */
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	outbuf_put(b, tmp + i, sizeof(tmp) - i);
}

void outbuf_put_u128(struct outbuf *b, kvmstats_u128 v)
{
	char tmp[40]; /* 39 digits and the NUL */
	int r;

	/* Almost every value fits in 64 bits, where division is cheap. */
	if (v <= UINT64_MAX) {
		outbuf_put_u64(b, (uint64_t)v);
		return;
	}
	r = kvmstats_format_u128(tmp, sizeof(tmp), v);
	if (r < 0) {
		b->failed = true;
		return;
	}
	outbuf_put(b, tmp, (size_t)r);
}

void outbuf_printf(struct outbuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t avail, n;
	int r;

	if (b->failed)
		return;

	/* First try the spare room, which after the first scrape is nearly always enough. */
	avail = b->cap - b->len;
	va_start(ap, fmt);
	r = vsnprintf(avail > 0 ? b->data + b->len : NULL, avail, fmt, ap);
	va_end(ap);
	if (r < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)r < avail) {
		b->len += (size_t)r;
		return;
	}
	if (r == 0)
		return;

	n = (size_t)r;
	if (outbuf_reserve(b, n) < 0)
		return;

	if (b->cap - b->len > n) {
		va_start(ap, fmt);
		r = vsnprintf(b->data + b->len, n + 1, fmt, ap);
		va_end(ap);
	} else {
		/*
		 * The text fits exactly up to `max`, leaving no byte for the NUL
		 * vsnprintf insists on writing; go through a scratch copy.
		 */
		_cleanup_free_ char *tmp = malloc(n + 1);

		if (!tmp) {
			b->failed = true;
			return;
		}
		va_start(ap, fmt);
		r = vsnprintf(tmp, n + 1, fmt, ap);
		va_end(ap);
		if (r >= 0 && (size_t)r == n)
			memcpy(b->data + b->len, tmp, n);
	}
	/* The same format and arguments must give the same length; anything else is suspect. */
	if (r < 0 || (size_t)r != n) {
		b->failed = true;
		return;
	}
	b->len += n;
}
