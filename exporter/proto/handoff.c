/* SPDX-License-Identifier: MIT */
/*
 * Hand-off messages without a JSON library: the shim lives inside someone
 * else's process (QEMU), where every extra shared library is a risk of symbol
 * clashes, so the few shapes it sends are written by hand and the answers,
 * which are tiny, are read by a small scanner that accepts any valid object.
 * The exporter parses messages strictly with jansson (sources/handoff_msg.c)
 * and writes its answers here, so that both ends share one definition.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/handoff.h"
#include "util/utf8.h"

#define SCAN_MAX_DEPTH 16

struct jbuf {
	char *p;
	size_t size;
	size_t len;
	bool overflow;
};

static void jb_putn(struct jbuf *b, const char *s, size_t n)
{
	if (b->overflow || n >= b->size - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void jb_puts(struct jbuf *b, const char *s)
{
	jb_putn(b, s, strlen(s));
}

/* A JSON string: quotes, backslashes and control characters escaped; UTF-8 passes through. */
static void jb_string(struct jbuf *b, const char *s)
{
	jb_putn(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			jb_putn(b, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)c);
			jb_putn(b, esc, 6);
		} else {
			jb_putn(b, s, 1);
		}
	}
	jb_putn(b, "\"", 1);
}

static void jb_roles(struct jbuf *b, const int *roles, size_t n_roles)
{
	jb_puts(b, "\"fds\":[");
	for (size_t i = 0; i < n_roles; i++) {
		char role[32];

		if (i)
			jb_puts(b, ",");
		handoff_role_format(roles[i], role, sizeof(role));
		jb_string(b, role);
	}
	jb_puts(b, "]");
}

static int jb_finish(struct jbuf *b)
{
	if (b->overflow || b->len > INT32_MAX)
		return -ENOBUFS;
	return (int)b->len;
}

/*
 * A JSON string of at most max bytes (quotes included), cut at a character
 * boundary when s does not fit; bytes that are not UTF-8 become '?'.
 */
static void jb_string_cut(struct jbuf *b, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), used = 2;

	jb_putn(b, "\"", 1);
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		char esc[8];
		const char *out = (const char *)p + i;
		size_t out_n = n;

		if (n == 0) {
			out = "?";
			out_n = n = 1;
		} else if (cp == '"' || cp == '\\') {
			esc[0] = '\\';
			esc[1] = (char)cp;
			out = esc;
			out_n = 2;
		} else if (cp < 0x20 || cp == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
			out = esc;
			out_n = 6;
		}
		if (used + out_n > max)
			break;
		jb_putn(b, out, out_n);
		used += out_n;
		i += n;
	}
	jb_putn(b, "\"", 1);
}

int handoff_build_answer(char *buf, size_t size, const char *error)
{
	static const char head[] = "{\"ok\":false,\"error\":";
	struct jbuf b = { .p = buf, .size = size, .overflow = size == 0 };

	if (!error) {
		jb_puts(&b, "{\"ok\":true}");
		return jb_finish(&b);
	}
	jb_puts(&b, head);
	/* Room for the head, the closing brace and the final NUL of the buffer. */
	jb_string_cut(&b, error, HANDOFF_MAX_ANSWER - (sizeof(head) - 1) - 2);
	jb_puts(&b, "}");
	return jb_finish(&b);
}

int handoff_build_register(char *buf, size_t size, const char *name, const char *uuid,
			   const int *roles, size_t n_roles)
{
	struct jbuf b = { .p = buf, .size = size, .overflow = size == 0 };

	jb_puts(&b, "{\"version\":1,\"vm\":{\"name\":");
	jb_string(&b, name);
	if (uuid) {
		jb_puts(&b, ",\"uuid\":");
		jb_string(&b, uuid);
	}
	jb_puts(&b, "},");
	jb_roles(&b, roles, n_roles);
	jb_puts(&b, "}");
	return jb_finish(&b);
}

int handoff_build_add(char *buf, size_t size, const int *roles, size_t n_roles)
{
	struct jbuf b = { .p = buf, .size = size, .overflow = size == 0 };

	jb_puts(&b, "{");
	jb_roles(&b, roles, n_roles);
	jb_puts(&b, "}");
	return jb_finish(&b);
}

int handoff_build_threads(char *buf, size_t size, const int *vcpus, const int *tids, size_t n)
{
	struct jbuf b = { .p = buf, .size = size, .overflow = size == 0 };

	jb_puts(&b, "{\"threads\":{");
	for (size_t i = 0; i < n; i++) {
		char entry[48];

		snprintf(entry, sizeof(entry), "%s\"vcpu:%d\":%d", i ? "," : "", vcpus[i], tids[i]);
		jb_puts(&b, entry);
	}
	jb_puts(&b, "}}");
	return jb_finish(&b);
}

void handoff_role_format(int role, char *buf, size_t len)
{
	if (role == HANDOFF_ROLE_VM)
		snprintf(buf, len, "vm");
	else
		snprintf(buf, len, "vcpu:%d", role);
}

bool handoff_text_valid(const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;

	if (len > max)
		return false;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);

		if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return false;
		i += n;
	}
	return true;
}

