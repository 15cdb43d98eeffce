/* SPDX-License-Identifier: MIT */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "http/negotiate.h"

/* Weights in thousandths: "q=0.5" is 500. */
#define WEIGHT_MAX 1000

/* One element of Accept (type/subtype) or Accept-Encoding (type only). */
struct element {
	const char *type, *subtype;
	size_t type_len, subtype_len;
	const char *version; /* Accept's version parameter, or NULL */
	size_t version_len;
	int weight;
};

/* RFC 9110 tchar, spelled out rather than isalnum(), which depends on the locale. */
static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static void skip_ows(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

static size_t take_token(const char **p)
{
	const char *start = *p;

	while (is_tchar(**p))
		(*p)++;
	return (size_t)(*p - start);
}

/* A quoted-string; *ret_value and *ret_len give its raw inside. False when unterminated. */
static bool take_quoted(const char **p, const char **ret_value, size_t *ret_len)
{
	const char *s = *p + 1;

	*ret_value = s;
	while (*s && *s != '"') {
		if (*s == '\\' && s[1])
			s++;
		s++;
	}
	if (*s != '"')
		return false;
	*ret_len = (size_t)(s - *ret_value);
	*p = s + 1;
	return true;
}

/* Past the next comma outside a quoted-string, or to the end. */
static void skip_element(const char **p)
{
	const char *s = *p;

	while (*s && *s != ',') {
		if (*s == '"') {
			const char *v;
			size_t n;

			if (!take_quoted(&s, &v, &n))
				break;
			continue;
		}
		s++;
	}
	*p = *s == ',' ? s + 1 : s + strlen(s);
}

static bool equals(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
static bool parse_weight(const char *s, size_t n, int *ret)
{
	int w, scale = 100;

	if (n == 0 || n > 5 || (s[0] != '0' && s[0] != '1'))
		return false;
	w = (s[0] - '0') * WEIGHT_MAX;
	if (n > 1 && s[1] != '.')
		return false;
	for (size_t i = 2; i < n; i++, scale /= 10) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		w += (s[i] - '0') * scale;
	}
	if (w > WEIGHT_MAX)
		return false;
	*ret = w;
	return true;
}

/*
 * Reads one element and moves *p past it and its comma. False for an empty
 * or malformed element, which is then ignored as a whole: a bad weight must
 * not turn into the default weight 1.
 */
static bool parse_element(const char **p, bool media_range, struct element *e)
{
	*e = (struct element){ .weight = WEIGHT_MAX };
	skip_ows(p);
	e->type = *p;
	e->type_len = take_token(p);
	if (e->type_len == 0)
		goto bad;
	if (media_range) {
		if (**p != '/')
			goto bad;
		(*p)++;
		e->subtype = *p;
		e->subtype_len = take_token(p);
		if (e->subtype_len == 0)
			goto bad;
	}
	for (;;) {
		const char *name, *value;
		size_t name_len, value_len;

		skip_ows(p);
		if (**p == '\0')
			return true;
		if (**p == ',') {
			(*p)++;
			return true;
		}
		if (**p != ';')
			goto bad;
		(*p)++;
		skip_ows(p);
		if (**p == ';' || **p == ',' || **p == '\0')
			continue; /* an empty parameter is allowed */
		name = *p;
		name_len = take_token(p);
		if (name_len == 0 || **p != '=')
			goto bad;
		(*p)++;
		if (**p == '"') {
			if (!take_quoted(p, &value, &value_len))
				goto bad;
		} else {
			value = *p;
			value_len = take_token(p);
			if (value_len == 0)
				goto bad;
		}
		if (equals(name, name_len, "q")) {
			if (!parse_weight(value, value_len, &e->weight))
				goto bad;
		} else if (media_range && equals(name, name_len, "version")) {
			e->version = value;
			e->version_len = value_len;
		}
	}
bad:
	skip_element(p);
	return false;
}

/* A format we can send, and the best range naming it so far. */
struct offer {
	const char *type, *subtype, *version;
	int specificity; /* of the range that set weight; 0: none yet */
	int weight;
};

/*
 * How specifically a media range names an offer: 4 type, subtype and our
 * version; 3 type and subtype; 2 the type with a subtype wildcard; 1 the
 * full wildcard; 0 not at all.
 */
static int specificity(const struct element *e, const struct offer *o)
{
	if (equals(e->type, e->type_len, "*"))
		return equals(e->subtype, e->subtype_len, "*") ? 1 : 0;
	if (!equals(e->type, e->type_len, o->type))
		return 0;
	if (equals(e->subtype, e->subtype_len, "*"))
		return 2;
	if (!equals(e->subtype, e->subtype_len, o->subtype))
		return 0;
	if (!e->version)
		return 3;
	/* Another version of the format is something we cannot send. */
	if (e->version_len != strlen(o->version) ||
	    strncmp(e->version, o->version, e->version_len) != 0)
		return 0;
	return 4;
}

enum exposition_format negotiate_format(const char *accept)
{
	struct offer offers[] = {
		[EXPOSITION_TEXT_004] = { "text", "plain", "0.0.4", 0, 0 },
		[EXPOSITION_OPENMETRICS_100] = { "application", "openmetrics-text", "1.0.0", 0, 0 },
	};
	struct element e;

	for (const char *p = accept ? accept : ""; *p;) {
		if (!parse_element(&p, true, &e))
			continue;
		for (size_t i = 0; i < ELEMENTSOF(offers); i++) {
			int spec = specificity(&e, &offers[i]);

			/* The first of equally specific ranges counts. */
			if (spec > offers[i].specificity) {
				offers[i].specificity = spec;
				offers[i].weight = e.weight;
			}
		}
	}
	return offers[EXPOSITION_OPENMETRICS_100].weight > offers[EXPOSITION_TEXT_004].weight
		       ? EXPOSITION_OPENMETRICS_100
		       : EXPOSITION_TEXT_004;
}

bool negotiate_gzip(const char *accept_encoding)
{
	int gzip = -1, identity = -1, any = -1;
	struct element e;

	for (const char *p = accept_encoding ? accept_encoding : ""; *p;) {
		int *slot;

		if (!parse_element(&p, false, &e))
			continue;
		if (equals(e.type, e.type_len, "gzip") || equals(e.type, e.type_len, "x-gzip"))
			slot = &gzip;
		else if (equals(e.type, e.type_len, "identity"))
			slot = &identity;
		else if (equals(e.type, e.type_len, "*"))
			slot = &any;
		else
			continue;
		if (*slot < 0)
			*slot = e.weight;
	}
	if (gzip < 0)
		gzip = any > 0 ? any : 0;
	/* Identity is acceptable unless excluded; only an explicit weight can prefer it. */
	return gzip > 0 && (identity < 0 || gzip >= identity);
}
