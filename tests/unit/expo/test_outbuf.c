/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "expo/outbuf.h"

#define assert_outbuf_equal(b, s)                                                                  \
	do {                                                                                       \
		assert_int_equal((b)->len, strlen(s));                                             \
		if ((b)->len > 0)                                                                  \
			assert_memory_equal((b)->data, (s), (b)->len);                             \
	} while (0)

static void test_empty(void **state)
{
	struct outbuf b = { 0 };

	(void)state;
	assert_int_equal(b.len, 0);
	outbuf_put(&b, "", 0);
	outbuf_puts(&b, "");
	assert_int_equal(b.len, 0);
	assert_false(b.failed);
	outbuf_release(&b);
	outbuf_release(&b);
	assert_null(b.data);
}

static void test_put_variants(void **state)
{
	struct outbuf b = { 0 };

	(void)state;
	outbuf_put(&b, "abcdef", 3);
	outbuf_puts(&b, " hello");
	outbuf_putc(&b, '!');
	outbuf_putc(&b, '\0');
	outbuf_putc(&b, '\n');
	assert_int_equal(b.len, 12);
	assert_memory_equal(b.data, "abc hello!\0\n", 12);
	assert_false(b.failed);
	outbuf_release(&b);
}

static void test_growth_many_writes(void **state)
{
	struct outbuf b = { 0 };
	size_t total = 0, cap_changes = 0, last_cap = 0;
	char chunk[64];

	(void)state;
	/* Every write lands where expected across many reallocations. */
	for (unsigned i = 0; i < 200000; i++) {
		size_t n = i % sizeof(chunk);

		for (size_t j = 0; j < n; j++)
			chunk[j] = (char)('a' + (i + j) % 26);
		outbuf_put(&b, chunk, n);
		total += n;
		if (b.cap != last_cap) {
			cap_changes++;
			last_cap = b.cap;
		}
	}
	assert_false(b.failed);
	assert_int_equal(b.len, total);
	assert_true(b.cap >= b.len);
	/* Geometric growth: a handful of reallocations, not one per write. */
	assert_true(cap_changes < 20);

	size_t off = 0;
	for (unsigned i = 0; i < 200000; i++) {
		size_t n = i % sizeof(chunk);

		for (size_t j = 0; j < n; j++)
			assert_int_equal(b.data[off + j], (char)('a' + (i + j) % 26));
		off += n;
	}
	outbuf_release(&b);
}

static void test_big_single_write(void **state)
{
	struct outbuf b = { 0 };
	size_t n = 1u << 20;
	_cleanup_free_ char *big = malloc(n);

	(void)state;
	assert_non_null(big);
	memset(big, 'z', n);
	outbuf_putc(&b, '<');
	outbuf_put(&b, big, n);
	outbuf_putc(&b, '>');
	assert_false(b.failed);
	assert_int_equal(b.len, n + 2);
	assert_int_equal(b.data[0], '<');
	assert_memory_equal(b.data + 1, big, n);
	assert_int_equal(b.data[n + 1], '>');
	outbuf_release(&b);
}

static void test_reset_keeps_memory(void **state)
{
	struct outbuf b = { 0 };
	char *data;
	size_t cap;

	(void)state;
	outbuf_puts(&b, "first scrape");
	data = b.data;
	cap = b.cap;
	outbuf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, data);
	assert_int_equal(b.cap, cap);
	outbuf_puts(&b, "second");
	assert_outbuf_equal(&b, "second");
	assert_ptr_equal(b.data, data);
	outbuf_release(&b);
}

