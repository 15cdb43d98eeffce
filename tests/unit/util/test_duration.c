/* SPDX-License-Identifier: MIT */
/* Unit tests for Go-style durations (util/duration.c). */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "util/duration.h"

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		int r;
		uint64_t usec;
	} cases[] = {
		{ "0", 0, 0 },
		{ "0s", 0, 0 },
		{ "5s", 0, 5000000 },
		{ "500ms", 0, 500000 },
		{ "1m", 0, 60000000 },
		{ "1m30s", 0, 90000000 },
		{ "250us", 0, 250 },
		{ "250\xc2\xb5s", 0, 250 }, /* micro sign */
		{ "250\xce\xbcs", 0, 250 }, /* Greek mu */
		{ "2h", 0, UINT64_C(7200000000) },
		{ "1.5s", 0, 1500000 },
		{ ".5s", 0, 500000 },
		{ "1.s", 0, 1000000 },
		{ "0.001ms", 0, 1 },
		{ "1500ns", 0, 1 },
		{ "999ns", 0, 0 },
		{ "1h2m3s4ms5us6ns", 0, UINT64_C(3723004005) },
		{ "1.25h", 0, UINT64_C(4500000000) },
		{ "0.000000000000000000000001h", 0, 0 },
		{ "3s3s", 0, 6000000 },
		{ "18446744073709551615ns", 0, UINT64_C(18446744073709551) },
		{ "18446744073709551616ns", -ERANGE, 0 },
		{ "5124095h", 0, UINT64_C(18446742000000000) },
		{ "5124095h1h", -ERANGE, 0 },
		{ "5124096h", -ERANGE, 0 },
		{ "99999999999999999999s", -ERANGE, 0 },
		{ "9999999999h", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "5", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ ".s", -EINVAL, 0 },
		{ ".", -EINVAL, 0 },
		{ "-5s", -EINVAL, 0 },
		{ "+5s", -EINVAL, 0 },
		{ "5 s", -EINVAL, 0 },
		{ " 5s", -EINVAL, 0 },
		{ "5s ", -EINVAL, 0 },
		{ "5sec", -EINVAL, 0 },
		{ "5S", -EINVAL, 0 },
		{ "5d", -EINVAL, 0 },
		{ "1m30", -EINVAL, 0 },
		{ "1..5s", -EINVAL, 0 },
		{ "abc", -EINVAL, 0 },
		{ "0x10s", -EINVAL, 0 },
		{ "1e3s", -EINVAL, 0 },
		{ "\xc2s", -EINVAL, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint64_t usec = UINT64_C(0xdeadbeef);
		int r = parse_duration_usec(cases[i].s, &usec);

		if (r != cases[i].r)
			fail_msg("\"%s\": r=%d, expected %d", cases[i].s, r, cases[i].r);
		if (r == 0 && usec != cases[i].usec)
			fail_msg("\"%s\": %" PRIu64 "us, expected %" PRIu64, cases[i].s, usec,
				 cases[i].usec);
		/* Written only on success. */
		if (r < 0 && usec != UINT64_C(0xdeadbeef))
			fail_msg("\"%s\": output written on failure", cases[i].s);
	}
	assert_int_equal(parse_duration_usec(NULL, &(uint64_t){ 0 }), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
