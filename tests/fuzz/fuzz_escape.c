/* SPDX-License-Identifier: MIT */
/*
 * Whatever bytes a VM name, a vhost peer or a sysfs file hands us, the
 * escaped text must be valid UTF-8, stay on one line and (in the quoted
 * modes) never close the label value early.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "expo/escape.h"
#include "utf8_ref.h"

/* Unescapes into out (at most n bytes); aborts on anything the mode must never emit. */
static size_t unescape_checked(const char *s, size_t n, enum escape_mode mode, char *out)
{
	bool quotes_escaped = mode != ESCAPE_HELP_TEXT;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		CHECK(s[i] != '\n');
		CHECK(s[i] != '\0');
		CHECK(!(quotes_escaped && s[i] == '"'));
		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		CHECK(++i < n);
		if (s[i] == '\\')
			out[o++] = '\\';
		else if (s[i] == 'n')
			out[o++] = '\n';
		else if (quotes_escaped && s[i] == '"')
			out[o++] = '"';
		else
			abort();
	}
	return o;
}

static bool label_name_valid_ref(const uint8_t *s, size_t n)
{
	if (n == 0 || (n >= 2 && s[0] == '_' && s[1] == '_'))
		return false;
	for (size_t i = 0; i < n; i++) {
		bool alpha = (s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z';
		bool digit = s[i] >= '0' && s[i] <= '9';

		if (!(alpha || s[i] == '_' || (i > 0 && digit)))
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum escape_mode modes[] = {
		ESCAPE_LABEL_VALUE,
		ESCAPE_HELP_TEXT,
		ESCAPE_HELP_OPENMETRICS,
	};
	/* Reused like the exporter reuses its buffer across scrapes. */
	static struct outbuf b;
	bool clean = utf8_valid(data, size) && !memchr(data, '\0', size);
	char *out;

	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		outbuf_reset(&b);
		escape_put(&b, (const char *)data, size, modes[m]);
		CHECK(!b.failed);
		CHECK(utf8_valid((const unsigned char *)b.data, b.len));

		out = malloc(b.len + 1);
		CHECK(out);
		size_t n = unescape_checked(b.data, b.len, modes[m], out);
		CHECK(utf8_valid((const unsigned char *)out, n));
		/* Valid input survives the round trip byte for byte. */
		if (clean)
			CHECK(n == size && (size == 0 || memcmp(out, data, size) == 0));
		free(out);
	}

	/* The name check must agree with the grammar, and stop at the first NUL like C strings. */
	char *name = malloc(size + 1);
	CHECK(name);
	if (size > 0)
		memcpy(name, data, size);
	name[size] = '\0';
	CHECK(escape_label_name_valid(name) == label_name_valid_ref(data, strlen(name)));
	free(name);

	return 0;
}
