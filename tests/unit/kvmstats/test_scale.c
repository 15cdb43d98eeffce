/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "scale.h"

#define U128_MAX     (~(kvmstats_u128)0)
#define U128(hi, lo) (((kvmstats_u128)(hi) << 64) | (kvmstats_u128)(lo))

static const char u128_max_str[] = "340282366920938463463374607431768211455";

static void check_scaled(kvmstats_u128 v, unsigned base, int exp, const char *want)
{
	char buf[KVMSTATS_SCALED_BUFSIZE];
	int r;

	r = kvmstats_format_scaled(buf, sizeof(buf), v, base, exp);
	if (r < 0)
		fail_msg("base %u exp %d: error %d, want \"%s\"", base, exp, r, want);
	assert_string_equal(buf, want);
	assert_int_equal(r, (int)strlen(want));

	/* Exactly enough room works; one byte less fails without touching buf. */
	size_t need = strlen(want) + 1;
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(kvmstats_format_scaled(buf, need, v, base, exp), (int)need - 1);
	assert_string_equal(buf, want);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(kvmstats_format_scaled(buf, need - 1, v, base, exp), -ENOBUFS);
	assert_int_equal(buf[0], 'x');
	assert_int_equal(buf[need - 2], 'x');
}

static void test_examples(void **state)
{
	(void)state;
	check_scaled(1234567890, 10, -9, "1.23456789");
	check_scaled(3, 2, 20, "3145728");
	check_scaled(1, 2, -1, "0.5");
	check_scaled(5, 10, 2, "500");
	check_scaled(1, 10, -9, "0.000000001");
	check_scaled(1, 2, 20, "1048576");
	check_scaled(3, 2, -1, "1.5");
}

static void test_zero(void **state)
{
	(void)state;
	for (int e = -KVMSTATS_SCALE_MAX_EXPONENT; e <= KVMSTATS_SCALE_MAX_EXPONENT; e++) {
		check_scaled(0, 10, e, "0");
		check_scaled(0, 2, e, "0");
	}
}

static void test_trailing_zeros(void **state)
{
	(void)state;
	check_scaled(1000, 10, -3, "1");
	check_scaled(1500, 10, -3, "1.5");
	check_scaled(10, 10, -1, "1");
	check_scaled(100, 10, -1, "10");
	check_scaled(1010, 10, -2, "10.1");
	check_scaled(1000000000, 10, -9, "1");
	check_scaled(1000000000, 10, -10, "0.1");
	check_scaled(100, 10, -64,
		     "0.00000000000000000000000000000000000000000000000000000000000001");
	check_scaled(1024, 2, -10, "1");
	check_scaled(6, 2, -2, "1.5");
	check_scaled(8, 2, -1, "4");
	check_scaled(UINT64_C(1) << 63, 2, -64, "0.5");
	check_scaled(U128(1, 0), 2, -64, "1");
}

static void test_exponent_zero(void **state)
{
	(void)state;
	check_scaled(1, 10, 0, "1");
	check_scaled(1, 2, 0, "1");
	check_scaled(42, 2, 0, "42");
	check_scaled(U128_MAX, 10, 0, u128_max_str);
	check_scaled(U128_MAX, 2, 0, u128_max_str);
}

static void test_base10_limits(void **state)
{
	char want[KVMSTATS_SCALED_BUFSIZE];

	(void)state;
	snprintf(want, sizeof(want), "%s%064d", u128_max_str, 0);
	check_scaled(U128_MAX, 10, 64, want);
	check_scaled(1, 10, 64,
		     "1"
		     "0000000000000000000000000000000000000000000000000000000000000000");
	check_scaled(1, 10, -64,
		     "0.0000000000000000000000000000000000000000000000000000000000000001");
	check_scaled(U128_MAX, 10, -64,
		     "0.0000000000000000000000000340282366920938463463374607431768211455");
	check_scaled(U128_MAX, 10, -39, "0.340282366920938463463374607431768211455");
	check_scaled(U128_MAX, 10, -38, "3.40282366920938463463374607431768211455");
	check_scaled(U128_MAX, 10, -1, "34028236692093846346337460743176821145.5");
	check_scaled(UINT64_MAX, 10, -19, "1.8446744073709551615");
	check_scaled(UINT64_MAX, 10, -20, "0.18446744073709551615");
}

