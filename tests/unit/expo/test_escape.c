/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "expo/escape.h"
#include "utf8_ref.h"
#include "macro.h"

#define FFFD "\xef\xbf\xbd"

static const enum escape_mode all_modes[] = {
	ESCAPE_LABEL_VALUE,
	ESCAPE_HELP_TEXT,
	ESCAPE_HELP_OPENMETRICS,
};

/* Escapes in into a fresh buffer and compares with want. */
static void check_n(const char *in, size_t n, enum escape_mode mode, const char *want)
{
	struct outbuf b = { 0 };

	escape_put(&b, in, n, mode);
	assert_false(b.failed);
	if (b.len != strlen(want) || (b.len > 0 && memcmp(b.data, want, b.len) != 0))
		fail_msg("mode %d: got \"%.*s\", want \"%s\"", (int)mode, (int)b.len,
			 b.len ? b.data : "", want);
	outbuf_release(&b);
}

#define check(in, mode, want) check_n((in), sizeof(in) - 1, (mode), (want))

static void check_all_modes(const char *in, size_t n, const char *want)
{
	for (size_t i = 0; i < ELEMENTSOF(all_modes); i++)
		check_n(in, n, all_modes[i], want);
}

#define check_all(in, want) check_all_modes((in), sizeof(in) - 1, (want))

/* Undoes escape_put() for valid input; false on a sequence the mode never emits. */
static bool unescape(const char *s, size_t n, enum escape_mode mode, char *out, size_t *ret_len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			return false;
		if (s[i] == '"' && mode != ESCAPE_HELP_TEXT)
			return false;
		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		if (++i == n)
			return false;
		if (s[i] == '\\')
			out[o++] = '\\';
		else if (s[i] == 'n')
			out[o++] = '\n';
		else if (s[i] == '"' && mode != ESCAPE_HELP_TEXT)
			out[o++] = '"';
		else
			return false;
	}
	*ret_len = o;
	return true;
}

static void test_plain_passthrough(void **state)
{
	(void)state;
	check_all("", "");
	check_all("kvm-guest_01.example.com", "kvm-guest_01.example.com");
	/* Other control characters are legal in both formats and stay as they are. */
	check_all("a\tb\rc\x01\x1f\x7f", "a\tb\rc\x01\x1f\x7f");
	check_all("{}=,'`/", "{}=,'`/");
}

static void test_label_value(void **state)
{
	(void)state;
	check("\\", ESCAPE_LABEL_VALUE, "\\\\");
	check("\"", ESCAPE_LABEL_VALUE, "\\\"");
	check("\n", ESCAPE_LABEL_VALUE, "\\n");
	check("a\\b\"c\nd", ESCAPE_LABEL_VALUE, "a\\\\b\\\"c\\nd");
	check("\\n", ESCAPE_LABEL_VALUE, "\\\\n");
	check("\"\"\n\n\\\\", ESCAPE_LABEL_VALUE, "\\\"\\\"\\n\\n\\\\\\\\");
	check("C:\\VMs\\\"win\"", ESCAPE_LABEL_VALUE, "C:\\\\VMs\\\\\\\"win\\\"");
}

static void test_help_text(void **state)
{
	(void)state;
	check("\\", ESCAPE_HELP_TEXT, "\\\\");
	check("\n", ESCAPE_HELP_TEXT, "\\n");
	/* 0.0.4 HELP leaves quotes alone. */
	check("\"", ESCAPE_HELP_TEXT, "\"");
	check("a\\b\"c\nd", ESCAPE_HELP_TEXT, "a\\\\b\"c\\nd");
	check("Time spent \"halted\" (ns).\n", ESCAPE_HELP_TEXT, "Time spent \"halted\" (ns).\\n");
}

static void test_help_openmetrics(void **state)
{
	(void)state;
	check("\\", ESCAPE_HELP_OPENMETRICS, "\\\\");
	check("\n", ESCAPE_HELP_OPENMETRICS, "\\n");
	check("\"", ESCAPE_HELP_OPENMETRICS, "\\\"");
	check("a\\b\"c\nd", ESCAPE_HELP_OPENMETRICS, "a\\\\b\\\"c\\nd");
}

static void test_nul(void **state)
{
	struct outbuf b = { 0 };

	(void)state;
	check_all("\0", FFFD);
	check_all("a\0b", "a" FFFD "b");
	check_all("\0\0", FFFD FFFD);
	check("\0\\\0", ESCAPE_LABEL_VALUE, FFFD "\\\\" FFFD);

	/* escape_puts() stops at the terminator like any C string function. */
	escape_puts(&b, "ab\0cd", ESCAPE_LABEL_VALUE);
	assert_int_equal(b.len, 2);
	assert_memory_equal(b.data, "ab", 2);
	escape_puts(&b, "\"", ESCAPE_LABEL_VALUE);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "ab\\\"", 4);
	outbuf_release(&b);
}

