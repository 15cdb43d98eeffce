/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "http/gzip.h"

#ifdef HAVE_ISAL
/*
 * isa-l's igzip at level 1: on the exporter's own expositions it writes
 * the same size as zlib at level 1 about ten times faster
 * (tests/bench/bench_compress.c, docs/performance.md), so that gzip no
 * longer costs more than collecting. Its state (about 300 KiB with the
 * level buffer) is made once per encoder and reset for every scrape.
 */
#include <isa-l/igzip_lib.h>

#define GZIP_LEVEL 1

struct gzip_encoder {
	struct isal_zstream s;
	uint8_t level_buf[ISAL_DEF_LVL1_DEFAULT];
};

int gzip_encoder_new(struct gzip_encoder **ret)
{
	struct gzip_encoder *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	isal_deflate_init(&g->s);
	*ret = g;
	return 0;
}

struct gzip_encoder *gzip_encoder_free(struct gzip_encoder *g)
{
	free(g);
	return NULL;
}

int gzip_encode(struct gzip_encoder *g, const void *in, size_t n, struct outbuf *out)
{
	struct isal_zstream *s = &g->s;
	const uint8_t *next = in;
	size_t left = n;

	outbuf_reset(out);
	isal_deflate_reset(s);
	s->level = GZIP_LEVEL;
	s->level_buf = g->level_buf;
	s->level_buf_size = sizeof(g->level_buf);
	s->gzip_flag = IGZIP_GZIP;
	s->flush = NO_FLUSH;
	s->end_of_stream = 0;
	s->avail_in = 0;
	/* Text this repetitive shrinks tenfold; start with a sixteenth and grow if needed. */
	if (outbuf_reserve(out, n / 16 + 1024) < 0)
		return -ENOMEM;

	/* isa-l counts in uint32_t: feed and drain in pieces of at most that. */
	while (s->internal_state.state != ZSTATE_END) {
		size_t room = out->cap - out->len;
		uint32_t before;

		if (s->avail_in == 0 && left > 0) {
			uint32_t take = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;

			s->next_in = (uint8_t *)(uintptr_t)next; /* only read */
			s->avail_in = take;
			next += take;
			left -= take;
		}
		s->end_of_stream = left == 0;
		if (room == 0) {
			if (outbuf_reserve(out, out->cap) < 0)
				return -ENOMEM;
			room = out->cap - out->len;
		}
		before = room > UINT32_MAX ? UINT32_MAX : (uint32_t)room;
		s->next_out = (uint8_t *)out->data + out->len;
		s->avail_out = before;
		if (isal_deflate(s) != COMP_OK)
			return -EIO;
		out->len += before - s->avail_out;
	}
	return 0;
}

#else /* zlib */
#include <zlib.h>

/*
 * Level 1: an exposition is repetitive text that level 1 already shrinks
 * about tenfold, at a fraction of the CPU of zlib's default level 6
 * (docs/performance.md); the scrape, not the network, is what we keep cheap.
 */
#define GZIP_LEVEL       Z_BEST_SPEED
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
#endif