static void test_reserve(void **state)
{
	struct outbuf b = { 0 };

	(void)state;
	assert_int_equal(outbuf_reserve(&b, 0), 0);
	assert_int_equal(outbuf_reserve(&b, 100), 0);
	assert_true(b.cap - b.len >= 100);
	assert_int_equal(b.len, 0);
	outbuf_puts(&b, "x");
	assert_int_equal(outbuf_reserve(&b, 100000), 0);
	assert_true(b.cap - b.len >= 100000);
	assert_outbuf_equal(&b, "x");

	/* len + n overflowing size_t fails instead of wrapping. */
	assert_int_equal(outbuf_reserve(&b, SIZE_MAX), -ENOMEM);
	assert_true(b.failed);
	assert_outbuf_equal(&b, "x");
	outbuf_release(&b);
	assert_false(b.failed);
}

static void test_max_exact_fill(void **state)
{
	struct outbuf b = { .max = 16 };

	(void)state;
	outbuf_puts(&b, "0123456789abcdef");
	assert_false(b.failed);
	assert_int_equal(b.cap, 16);
	assert_outbuf_equal(&b, "0123456789abcdef");
	outbuf_put(&b, "", 0);
	assert_false(b.failed);
	outbuf_putc(&b, 'g');
	assert_true(b.failed);
	assert_outbuf_equal(&b, "0123456789abcdef");
	outbuf_release(&b);
	assert_int_equal(b.max, 16);
}

static void test_failure_is_sticky(void **state)
{
	struct outbuf b = { .max = 16 };

	(void)state;
	outbuf_puts(&b, "0123456789");
	outbuf_puts(&b, "0123456789"); /* 20 > 16 */
	assert_true(b.failed);
	assert_outbuf_equal(&b, "0123456789");

	/* Each of these would fit on its own; none may land after a failure. */
	outbuf_putc(&b, 'x');
	outbuf_puts(&b, "ab");
	outbuf_put(&b, "ab", 2);
	outbuf_put_u64(&b, 7);
	outbuf_put_u128(&b, 7);
	outbuf_printf(&b, "%d", 1);
	assert_int_equal(outbuf_reserve(&b, 1), -ENOMEM);
	assert_int_equal(outbuf_reserve(&b, 0), -ENOMEM);
	assert_true(b.failed);
	assert_outbuf_equal(&b, "0123456789");

	outbuf_reset(&b);
	assert_false(b.failed);
	outbuf_puts(&b, "ok");
	assert_false(b.failed);
	assert_outbuf_equal(&b, "ok");
	outbuf_release(&b);
}

static void test_max_respected_by_growth(void **state)
{
	struct outbuf b = { .max = 5000 };

	(void)state;
	for (int i = 0; i < 5000; i++)
		outbuf_putc(&b, 'a');
	assert_false(b.failed);
	assert_int_equal(b.len, 5000);
	assert_true(b.cap <= 5000);
	outbuf_putc(&b, 'a');
	assert_true(b.failed);
	assert_int_equal(b.len, 5000);
	outbuf_release(&b);
}

static void check_u64(uint64_t v, const char *want)
{
	struct outbuf b = { 0 };

	outbuf_putc(&b, '[');
	outbuf_put_u64(&b, v);
	outbuf_putc(&b, ']');
	assert_int_equal(b.len, strlen(want) + 2);
	assert_memory_equal(b.data + 1, want, strlen(want));
	outbuf_release(&b);
}

static void test_put_u64(void **state)
{
	char want[32];

	(void)state;
	check_u64(0, "0");
	check_u64(1, "1");
	check_u64(9, "9");
	check_u64(10, "10");
	check_u64(1234567890, "1234567890");
	check_u64(UINT64_MAX, "18446744073709551615");
	for (uint64_t v = 1; v < UINT64_MAX / 3; v = v * 3 + 1) {
		snprintf(want, sizeof(want), "%" PRIu64, v);
		check_u64(v, want);
	}
}

