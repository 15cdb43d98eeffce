/* SPDX-License-Identifier: MIT */
/*
 * gzip of expositions: what zlib's inflate (as any HTTP client) reads back
 * is the input, for empty, small and multi-megabyte inputs; an encoder and
 * its output buffer are reused without growing; the buffer's limit is kept.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "http/gzip.h"
#include "expo/outbuf.h"

/* Inflates a whole gzip member; returns the output (caller frees) and its length. */
static char *gunzip(const struct outbuf *gz, size_t *ret_len)
{
	z_stream z = { 0 };
	size_t cap = 4096, len = 0;
	char *out = malloc(cap);
	int r;

	assert_non_null(out);
	assert_true(gz->len >= 18); /* 10-byte header, 8-byte trailer */
	assert_int_equal((unsigned char)gz->data[0], 0x1f);
	assert_int_equal((unsigned char)gz->data[1], 0x8b);
	/* 15 + 16: gzip only, not zlib or raw deflate. */
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)gz->data;
	z.avail_in = (uInt)gz->len;
	do {
		if (len == cap) {
			cap *= 2;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		z.next_out = (Bytef *)out + len;
		z.avail_out = (uInt)(cap - len);
		r = inflate(&z, Z_NO_FLUSH);
		len = cap - z.avail_out;
		assert_true(r == Z_OK || r == Z_STREAM_END);
	} while (r != Z_STREAM_END);
	/* One member and nothing after it. */
	assert_int_equal(z.avail_in, 0);
	inflateEnd(&z);
	*ret_len = len;
	return out;
}

static void round_trip(struct gzip_encoder *g, struct outbuf *gz, const char *in, size_t n)
{
	size_t len;
	char *back;

	assert_int_equal(gzip_encode(g, in, n, gz), 0);
	assert_false(gz->failed);
	back = gunzip(gz, &len);
	assert_int_equal(len, n);
	assert_memory_equal(back, in, n);
	free(back);
}

/* An exposition-like text of about n bytes. */
static char *exposition_text(size_t n, size_t *ret_len)
{
	struct outbuf b = { 0 };

	for (unsigned i = 0; b.len < n; i++)
		outbuf_printf(&b, "kvm_vcpu_exits_total{vm=\"vm-%u\",vcpu=\"%u\"} %u\n", i / 16,
			      i % 16, i * 7919u);
	assert_false(b.failed);
	*ret_len = b.len;
	return b.data;
}

static void test_round_trip(void **state)
{
	struct gzip_encoder *g = NULL;
	struct outbuf gz = { 0 };
	size_t n;
	char *text = exposition_text(4u << 20, &n);

	(void)state;
	assert_int_equal(gzip_encoder_new(&g), 0);
	round_trip(g, &gz, "", 0);
	round_trip(g, &gz, "x 1\n", 4);
	round_trip(g, &gz, text, n);
	/* Expositions are repetitive: compression must actually happen. */
	assert_true(gz.len < n / 5);
	/* Incompressible bytes still fit the reserved bound in one pass. */
	for (size_t i = 0; i < n; i++)
		text[i] = (char)(rand() & 0xff);
	round_trip(g, &gz, text, n);
	assert_true(gz.len > n);
	free(text);
	outbuf_release(&gz);
	gzip_encoder_free(g);
}

/* After the first scrape of a size, the same buffer is reused as it is: no growth. */
static void test_reuse(void **state)
{
	struct gzip_encoder *g = NULL;
	struct outbuf gz = { 0 };
	size_t n, cap;
	char *text = exposition_text(256u << 10, &n), *data, *first;

	(void)state;
	assert_int_equal(gzip_encoder_new(&g), 0);
	assert_int_equal(gzip_encode(g, text, n, &gz), 0);
	first = malloc(gz.len);
	assert_non_null(first);
	memcpy(first, gz.data, gz.len);
	data = gz.data;
	cap = gz.cap;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(gzip_encode(g, text, n, &gz), 0);
		assert_ptr_equal(gz.data, data);
		assert_int_equal(gz.cap, cap);
		/* deflateReset(): every scrape is a complete, identical member. */
		assert_memory_equal(gz.data, first, gz.len);
	}
	round_trip(g, &gz, text, n / 2);
	assert_ptr_equal(gz.data, data);
	free(first);
	free(text);
	outbuf_release(&gz);
	gzip_encoder_free(g);
}

/* The output buffer's hard limit holds: too big is -ENOMEM, not a cut member. */
static void test_limit(void **state)
{
	struct gzip_encoder *g = NULL;
	struct outbuf gz = { .max = 64 };
	size_t n;
	char *text = exposition_text(64u << 10, &n);

	(void)state;
	assert_int_equal(gzip_encoder_new(&g), 0);
	assert_int_equal(gzip_encode(g, text, n, &gz), -ENOMEM);
	assert_true(gz.failed);
	/* The encoder is still usable afterwards. */
	gz.max = 0;
	round_trip(g, &gz, text, n);
	free(text);
	outbuf_release(&gz);
	assert_null(gzip_encoder_free(g));
	assert_null(gzip_encoder_free(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
