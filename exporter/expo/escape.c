/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <string.h>

#include "expo/escape.h"

/* Byte classes; a byte leaves the plain fast path if its class is in the mode's mask. */
#define CLS_ALWAYS (1u << 0) /* backslash and newline, escaped in every mode */
#define CLS_QUOTE  (1u << 1)
#define CLS_NUL    (1u << 2)
#define CLS_HIGH   (1u << 3) /* start of a multi-byte sequence, or garbage */

static const uint8_t ascii_class[128] = {
	[0] = CLS_NUL,
	['\n'] = CLS_ALWAYS,
	['\\'] = CLS_ALWAYS,
	['"'] = CLS_QUOTE,
};

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

static unsigned mode_mask(enum escape_mode mode)
{
	switch (mode) {
	case ESCAPE_HELP_TEXT:
		return CLS_ALWAYS | CLS_NUL | CLS_HIGH;
	case ESCAPE_LABEL_VALUE:
	case ESCAPE_HELP_OPENMETRICS:
	default:
		/* An unknown mode gets the strictest treatment rather than none. */
		return CLS_ALWAYS | CLS_QUOTE | CLS_NUL | CLS_HIGH;
	}
}

/*
 * Length of the well-formed UTF-8 sequence at p (Unicode Table 3-7), or 0
 * with *ret_bad set to the length of its maximal ill-formed prefix, which
 * becomes one U+FFFD as Unicode and WHATWG recommend. Overlongs, surrogates
 * and code points above U+10FFFF fail on the second byte's range.
 */
static size_t utf8_sequence(const unsigned char *p, size_t n, size_t *ret_bad)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t need;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		need = 2;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else {
		/* Stray continuation byte, C0/C1 overlong lead, or F5..FF. */
		*ret_bad = 1;
		return 0;
	}

	for (size_t i = 1; i < need; i++) {
		if (i >= n || p[i] < lo || p[i] > hi) {
			*ret_bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

void escape_put(struct outbuf *b, const char *s, size_t n, enum escape_mode mode)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned mask = mode_mask(mode);
	size_t run = 0, i = 0;

	while (i < n) {
		unsigned cls = (p[i] < 0x80 ? ascii_class[p[i]] : CLS_HIGH) & mask;
		size_t len, bad = 1;

		if (cls == 0) {
			i++;
			continue;
		}
		if (cls & CLS_HIGH) {
			len = utf8_sequence(p + i, n - i, &bad);
			if (len > 0) {
				/* Valid multi-byte text stays in the run. */
				i += len;
				continue;
			}
		}

		outbuf_put(b, p + run, i - run);
		switch (p[i]) {
		case '\\':
			outbuf_put(b, "\\\\", 2);
			i++;
			break;
		case '\n':
			outbuf_put(b, "\\n", 2);
			i++;
			break;
		case '"':
			outbuf_put(b, "\\\"", 2);
			i++;
			break;
		case '\0':
			outbuf_put(b, replacement, 3);
			i++;
			break;
		default:
			outbuf_put(b, replacement, 3);
			i += bad;
			break;
		}
		run = i;
	}
	outbuf_put(b, p + run, i - run);
}

void escape_puts(struct outbuf *b, const char *s, enum escape_mode mode)
{
	escape_put(b, s, strlen(s), mode);
}

static bool is_name_start(char c)
{
	/* Spelled out rather than isalpha(), which depends on the locale. */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool escape_label_name_valid(const char *s)
{
	if (!s || !is_name_start(s[0]))
		return false;
	if (s[0] == '_' && s[1] == '_')
		return false;
	for (const char *c = s + 1; *c; c++)
		if (!is_name_start(*c) && !(*c >= '0' && *c <= '9'))
			return false;
	return true;
}