int handoff_role_parse(const char *s, int *ret)
{
	int n = 0;

	if (strcmp(s, "vm") == 0) {
		*ret = HANDOFF_ROLE_VM;
		return 0;
	}
	if (strncmp(s, "vcpu:", 5) != 0 || s[5] == '\0' || (s[5] == '0' && s[6] != '\0'))
		return -EINVAL;
	for (s += 5; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		n = n * 10 + (*s - '0');
		if (n > HANDOFF_MAX_VCPU_INDEX)
			return -EINVAL;
	}
	*ret = n;
	return 0;
}

bool handoff_name_valid(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && handoff_text_valid(name, n, HANDOFF_MAX_NAME);
}

bool handoff_uuid_valid(const char *uuid)
{
	return handoff_text_valid(uuid, strlen(uuid), HANDOFF_MAX_UUID);
}

/* --- answers ------------------------------------------------------------- */

struct scan {
	const char *p;
	const char *end;
};

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static bool take(struct scan *s, char c)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return true;
	}
	return false;
}

static bool take_word(struct scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return false;
	s->p += n;
	return true;
}

/*
 * A string at s->p (after whitespace). Its text, simplified for a log line
 * (escapes decoded, \u beyond ASCII as '?'), goes to out when out is not NULL,
 * shortened to out_size - 1 bytes.
 */
static bool scan_string(struct scan *s, char *out, size_t out_size)
{
	size_t n = 0;

	if (!take(s, '"'))
		return false;
	while (s->p < s->end) {
		char c = *s->p++;

		if (c == '"') {
			if (out)
				out[n] = '\0';
			return true;
		}
		if ((unsigned char)c < 0x20)
			return false;
		if (c == '\\') {
			if (s->p >= s->end)
				return false;
			c = *s->p++;
			switch (c) {
			case '"':
			case '\\':
			case '/':
				break;
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				c = ' ';
				break;
			case 'u': {
				unsigned v = 0;

				for (int i = 0; i < 4; i++, s->p++) {
					char h = s->p < s->end ? *s->p : '\0';

					if (h >= '0' && h <= '9')
						v = v * 16 + (unsigned)(h - '0');
					else if (h >= 'a' && h <= 'f')
						v = v * 16 + (unsigned)(h - 'a' + 10);
					else if (h >= 'A' && h <= 'F')
						v = v * 16 + (unsigned)(h - 'A' + 10);
					else
						return false;
				}
				c = v >= 0x20 && v < 0x7f ? (char)v : '?';
				break;
			}
			default:
				return false;
			}
		}
		/* Terminated as it goes: a string that turns out malformed leaves no garbage. */
		if (out && n + 1 < out_size) {
			out[n++] = c == 0x7f ? '?' : c; /* DEL is JSON text, not log text */
			out[n] = '\0';
		}
	}
	return false;
}

static bool skip_value(struct scan *s, int depth)
{
	skip_ws(s);
	if (s->p >= s->end || depth > SCAN_MAX_DEPTH)
		return false;
	switch (*s->p) {
	case '"':
		return scan_string(s, NULL, 0);
	case '{':
	case '[': {
		char close = *s->p == '{' ? '}' : ']';
		bool object = close == '}';

		s->p++;
		if (take(s, close))
			return true;
		do {
			if (object && (!scan_string(s, NULL, 0) || !take(s, ':')))
				return false;
			if (!skip_value(s, depth + 1))
				return false;
		} while (take(s, ','));
		return take(s, close);
	}
	case 't':
		return take_word(s, "true");
	case 'f':
		return take_word(s, "false");
	case 'n':
		return take_word(s, "null");
	default: {
		const char *start = s->p;

		while (s->p < s->end && strchr("+-0123456789.eE", *s->p))
			s->p++;
		return s->p > start;
	}
	}
}

int handoff_parse_answer(const char *buf, size_t len, char *ret_error, size_t error_size)
{
	struct scan s = { .p = buf, .end = buf + len };
	int ok = -1;

	if (ret_error && error_size)
		snprintf(ret_error, error_size, "%s", "no reason given");
	if (!take(&s, '{'))
		return -EBADMSG;
	if (!take(&s, '}')) {
		do {
			char key[8];

			if (!scan_string(&s, key, sizeof(key)) || !take(&s, ':'))
				return -EBADMSG;
			skip_ws(&s);
			if (strcmp(key, "ok") == 0) {
				if (take_word(&s, "true"))
					ok = 1;
				else if (take_word(&s, "false"))
					ok = 0;
				else
					return -EBADMSG;
			} else if (strcmp(key, "error") == 0 && s.p < s.end && *s.p == '"' &&
				   ret_error && error_size) {
				if (!scan_string(&s, ret_error, error_size))
					return -EBADMSG;
			} else if (!skip_value(&s, 1)) {
				return -EBADMSG;
			}
		} while (take(&s, ','));
		if (!take(&s, '}'))
			return -EBADMSG;
	}
	skip_ws(&s);
	/* A trailing NUL is tolerated: some peers send C strings with it. */
	if (s.p < s.end && *s.p == '\0' && s.p + 1 == s.end)
		s.p++;
	if (s.p != s.end || ok < 0)
		return -EBADMSG;
	return ok;
}
