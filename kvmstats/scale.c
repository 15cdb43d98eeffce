/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- OpenMetrics canonical floats -------------------------------------------------- */

/* Significant digits d[0].d[1]...d[nd-1] times 10^exp. */
struct sci {
	char d[24];
	int nd;
	int exp;
};

/* Reads what "%.*e" printed: "d.ddde+XX", or "de+XX" at precision 0. */
static int sci_parse(const char *s, struct sci *x)
{
	x->nd = 0;
	for (; *s && *s != 'e'; s++) {
		if (*s < '0' || *s > '9')
			continue; /* the decimal point */
		if (x->nd == (int)sizeof(x->d))
			return -EINVAL;
		x->d[x->nd++] = *s;
	}
	if (*s != 'e' || x->nd == 0)
		return -EINVAL;
	x->exp = (int)strtol(s + 1, NULL, 10);
	return 0;
}

/* The float64 nearest to x. */
static double sci_value(const struct sci *x)
{
	char buf[48];

	snprintf(buf, sizeof(buf), "%c.%.*se%d", x->d[0], x->nd - 1, x->d + 1, x->exp);
	return strtod(buf, NULL);
}

/* Adds one unit in the last place (9.99e0 -> 1.00e1). */
static void sci_bump(struct sci *x)
{
	int i = x->nd - 1;

	while (i >= 0 && x->d[i] == '9')
		x->d[i--] = '0';
	if (i >= 0) {
		x->d[i]++;
		return;
	}
	x->d[0] = '1';
	x->exp++;
}

/*
 * The fewest significant digits that read back as v, as Go's shortest
 * formatting finds them. glibc's "%.*e" rounds correctly, so at each
 * precision its candidate is the nearest one; only just above a power of
 * two, where the gap to the float below is half the gap above, can the
 * nearest candidate (below v) miss while the next one up still reads back.
 */
static int sci_shortest(double v, struct sci *ret)
{
	int exp2;
	bool pow2 = frexp(v, &exp2) == 0.5;

	/* 17 significant digits always read back. */
	for (int prec = 0; prec <= 16; prec++) {
		char e[48];
		struct sci x;
		double back;

		snprintf(e, sizeof(e), "%.*e", prec, v);
		if (sci_parse(e, &x) < 0)
			return -EINVAL;
		back = sci_value(&x);
		if (back != v && pow2 && back < v) {
			sci_bump(&x);
			back = sci_value(&x);
		}
		if (back != v)
			continue;
		while (x.nd > 1 && x.d[x.nd - 1] == '0')
			x.nd--;
		*ret = x;
		return 0;
	}
	return -EINVAL;
}

/* Go's strconv.FormatFloat(v, 'g', -1, 64), then ".0" if it looks like an integer. */
static int sci_render(const struct sci *x, char *buf, size_t len)
{
	char out[KVMSTATS_CANONICAL_BUFSIZE + 16];
	size_t n = 0;

	if (x->exp < -4 || x->exp >= 6) {
		out[n++] = x->d[0];
		if (x->nd > 1) {
			out[n++] = '.';
			memcpy(out + n, x->d + 1, (size_t)x->nd - 1);
			n += (size_t)x->nd - 1;
		}
		/* Go prints at least two exponent digits: 1e-09, 1e+06, 1e+100. */
		n += (size_t)snprintf(out + n, sizeof(out) - n, "e%c%02d", x->exp < 0 ? '-' : '+',
				      abs(x->exp));
	} else if (x->exp >= 0) {
		int int_digits = x->exp + 1;

		for (int i = 0; i < int_digits; i++)
			out[n++] = i < x->nd ? x->d[i] : '0';
		if (x->nd > int_digits) {
			out[n++] = '.';
			memcpy(out + n, x->d + int_digits, (size_t)(x->nd - int_digits));
			n += (size_t)(x->nd - int_digits);
		}
	} else {
		out[n++] = '0';
		out[n++] = '.';
		for (int i = x->exp; i < -1; i++)
			out[n++] = '0';
		memcpy(out + n, x->d, (size_t)x->nd);
		n += (size_t)x->nd;
	}
	if (!memchr(out, '.', n) && !memchr(out, 'e', n)) {
		out[n++] = '.';
		out[n++] = '0';
	}
	if (len < n + 1)
		return -ENOBUFS;
	memcpy(buf, out, n);
	buf[n] = '\0';
	return (int)n;
}

/* Digits with at most one point between digits: what kvmstats_format_scaled() writes. */
static bool plain_decimal(const char *s)
{
	bool point = false;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s; s++) {
		if (*s == '.' && !point && s[1] >= '0' && s[1] <= '9')
			point = true;
		else if (*s < '0' || *s > '9')
			return false;
	}
	return true;
}

int kvmstats_format_canonical(char *buf, size_t len, const char *decimal)
{
	locale_t c_locale, old;
	struct sci x;
	double v;
	int r = -EINVAL;

	if (strcmp(decimal, "+Inf") == 0) {
		if (len < sizeof("+Inf"))
			return -ENOBUFS;
		memcpy(buf, "+Inf", sizeof("+Inf"));
		return (int)sizeof("+Inf") - 1;
	}
	if (!plain_decimal(decimal))
		return -EINVAL;

	/* strtod() and printf() use the locale's decimal point: pin "C", for this thread only. */
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (c_locale == (locale_t)0)
		return -ENOMEM;
	old = uselocale(c_locale);
	v = strtod(decimal, NULL);
	if (isfinite(v))
		r = sci_shortest(v, &x);
	uselocale(old);
	freelocale(c_locale);
	if (r < 0)
		return r;
	return sci_render(&x, buf, len);
}
