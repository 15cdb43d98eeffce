/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "scale.h"

/* Decimal digits of UINT128_MAX (340282366920938463463374607431768211455). */
#define U128_DIGITS 39

/*
 * v * 2^-64 is computed as v * 5^64 / 10^64; 5^64 has 45 digits, which is
 * the widest intermediate.  2^64 (20 digits) and 10^e (no digits, only a
 * shift) stay below that.
 */
#define SCALE_MAX_DIGITS (U128_DIGITS + 45)
_Static_assert(SCALE_MAX_DIGITS <= KVMSTATS_SCALED_BUFSIZE, "digit array too small");

/*
 * The longest rendering is UINT128_MAX * 10^64: 39 + 64 digits.  Fractions
 * are shorter ("0." and at most 64 fractional digits).
 */
_Static_assert(U128_DIGITS + KVMSTATS_SCALE_MAX_EXPONENT + 1 <= KVMSTATS_SCALED_BUFSIZE,
               "KVMSTATS_SCALED_BUFSIZE too small for the largest value");

/* Largest powers that keep digit * factor + carry far below 2^64. */
#define MUL2_STEP 28 /* 2^28 */
#define MUL5_STEP 13 /* 5^13 = 1220703125 */

/* Digits are stored least significant first. */
struct digits {
	uint8_t d[KVMSTATS_SCALED_BUFSIZE];
	size_t n;
};

static void digits_from_u128(struct digits *ds, kvmstats_u128 v)
{
	ds->n = 0;
	/* 128-bit division is a library call; switch to 64-bit as soon as the value fits. */
	while (v > UINT64_MAX) {
		ds->d[ds->n++] = (uint8_t)(v % 10);
		v /= 10;
	}
	uint64_t w = (uint64_t)v;
	do {
		ds->d[ds->n++] = (uint8_t)(w % 10);
		w /= 10;
	} while (w != 0);
}

static int digits_mul(struct digits *ds, uint32_t factor)
{
	uint64_t carry = 0;

	for (size_t i = 0; i < ds->n; i++) {
		uint64_t t = (uint64_t)ds->d[i] * factor + carry;
		ds->d[i] = (uint8_t)(t % 10);
		carry = t / 10;
	}
	while (carry != 0) {
		if (ds->n >= sizeof(ds->d))
			return -EOVERFLOW;
		ds->d[ds->n++] = (uint8_t)(carry % 10);
		carry /= 10;
	}
	return 0;
}

/* Multiplies by base^count, base^step at a time. */
static int digits_mul_pow(struct digits *ds, uint32_t base, unsigned step, unsigned count)
{
	while (count > 0) {
		unsigned k = count < step ? count : step;
		uint32_t factor = 1;
		int r;

		for (unsigned i = 0; i < k; i++)
			factor *= base;
		r = digits_mul(ds, factor);
		if (r < 0)
			return r;
		count -= k;
	}
	return 0;
}

int kvmstats_format_u128(char *buf, size_t len, kvmstats_u128 v)
{
	struct digits ds;

	digits_from_u128(&ds, v);
	if (len < ds.n + 1)
		return -ENOBUFS;
	for (size_t i = 0; i < ds.n; i++)
		buf[i] = (char)('0' + ds.d[ds.n - 1 - i]);
	buf[ds.n] = '\0';
	return (int)ds.n;
}

int kvmstats_format_scaled(char *buf, size_t len, kvmstats_u128 v, unsigned base, int exponent)
{
	struct digits ds;
	/* The value is digits * 10^shift from here on. */
	int shift;
	size_t total, pos = 0;
	int r;

	if (base != 2 && base != 10)
		return -EINVAL;
	if (exponent < -KVMSTATS_SCALE_MAX_EXPONENT || exponent > KVMSTATS_SCALE_MAX_EXPONENT)
		return -EINVAL;

	if (v == 0)
		return kvmstats_format_u128(buf, len, 0);

	digits_from_u128(&ds, v);
	if (base == 10) {
		shift = exponent;
	} else if (exponent >= 0) {
		r = digits_mul_pow(&ds, 2, MUL2_STEP, (unsigned)exponent);
		if (r < 0)
			return r;
		shift = 0;
	} else {
		/* 2^-k = 5^k / 10^k keeps everything in integers. */
		r = digits_mul_pow(&ds, 5, MUL5_STEP, (unsigned)-exponent);
		if (r < 0)
			return r;
		shift = exponent;
	}

	/* v != 0, so some digit is non-zero and this stops. */
	size_t skip = 0;
	while (shift < 0 && ds.d[skip] == 0) {
		skip++;
		shift++;
	}

	size_t ndig = ds.n - skip;
	const uint8_t *d = ds.d + skip;

	if (shift >= 0) {
		total = ndig + (size_t)shift;
	} else {
		size_t frac = (size_t)-shift;

		if (ndig > frac)
			total = ndig + 1;
		else
			total = 2 + frac; /* "0." and zero padding */
	}
	if (len < total + 1)
		return -ENOBUFS;

	if (shift >= 0) {
		for (size_t i = ndig; i > 0; i--)
			buf[pos++] = (char)('0' + d[i - 1]);
		memset(buf + pos, '0', (size_t)shift);
		pos += (size_t)shift;
	} else {
		size_t frac = (size_t)-shift;

		if (ndig > frac) {
			for (size_t i = ndig; i > frac; i--)
				buf[pos++] = (char)('0' + d[i - 1]);
			buf[pos++] = '.';
		} else {
			buf[pos++] = '0';
			buf[pos++] = '.';
			memset(buf + pos, '0', frac - ndig);
			pos += frac - ndig;
		}
		for (size_t i = ndig < frac ? ndig : frac; i > 0; i--)
			buf[pos++] = (char)('0' + d[i - 1]);
	}
	buf[pos] = '\0';
	return (int)pos;
}
