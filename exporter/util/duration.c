/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "macro.h"
#include "util/duration.h"

__extension__ typedef unsigned __int128 u128;

/* Go's time.ParseDuration units, in nanoseconds. */
static const struct {
	const char *name;
	uint64_t nsec;
} duration_units[] = {
	{ "ns", UINT64_C(1) },            /* nanoseconds */
	{ "us", UINT64_C(1000) },         /* microseconds */
	{ "\xc2\xb5s", UINT64_C(1000) },  /* U+00B5 MICRO SIGN */
	{ "\xce\xbcs", UINT64_C(1000) },  /* U+03BC GREEK SMALL LETTER MU */
	{ "ms", UINT64_C(1000000) },      /* milliseconds */
	{ "s", UINT64_C(1000000000) },    /* seconds */
	{ "m", UINT64_C(60000000000) },   /* minutes */
	{ "h", UINT64_C(3600000000000) }, /* hours */
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int parse_duration_usec(const char *s, uint64_t *ret_usec)
{
	uint64_t total = 0;

	if (!s || !*s)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*ret_usec = 0;
		return 0;
	}

	while (*s) {
		uint64_t whole = 0, frac = 0, scale = 1, unit = 0, part;
		bool have_digits = false, frac_full = false, range = false;
		const char *u;
		size_t un;

		for (; is_digit(*s); s++) {
			uint64_t d = (uint64_t)(*s - '0');

			have_digits = true;
			if (range || whole > (UINT64_MAX - d) / 10)
				range = true; /* keep parsing: garbage is -EINVAL, not -ERANGE */
			else
				whole = whole * 10 + d;
		}
		if (*s == '.') {
			s++;
			for (; is_digit(*s); s++) {
				have_digits = true;
				/* Digits beyond 10^19 cannot matter below 1ns. */
				if (frac_full || scale > UINT64_MAX / 10) {
					frac_full = true;
					continue;
				}
				frac = frac * 10 + (uint64_t)(*s - '0');
				scale *= 10;
			}
		}
		if (!have_digits)
			return -EINVAL;

		for (u = s; *s && !is_digit(*s) && *s != '.'; s++)
			;
		un = (size_t)(s - u);
		for (size_t i = 0; i < ELEMENTSOF(duration_units); i++)
			if (strlen(duration_units[i].name) == un &&
			    memcmp(duration_units[i].name, u, un) == 0)
				unit = duration_units[i].nsec;
		if (unit == 0)
			return -EINVAL; /* missing or unknown unit */
		if (range)
			return -ERANGE;

		if (whole > UINT64_MAX / unit)
			return -ERANGE;
		whole *= unit;
		/* Exact in 128 bits; frac < scale, so part < unit. */
		part = (uint64_t)((u128)frac * unit / scale);
		if (whole > UINT64_MAX - part)
			return -ERANGE;
		whole += part;
		if (total > UINT64_MAX - whole)
			return -ERANGE;
		total += whole;
	}

	*ret_usec = total / 1000;
	return 0;
}