static void test_base2_limits(void **state)
{
	(void)state;
	check_scaled(1, 2, 64, "18446744073709551616");
	check_scaled(1, 2, -64,
		     "0.0000000000000000000542101086242752217003726400434970855712890625");
	check_scaled(U128_MAX, 2, 64, "6277101735386680763835789423207666416083908700390324961280");
	check_scaled(U128_MAX, 2, -64,
		     "18446744073709551615."
		     "9999999999999999999457898913757247782996273599565029144287109375");
	check_scaled(U128_MAX, 2, -1, "170141183460469231731687303715884105727.5");
	check_scaled(12345, 2, -7, "96.4453125");
	check_scaled(UINT64_MAX, 2, 64, "340282366920938463444927863358058659840");
	check_scaled(1, 2, 28, "268435456");
	check_scaled(1, 2, 29, "536870912");
	check_scaled(1, 2, -13, "0.0001220703125");
	check_scaled(1, 2, -14, "0.00006103515625");
}

/* Independent check: for e >= 0 a shift in u128 when it does not overflow. */
static void test_base2_matches_shift(void **state)
{
	char want[64];

	(void)state;
	for (int e = 0; e <= KVMSTATS_SCALE_MAX_EXPONENT; e++) {
		const kvmstats_u128 vals[] = { 1, 3, 7, 1000, UINT32_MAX, UINT64_MAX };

		for (size_t i = 0; i < ELEMENTSOF(vals); i++) {
			kvmstats_u128 v = vals[i];

			if (v > (U128_MAX >> e))
				continue;
			assert_true(kvmstats_format_u128(want, sizeof(want), v << e) > 0);
			check_scaled(v, 2, e, want);
		}
	}
}

/* For e < 0, v * 2^e = (v * 5^-e) * 10^e: the base-10 path checks the base-2 one. */
static void test_base2_matches_base10(void **state)
{
	char want[KVMSTATS_SCALED_BUFSIZE];
	kvmstats_u128 pow5 = 1;

	(void)state;
	for (int k = 1; k <= 40; k++) {
		const kvmstats_u128 vals[] = { 1, 2, 3, 999, 1u << 20, UINT32_MAX };

		pow5 *= 5;
		for (size_t i = 0; i < ELEMENTSOF(vals); i++) {
			kvmstats_u128 v = vals[i];

			if (v > U128_MAX / pow5)
				continue;
			int r = kvmstats_format_scaled(want, sizeof(want), v * pow5, 10, -k);

			assert_true(r > 0);
			check_scaled(v, 2, -k, want);
		}
	}
}

static void test_einval(void **state)
{
	char buf[KVMSTATS_SCALED_BUFSIZE];
	const unsigned bad_bases[] = { 0, 1, 3, 8, 16, UINT_MAX };
	const int bad_exps[] = { 65, -65, 1000, -1000, INT_MAX, INT_MIN };

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(bad_bases); i++) {
		assert_int_equal(kvmstats_format_scaled(buf, sizeof(buf), 1, bad_bases[i], 0),
				 -EINVAL);
		assert_int_equal(kvmstats_format_scaled(buf, sizeof(buf), 0, bad_bases[i], 0),
				 -EINVAL);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad_exps); i++) {
		assert_int_equal(kvmstats_format_scaled(buf, sizeof(buf), 1, 10, bad_exps[i]),
				 -EINVAL);
		assert_int_equal(kvmstats_format_scaled(buf, sizeof(buf), 0, 2, bad_exps[i]),
				 -EINVAL);
	}
	/* A bad argument is reported as such even when the buffer is also too small. */
	assert_int_equal(kvmstats_format_scaled(buf, 0, 1, 7, 0), -EINVAL);
}

static void test_enobufs(void **state)
{
	char buf[4] = "abc";

	(void)state;
	assert_int_equal(kvmstats_format_scaled(buf, 0, 0, 10, 0), -ENOBUFS);
	assert_int_equal(kvmstats_format_scaled(buf, 1, 0, 10, 0), -ENOBUFS);
	assert_int_equal(kvmstats_format_scaled(buf, 2, 0, 10, 0), 1);
	assert_string_equal(buf, "0");
	assert_int_equal(kvmstats_format_scaled(NULL, 0, 5, 2, 3), -ENOBUFS);
	assert_int_equal(kvmstats_format_u128(NULL, 0, 0), -ENOBUFS);
}

