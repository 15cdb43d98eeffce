/* SPDX-License-Identifier: MIT */
/*
 * The Authorization header comes from any client, before authentication:
 * whatever the bytes, basicauth_parse_header() terminates, stays in bounds,
 * and what it accepts is exactly "Basic " (any case) + padded base64 of
 * user:password without whitespace, which encoding the decoded parts again
 * gives back (up to the bits padding drops, which Go's decoder ignores too).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "web/basicauth.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding of s[0..n). */
static char *encode(const char *s, size_t n)
{
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;

	CHECK(out);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)s[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? b64[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

/* in equals the canonical out but for the bits of its last data character that padding drops. */
static int same_encoding(const char *in, const char *out)
{
	size_t n = strlen(out),
	       pad = n && out[n - 1] == '=' ? (n > 1 && out[n - 2] == '=' ? 2 : 1) : 0;
	int ignored = pad == 2 ? 0xf : pad == 1 ? 0x3 : 0;

	if (strlen(in) != n || n == 0)
		return 0;
	if (memcmp(in, out, n - pad - 1) != 0 || memcmp(in + n - pad, out + n - pad, pad) != 0)
		return 0;
	return value(in[n - pad - 1]) >= 0 &&
	       (value(in[n - pad - 1]) & ~ignored) == (value(out[n - pad - 1]) & ~ignored);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *header = malloc(size + 1), *user = NULL, *password = NULL;
	int r;

	CHECK(header);
	memcpy(header, data, size);
	header[size] = '\0';
	r = basicauth_parse_header(header, &user, &password);
	CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
	if (r == 0) {
		size_t nu = strlen(user), np = strlen(password);
		char *joined = malloc(nu + np + 2), *again;

		CHECK(joined);
		CHECK(strncasecmp(header, "basic ", 6) == 0);
		/* The user name ends at the first colon; the password may hold more. */
		CHECK(!strchr(user, ':'));
		memcpy(joined, user, nu);
		joined[nu] = ':';
		memcpy(joined + nu + 1, password, np + 1);
		again = encode(joined, nu + np + 1);
		CHECK(same_encoding(header + 6, again));
		free(again);
		free(joined);
		free(user);
		free(password);
	}
	free(header);
	return 0;
}