static void test_put_u128(void **state)
{
	struct outbuf b = { 0 };
	kvmstats_u128 max = ~(kvmstats_u128)0;

	(void)state;
	outbuf_put_u128(&b, 0);
	outbuf_putc(&b, ' ');
	outbuf_put_u128(&b, UINT64_MAX);
	outbuf_putc(&b, ' ');
	outbuf_put_u128(&b, (kvmstats_u128)UINT64_MAX + 1);
	outbuf_putc(&b, ' ');
	outbuf_put_u128(&b, max);
	assert_false(b.failed);
	assert_outbuf_equal(&b, "0 18446744073709551615 18446744073709551616 "
				"340282366920938463463374607431768211455");
	outbuf_release(&b);
}

static void test_printf(void **state)
{
	struct outbuf b = { 0 };

	(void)state;
	outbuf_printf(&b, "%s", "");
	assert_int_equal(b.len, 0);
	assert_false(b.failed);
	outbuf_printf(&b, "%s=%d%%", "x", -42);
	outbuf_printf(&b, " %llu", 18446744073709551615ULL);
	assert_outbuf_equal(&b, "x=-42% 18446744073709551615");
	assert_false(b.failed);
	outbuf_release(&b);
}

static void test_printf_grows(void **state)
{
	struct outbuf b = { 0 };
	size_t n = 100000;
	_cleanup_free_ char *big = malloc(n + 1);

	(void)state;
	assert_non_null(big);
	memset(big, 'q', n);
	big[n] = '\0';

	/* Longer than the spare room: the first attempt is cut short and retried. */
	outbuf_printf(&b, "<%s>", big);
	assert_false(b.failed);
	assert_int_equal(b.len, n + 2);
	assert_int_equal(b.data[0], '<');
	assert_memory_equal(b.data + 1, big, n);
	assert_int_equal(b.data[n + 1], '>');

	/* Many small printfs straddling reallocation boundaries. */
	outbuf_release(&b);
	for (int i = 0; i < 50000; i++)
		outbuf_printf(&b, "%d,", i % 1000);
	assert_false(b.failed);
	size_t off = 0;
	char want[16];
	for (int i = 0; i < 50000; i++) {
		int k = snprintf(want, sizeof(want), "%d,", i % 1000);
		assert_memory_equal(b.data + off, want, (size_t)k);
		off += (size_t)k;
	}
	assert_int_equal(off, b.len);
	outbuf_release(&b);
}

static void test_printf_exactly_to_max(void **state)
{
	struct outbuf b = { .max = 10 };

	(void)state;
	/* The text fits to the byte but vsnprintf's NUL would not. */
	outbuf_printf(&b, "%s-%d", "abcd", 12345);
	assert_false(b.failed);
	assert_outbuf_equal(&b, "abcd-12345");
	assert_int_equal(b.cap, 10);

	outbuf_reset(&b);
	outbuf_puts(&b, "abc");
	outbuf_printf(&b, "%07d", 42);
	assert_false(b.failed);
	assert_outbuf_equal(&b, "abc0000042");

	outbuf_reset(&b);
	outbuf_puts(&b, "abc");
	outbuf_printf(&b, "%08d", 42);
	assert_true(b.failed);
	assert_outbuf_equal(&b, "abc");
	outbuf_release(&b);
}

static void test_release_reuse(void **state)
{
	struct outbuf b = { .max = 100 };

	(void)state;
	outbuf_puts(&b, "abc");
	outbuf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	outbuf_puts(&b, "def");
	assert_outbuf_equal(&b, "def");
	outbuf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_put_variants),
		cmocka_unit_test(test_growth_many_writes),
		cmocka_unit_test(test_big_single_write),
		cmocka_unit_test(test_reset_keeps_memory),
		cmocka_unit_test(test_reserve),
		cmocka_unit_test(test_max_exact_fill),
		cmocka_unit_test(test_failure_is_sticky),
		cmocka_unit_test(test_max_respected_by_growth),
		cmocka_unit_test(test_put_u64),
		cmocka_unit_test(test_put_u128),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_printf_grows),
		cmocka_unit_test(test_printf_exactly_to_max),
		cmocka_unit_test(test_release_reuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