static void test_bufsize_is_enough(void **state)
{
	char buf[KVMSTATS_SCALED_BUFSIZE];
	const kvmstats_u128 vals[] = {
		0, 1, 9, 10, UINT64_MAX, U128(1, 0), U128_MAX / 10, U128_MAX
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(vals); i++)
		for (int e = -KVMSTATS_SCALE_MAX_EXPONENT; e <= KVMSTATS_SCALE_MAX_EXPONENT; e++) {
			assert_true(kvmstats_format_scaled(buf, sizeof(buf), vals[i], 10, e) > 0);
			assert_true(kvmstats_format_scaled(buf, sizeof(buf), vals[i], 2, e) > 0);
			/* No exponent notation, trailing zero after a point, or trailing point. */
			assert_null(strpbrk(buf, "eE+-"));
			if (strchr(buf, '.')) {
				size_t n = strlen(buf);
				assert_true(buf[n - 1] != '0' && buf[n - 1] != '.');
			}
		}
}

static void check_u128(kvmstats_u128 v, const char *want)
{
	char buf[48];
	size_t n = strlen(want);

	assert_int_equal(kvmstats_format_u128(buf, sizeof(buf), v), (int)n);
	assert_string_equal(buf, want);
	assert_int_equal(kvmstats_format_u128(buf, n + 1, v), (int)n);
	assert_string_equal(buf, want);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(kvmstats_format_u128(buf, n, v), -ENOBUFS);
	assert_int_equal(buf[0], 'x');
}

static void test_format_u128(void **state)
{
	(void)state;
	check_u128(0, "0");
	check_u128(1, "1");
	check_u128(10, "10");
	check_u128(UINT64_MAX, "18446744073709551615");
	check_u128((kvmstats_u128)UINT64_MAX + 1, "18446744073709551616");
	check_u128(U128(0x8000000000000000, 0), "170141183460469231731687303715884105728");
	check_u128(U128_MAX, u128_max_str);
	check_u128(U128_MAX - 1, "340282366920938463463374607431768211454");
}

/* ---- OpenMetrics canonical floats ------------------------------------------------------ */

