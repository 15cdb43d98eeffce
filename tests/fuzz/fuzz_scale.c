/* SPDX-License-Identifier: MIT */
/*
 * Checks kvmstats_format_scaled() against independent arithmetic: the
 * printed decimal N / 10^f must equal v * base^e exactly, verified by
 * cross-multiplying in a small fixed-width bignum, plus string-level
 * references where they are easy (digit shifting for base 10, a u128 shift
 * for base 2).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "scale.h"

#define U128_MAX (~(kvmstats_u128)0)

/* 16 x 32 bits: the largest product, v * 10^64 or N * 2^64, needs about 342 bits. */
#define BIG_LIMBS 16

struct big {
	uint32_t l[BIG_LIMBS];
};

static void big_set_u128(struct big *a, kvmstats_u128 v)
{
	memset(a, 0, sizeof(*a));
	for (size_t i = 0; i < 4; i++)
		a->l[i] = (uint32_t)(v >> (32 * i));
}

/* a = a * m + add; aborts on overflow, which would mean the bound above is wrong. */
static void big_mul_add(struct big *a, uint32_t m, uint32_t add)
{
	uint64_t carry = add;

	for (size_t i = 0; i < BIG_LIMBS; i++) {
		uint64_t t = (uint64_t)a->l[i] * m + carry;
		a->l[i] = (uint32_t)t;
		carry = t >> 32;
	}
	CHECK(carry == 0);
}

static void big_mul_pow(struct big *a, uint32_t base, int count)
{
	for (int i = 0; i < count; i++)
		big_mul_add(a, base, 0);
}

/* Plain digits of v, by 64-bit chunks through snprintf: a path scale.c does not use. */
static void u128_to_str(kvmstats_u128 v, char *buf, size_t len)
{
	const uint64_t e19 = UINT64_C(10000000000000000000);
	uint64_t lo = (uint64_t)(v % e19);
	kvmstats_u128 rest = v / e19;
	uint64_t mid = (uint64_t)(rest % e19);
	uint64_t hi = (uint64_t)(rest / e19);

	if (hi)
		snprintf(buf, len, "%llu%019llu%019llu", (unsigned long long)hi,
			 (unsigned long long)mid, (unsigned long long)lo);
	else if (mid)
		snprintf(buf, len, "%llu%019llu", (unsigned long long)mid, (unsigned long long)lo);
	else
		snprintf(buf, len, "%llu", (unsigned long long)lo);
}

/* v * 10^e by moving the point in v's digit string. */
static void base10_reference(kvmstats_u128 v, int e, char *buf, size_t len)
{
	char digits[48];
	size_t n, pos = 0;

	u128_to_str(v, digits, sizeof(digits));
	n = strlen(digits);
	if (v == 0) {
		snprintf(buf, len, "0");
		return;
	}
	if (e >= 0) {
		snprintf(buf, len, "%s%0*d", digits, e, 0);
		buf[n + (size_t)e] = '\0'; /* "%0*d" with e == 0 still prints one '0' */
		return;
	}
	size_t frac = (size_t)-e;
	if (n > frac) {
		memcpy(buf, digits, n - frac);
		pos = n - frac;
		buf[pos++] = '.';
		memcpy(buf + pos, digits + n - frac, frac);
		pos += frac;
	} else {
		buf[pos++] = '0';
		buf[pos++] = '.';
		memset(buf + pos, '0', frac - n);
		pos += frac - n;
		memcpy(buf + pos, digits, n);
		pos += n;
	}
	while (buf[pos - 1] == '0')
		pos--;
	if (buf[pos - 1] == '.')
		pos--;
	buf[pos] = '\0';
	CHECK(pos < len);
}

static void check_shape(const char *s, size_t n)
{
	const char *dot = memchr(s, '.', n);

	CHECK(n > 0 && strlen(s) == n);
	for (size_t i = 0; i < n; i++)
		CHECK((s[i] >= '0' && s[i] <= '9') || &s[i] == dot);
	/* No leading zeros on the integer part, no trailing zeros or point on the fraction. */
	CHECK(!(s[0] == '0' && n > 1 && s[1] != '.'));
	if (dot) {
		CHECK(dot != s && dot[1] != '\0');
		CHECK(s[n - 1] != '0');
	}
}

/* N / 10^f == v * base^e, where N is the string without its point and f its fraction length. */
static void check_exact(const char *s, kvmstats_u128 v, unsigned base, int e)
{
	struct big lhs = { 0 }, rhs;
	const char *dot = strchr(s, '.');
	int frac = dot ? (int)strlen(dot + 1) : 0;

	for (const char *p = s; *p; p++)
		if (*p != '.')
			big_mul_add(&lhs, 10, (uint32_t)(*p - '0'));
	big_set_u128(&rhs, v);
	big_mul_pow(&rhs, 10, frac);
	if (e >= 0)
		big_mul_pow(&rhs, base, e);
	else
		big_mul_pow(&lhs, base, -e);
	CHECK(memcmp(&lhs, &rhs, sizeof(lhs)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t in[19] = { 0 };
	char buf[KVMSTATS_SCALED_BUFSIZE], want[KVMSTATS_SCALED_BUFSIZE];
	kvmstats_u128 v = 0;
	unsigned base;
	int e, r;

	memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
	for (size_t i = 0; i < 16; i++)
		v |= (kvmstats_u128)in[i] << (8 * i);
	/* Small values matter as much as huge ones: let the input pick the magnitude. */
	v >>= in[16] % 128;
	base = (in[17] & 1) ? 2 : 10;
	if (in[17] >> 1 == 0x7f)
		base = in[17]; /* an invalid base, now and then */
	e = (int8_t)in[18];

	r = kvmstats_format_u128(buf, sizeof(buf), v);
	CHECK(r > 0);
	u128_to_str(v, want, sizeof(want));
	CHECK(strcmp(buf, want) == 0);

	r = kvmstats_format_scaled(buf, sizeof(buf), v, base, e);
	if ((base != 2 && base != 10) || e < -KVMSTATS_SCALE_MAX_EXPONENT ||
	    e > KVMSTATS_SCALE_MAX_EXPONENT) {
		CHECK(r == -EINVAL);
		return 0;
	}
	CHECK(r > 0 && r < KVMSTATS_SCALED_BUFSIZE);
	check_shape(buf, (size_t)r);
	check_exact(buf, v, base, e);

	if (base == 10) {
		base10_reference(v, e, want, sizeof(want));
		CHECK(strcmp(buf, want) == 0);
	} else if (e >= 0 && v <= (U128_MAX >> e)) {
		u128_to_str(v << e, want, sizeof(want));
		CHECK(strcmp(buf, want) == 0);
	}

	/* The exact size fits; one byte less is refused, never truncated. */
	memcpy(want, buf, (size_t)r + 1);
	memset(buf, 'x', sizeof(buf));
	CHECK(kvmstats_format_scaled(buf, (size_t)r, v, base, e) == -ENOBUFS);
	CHECK(buf[0] == 'x');
	CHECK(kvmstats_format_scaled(buf, (size_t)r + 1, v, base, e) == r);
	CHECK(strcmp(buf, want) == 0);

	return 0;
}
