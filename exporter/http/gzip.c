/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#include "http/gzip.h"

/*
 * Level 1: an exposition is repetitive text that level 1 already shrinks
 * about tenfold, at a fraction of the CPU of zlib's default level 6
 * (docs/performance.md); the scrape, not the network, is what we keep cheap.
 */
#define GZIP_LEVEL Z_BEST_SPEED
/* 15: the largest window; + 16: a gzip header and trailer around the deflate stream. */
#define GZIP_WINDOW_BITS (15 + 16)
#define GZIP_MEM_LEVEL   8

struct gzip_encoder {
	z_stream z;
};

int gzip_encoder_new(struct gzip_encoder **ret)
{
	struct gzip_encoder *g = calloc(1, sizeof(*g));
	int r;

	if (!g)
		return -ENOMEM;
	r = deflateInit2(&g->z, GZIP_LEVEL, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
	                 Z_DEFAULT_STRATEGY);
	if (r != Z_OK) {
		free(g);
		return r == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
	}
	*ret = g;
	return 0;
}

struct gzip_encoder *gzip_encoder_free(struct gzip_encoder *g)
{
	if (!g)
		return NULL;
	deflateEnd(&g->z);
	free(g);
	return NULL;
}

int gzip_encode(struct gzip_encoder *g, const void *in, size_t n, struct outbuf *out)
{
	const unsigned char *next = in;
	size_t left = n;

	outbuf_reset(out);
	if (deflateReset(&g->z) != Z_OK)
		return -EIO;
	/* With room for deflateBound() one deflate() call does it all. */
	if (outbuf_reserve(out, deflateBound(&g->z, n)) < 0)
		return -ENOMEM;

	/* zlib counts in uInt (32 bits): feed and drain in pieces of at most that. */
	for (;;) {
		size_t room = out->cap - out->len;
		uInt before;
		int r;

		if (g->z.avail_in == 0 && left > 0) {
			uInt take = left > UINT_MAX ? UINT_MAX : (uInt)left;

			/* zlib's next_in is not const, but deflate() only reads it. */
			g->z.next_in = (Bytef *)(uintptr_t)next;
			g->z.avail_in = take;
			next += take;
			left -= take;
		}
		if (room == 0) {
			if (outbuf_reserve(out, out->cap) < 0)
				return -ENOMEM;
			room = out->cap - out->len;
		}
		before = room > UINT_MAX ? UINT_MAX : (uInt)room;
		g->z.next_out = (Bytef *)out->data + out->len;
		g->z.avail_out = before;
		r = deflate(&g->z, left == 0 ? Z_FINISH : Z_NO_FLUSH);
		out->len += before - g->z.avail_out;
		if (r == Z_STREAM_END)
			return 0;
		if (r != Z_OK && r != Z_BUF_ERROR)
			return -EIO;
	}
}