static void check_canonical(const char *decimal, const char *want)
{
	char buf[KVMSTATS_CANONICAL_BUFSIZE];
	int r;

	memset(buf, 'x', sizeof(buf));
	r = kvmstats_format_canonical(buf, sizeof(buf), decimal);
	if (r < 0)
		fail_msg("%s: error %d, want \"%s\"", decimal, r, want);
	if (strcmp(buf, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", decimal, buf, want);
	assert_int_equal(r, (int)strlen(want));
	/* Exactly enough room works; one byte less fails. */
	assert_int_equal(kvmstats_format_canonical(buf, strlen(want) + 1, decimal), r);
	assert_int_equal(kvmstats_format_canonical(buf, strlen(want), decimal), -ENOBUFS);
}

/* The examples of the OpenMetrics 1.0 spec ("Canonical Numbers") and Go's %g. */
static void test_canonical_spec(void **state)
{
	(void)state;
	check_canonical("0", "0.0");
	check_canonical("0.001", "0.001");
	check_canonical("0.002", "0.002");
	check_canonical("0.01", "0.01");
	check_canonical("0.1", "0.1");
	check_canonical("0.9", "0.9");
	check_canonical("0.95", "0.95");
	check_canonical("0.99", "0.99");
	check_canonical("0.999", "0.999");
	check_canonical("1", "1.0");
	check_canonical("1.7", "1.7");
	check_canonical("10", "10.0");
	check_canonical("0.0000000001", "1e-10");
	check_canonical("0.000000001", "1e-09");
	check_canonical("0.00001", "1e-05");
	check_canonical("0.0001", "0.0001");
	check_canonical("100000", "100000.0");
	check_canonical("1000000", "1e+06");
	check_canonical("10000000000", "1e+10");
	check_canonical("+Inf", "+Inf");
	/* %e from an exponent of 6 on, whatever the digits; at least two exponent digits. */
	check_canonical("999999", "999999.0");
	check_canonical("123456.5", "123456.5");
	check_canonical("1234567", "1.234567e+06");
	check_canonical("0.0001234", "0.0001234");
	check_canonical("0.00001234", "1.234e-05");
	check_canonical("1"
			"00000000000000000000000000000000000000000000000000000000000000000000000000"
			"0000"
			"000000000000000000000000",
			"1e+102");
}

/* Bounds as KVM histograms have them, and float64's rounding. */
static void test_canonical_kvm(void **state)
{
	(void)state;
	/* halt_wait_hist: (2^k - 1) ns. */
	check_canonical("0.000000003", "3e-09");
	check_canonical("0.000016383", "1.6383e-05");
	check_canonical("0.000131071", "0.000131071");
	check_canonical("1.073741823", "1.073741823");
	check_canonical("4.294967295", "4.294967295");
	check_canonical("2147.483647", "2147.483647");
	check_canonical("1048576", "1.048576e+06");
	/* More digits than a float64 holds: the shortest that reads back. */
	check_canonical("18446744073709551615", "1.8446744073709552e+19");
	check_canonical("9223372036854775807", "9.223372036854776e+18");
	check_canonical("36893488147.41910323", "3.6893488147419106e+10");
	check_canonical(u128_max_str, "3.402823669209385e+38");
	check_canonical("0.1000000000000000055511151231257827", "0.1");
	/*
	 * Powers of two where the nearest 16-digit decimal falls just below the
	 * float's (narrower) lower rounding half-gap: the next one up is shortest.
	 */
	check_canonical("0.000000059604644775390625", "5.960464477539063e-08");
	check_canonical("0.00000000000005684341886080801486968994140625", "5.684341886080802e-14");
	check_canonical("618970019642690137449562112", "6.189700196426902e+26");
}

/* Anything but a plain non-negative decimal (or +Inf) is refused. */
static void test_canonical_einval(void **state)
{
	static const char *const bad[] = {
		"",    "-1", "+1", "1e5",  "0x10",  "inf", "Inf", "-Inf",
		"NaN", ".5", "5.", "1..2", "1.2.3", " 1",  "1 ",  "1,5",
	};
	char buf[KVMSTATS_CANONICAL_BUFSIZE];

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		if (kvmstats_format_canonical(buf, sizeof(buf), bad[i]) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
}

/* Every scaled value reads back as the same float64 as its exact decimal. */
static void test_canonical_round_trip(void **state)
{
	static const uint64_t values[] = {
		1, 3, 7, 15, 1023, 65535, 123456789, 4294967295u, (1ull << 53) + 1, UINT64_MAX
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(values); i++)
		for (int e = -KVMSTATS_SCALE_MAX_EXPONENT; e <= KVMSTATS_SCALE_MAX_EXPONENT; e++)
			for (unsigned base = 2; base <= 10; base += 8) {
				char dec[KVMSTATS_SCALED_BUFSIZE], can[KVMSTATS_CANONICAL_BUFSIZE];
				size_t digits = 0;

				assert_true(kvmstats_format_scaled(dec, sizeof(dec), values[i],
								   base, e) > 0);
				assert_true(kvmstats_format_canonical(can, sizeof(can), dec) > 0);
				if (strtod(can, NULL) != strtod(dec, NULL))
					fail_msg("%s -> %s", dec, can);
				assert_true(strchr(can, '.') || strchr(can, 'e'));
				for (const char *p = can; *p && *p != 'e'; p++)
					digits += *p >= '0' && *p <= '9';
				assert_true(digits <=
					    17 + 5); /* leading "0.0000" of fixed notation */
			}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_zero),
		cmocka_unit_test(test_trailing_zeros),
		cmocka_unit_test(test_exponent_zero),
		cmocka_unit_test(test_base10_limits),
		cmocka_unit_test(test_base2_limits),
		cmocka_unit_test(test_base2_matches_shift),
		cmocka_unit_test(test_base2_matches_base10),
		cmocka_unit_test(test_einval),
		cmocka_unit_test(test_enobufs),
		cmocka_unit_test(test_bufsize_is_enough),
		cmocka_unit_test(test_format_u128),
		cmocka_unit_test(test_canonical_spec),
		cmocka_unit_test(test_canonical_kvm),
		cmocka_unit_test(test_canonical_einval),
		cmocka_unit_test(test_canonical_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