static void test_valid_utf8(void **state)
{
	static const char *const valid[] = {
		"\xc2\x80",         /* U+0080 */
		"\xc3\xa9",         /* é */
		"\xdf\xbf",         /* U+07FF */
		"\xe0\xa0\x80",     /* U+0800 */
		"\xe2\x82\xac",     /* € */
		"\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
		"\xee\x80\x80",     /* U+E000, just above them */
		"\xef\xbb\xbf",     /* BOM */
		"\xef\xbf\xbd",     /* U+FFFD itself */
		"\xef\xbf\xbf",     /* U+FFFF */
		"\xf0\x90\x80\x80", /* U+10000 */
		"\xf0\x9f\x98\x80", /* 😀 */
		"\xf3\xbf\xbf\xbf", /* U+FFFFF */
		"\xf4\x8f\xbf\xbf", /* U+10FFFF */
		("Gr\xc3\xbc\xc3\x9f"
		 "e \xe6\x97\xa5\xe6\x9c\xac"),
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(valid); i++)
		check_all_modes(valid[i], strlen(valid[i]), valid[i]);
	check("\xc3\xa9\"\xe2\x82\xac\n", ESCAPE_LABEL_VALUE, "\xc3\xa9\\\"\xe2\x82\xac\\n");
}

static void test_invalid_continuation(void **state)
{
	(void)state;
	check_all("\x80", FFFD);
	check_all("\xbf", FFFD);
	check_all("\x80\x80", FFFD FFFD);
	check_all("a\x80z", "a" FFFD "z");
	/* A continuation byte after a complete sequence is stray. */
	check_all("\xc3\xa9\xa9", "\xc3\xa9" FFFD);
}

static void test_invalid_overlong(void **state)
{
	(void)state;
	/* C0 and C1 can only start overlongs; each byte is its own maximal subpart. */
	check_all("\xc0\x80", FFFD FFFD);
	check_all("\xc1\xbf", FFFD FFFD);
	check_all("\xc0\xaf", FFFD FFFD); /* overlong '/' */
	check_all("\xe0\x80\x80", FFFD FFFD FFFD);
	check_all("\xe0\x9f\xbf", FFFD FFFD FFFD);
	check_all("\xf0\x80\x80\x80", FFFD FFFD FFFD FFFD);
	check_all("\xf0\x8f\xbf\xbf", FFFD FFFD FFFD FFFD);
	/* Overlong encodings of the escaped characters must not sneak them through. */
	check("\xc0\xa2", ESCAPE_LABEL_VALUE, FFFD FFFD);
	check("\xc0\x8a", ESCAPE_LABEL_VALUE, FFFD FFFD);
	check("\xe0\x81\x9c", ESCAPE_LABEL_VALUE, FFFD FFFD FFFD);
}

static void test_invalid_surrogates(void **state)
{
	(void)state;
	check_all("\xed\xa0\x80", FFFD FFFD FFFD); /* U+D800 */
	check_all("\xed\xbf\xbf", FFFD FFFD FFFD); /* U+DFFF */
	/* A CESU-8 pair is two surrogates, not one code point. */
	check_all("\xed\xa0\xbd\xed\xb8\x80", FFFD FFFD FFFD FFFD FFFD FFFD);
}

static void test_invalid_above_max(void **state)
{
	(void)state;
	check_all("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD); /* U+110000 */
	check_all("\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD);
	check_all("\xf7\xbf\xbf\xbf", FFFD FFFD FFFD FFFD);
	check_all("\xf8\x88\x80\x80\x80", FFFD FFFD FFFD FFFD FFFD);
	check_all("\xfc\x84\x80\x80\x80\x80", FFFD FFFD FFFD FFFD FFFD FFFD);
	check_all("\xfe", FFFD);
	check_all("\xff", FFFD);
	check_all("\xfe\xff", FFFD FFFD);
}

static void test_invalid_truncated(void **state)
{
	(void)state;
	/* A truncated but otherwise valid prefix becomes a single U+FFFD. */
	check_all("\xc3", FFFD);
	check_all("\xe2\x82", FFFD);
	check_all("\xe2", FFFD);
	check_all("\xf0\x9f\x98", FFFD);
	check_all("\xf0\x9f", FFFD);
	check_all("\xf0", FFFD);
	check_all("\xc3"
		  "A",
		  FFFD "A");
	check_all("\xe2\x82"
		  "A",
		  FFFD "A");
	check_all("\xf0\x9f\x98"
		  "A",
		  FFFD "A");
	check_all("\xe2\x82\xe2\x82\xac", FFFD "\xe2\x82\xac");
	check_all("\xf0\x9f\x98\xc3\xa9", FFFD "\xc3\xa9");
	check("\xe2\x82\"", ESCAPE_LABEL_VALUE, FFFD "\\\"");
	check("\xe2\x82\n", ESCAPE_HELP_TEXT, FFFD "\\n");
	check("\xe2\x82\\", ESCAPE_HELP_OPENMETRICS, FFFD "\\\\");
	check_all("\xe2\x82\0", FFFD FFFD);
}

static void test_out_of_space(void **state)
{
	struct outbuf b = { .max = 8 };

	(void)state;
	escape_puts(&b, "\"\"\"\"\"", ESCAPE_LABEL_VALUE);
	assert_true(b.failed);
	assert_true(b.len <= 8);
	outbuf_release(&b);
}

static void test_label_name_valid(void **state)
{
	static const char *const good[] = {
		"a", "_", "_a", "vm", "vcpu", "le", "A_1", "kvm_id", "Z9", "_9", "a__b",
	};
	static const char *const bad[] = {
		"",    "1a",  "9",   "__",       "__name__",  "__a", "a-b",
		"a b", "a.b", "a:b", "\xc3\xa9", "a\xc3\xa9", "a\n", "-",
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(good); i++)
		if (!escape_label_name_valid(good[i]))
			fail_msg("\"%s\" should be valid", good[i]);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		if (escape_label_name_valid(bad[i]))
			fail_msg("\"%s\" should be invalid", bad[i]);
	assert_false(escape_label_name_valid(NULL));
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1du) >> 32);
}

