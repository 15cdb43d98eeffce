/* SPDX-License-Identifier: MIT */
/*
 * gzip (RFC 1952) of an exposition, for "Content-Encoding: gzip". An encoder
 * goes with one reused scrape buffer: zlib's deflate state (about 256 KiB)
 * is made once and reset for every scrape, and the output buffer keeps its
 * grown size, so a steady scraper costs no allocation after the first.
 */
#pragma once

#include <stddef.h>

#include "expo/outbuf.h"

struct gzip_encoder;

/* A new encoder. 0 or -ENOMEM. */
int gzip_encoder_new(struct gzip_encoder **ret);
/* Frees an encoder. Accepts NULL, returns NULL. */
struct gzip_encoder *gzip_encoder_free(struct gzip_encoder *g);

/* Replaces out's contents with in[0..n) as one gzip member. 0, -ENOMEM (out->max too), -EIO. */
int gzip_encode(struct gzip_encoder *g, const void *in, size_t n, struct outbuf *out);