static size_t put_utf8(char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (char)(0xc0 | cp >> 6);
		p[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (char)(0xe0 | cp >> 12);
		p[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		p[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	p[0] = (char)(0xf0 | cp >> 18);
	p[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	p[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	p[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static uint32_t random_code_point(void)
{
	static const uint32_t specials[] = { '\\',   '"',    '\n',    '\t',    0x7f,
					     0x80,   0x7ff,  0x800,   0xd7ff,  0xe000,
					     0xfffd, 0xffff, 0x10000, 0x10ffff };
	uint32_t cp;

	switch (rnd() % 4) {
	case 0:
		return specials[rnd() % ELEMENTSOF(specials)];
	case 1:
		return 1 + rnd() % 0x7f;
	default:
		do
			cp = 1 + rnd() % 0x10ffff;
		while (cp >= 0xd800 && cp <= 0xdfff);
		return cp;
	}
}

static void test_property_valid_roundtrip(void **state)
{
	char in[256 * 4], out[sizeof(in)];

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = 0, count = rnd() % 256, m;

		for (size_t k = 0; k < count; k++)
			n += put_utf8(in + n, random_code_point());
		assert_true(utf8_valid((const unsigned char *)in, n));

		for (size_t i = 0; i < ELEMENTSOF(all_modes); i++) {
			struct outbuf b = { 0 };

			escape_put(&b, in, n, all_modes[i]);
			assert_false(b.failed);
			assert_true(utf8_valid((const unsigned char *)b.data, b.len));
			assert_true(unescape(b.data, b.len, all_modes[i], out, &m));
			assert_int_equal(m, n);
			if (n > 0)
				assert_memory_equal(out, in, n);
			outbuf_release(&b);
		}
	}
}

static void test_property_random_bytes(void **state)
{
	static const unsigned char interesting[] = { 0x00, '\n', '"',  '\\', 0x80, 0xbf, 0xc0, 0xc2,
						     0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff };
	unsigned char in[512];
	char out[sizeof(in) * 3];

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = rnd() % sizeof(in), m;

		for (size_t k = 0; k < n; k++)
			in[k] = rnd() % 3 ? (unsigned char)rnd()
					  : interesting[rnd() % ELEMENTSOF(interesting)];

		for (size_t i = 0; i < ELEMENTSOF(all_modes); i++) {
			struct outbuf b = { 0 };

			escape_put(&b, (const char *)in, n, all_modes[i]);
			assert_false(b.failed);
			assert_true(utf8_valid((const unsigned char *)b.data, b.len));
			/* Unescaping must succeed, and give back valid UTF-8 without NUL. */
			assert_true(unescape(b.data, b.len, all_modes[i], out, &m));
			assert_true(utf8_valid((const unsigned char *)out, m));
			assert_null(memchr(out, '\0', m));
			/* Input that was already clean must come back unchanged. */
			if (utf8_valid(in, n) && !memchr(in, '\0', n)) {
				assert_int_equal(m, n);
				if (n > 0)
					assert_memory_equal(out, in, n);
			}
			outbuf_release(&b);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_passthrough),
		cmocka_unit_test(test_label_value),
		cmocka_unit_test(test_help_text),
		cmocka_unit_test(test_help_openmetrics),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_valid_utf8),
		cmocka_unit_test(test_invalid_continuation),
		cmocka_unit_test(test_invalid_overlong),
		cmocka_unit_test(test_invalid_surrogates),
		cmocka_unit_test(test_invalid_above_max),
		cmocka_unit_test(test_invalid_truncated),
		cmocka_unit_test(test_out_of_space),
		cmocka_unit_test(test_label_name_valid),
		cmocka_unit_test(test_property_valid_roundtrip),
		cmocka_unit_test(test_property_random_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
