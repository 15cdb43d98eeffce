/* SPDX-License-Identifier: MIT */
/* The strict YAML walker of the web config (see parse.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "web/parse.h"

_printf_(4, 5) int wc_fail_at(struct parse_ctx *p, const yaml_node_t *node, const char *key,
			      const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!p->err || p->errlen == 0)
		return -EINVAL;
	if (node && key)
		snprintf(p->err, p->errlen, "web config %s:%zu: %s: %s", p->name,
			 (size_t)node->start_mark.line + 1, key, msg);
	else if (node)
		snprintf(p->err, p->errlen, "web config %s:%zu: %s", p->name,
			 (size_t)node->start_mark.line + 1, msg);
	else if (key)
		snprintf(p->err, p->errlen, "web config %s: %s: %s", p->name, key, msg);
	else
		snprintf(p->err, p->errlen, "web config %s: %s", p->name, msg);
	return -EINVAL;
}

int wc_fail_oom(struct parse_ctx *p)
{
	if (p->err && p->errlen > 0)
		snprintf(p->err, p->errlen, "web config %s: out of memory", p->name);
	return -ENOMEM;
}

const char *wc_node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a single value";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

bool wc_is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	const char *v;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)n->data.scalar.value;
	for (size_t i = 0; i < ELEMENTSOF(nulls); i++)
		if (strcmp(v, nulls[i]) == 0)
			return true;
	return false;
}

/* The scalar's text; -EINVAL for a list, a mapping or an embedded NUL. Null reads as "". */
int wc_get_string(struct parse_ctx *p, const yaml_node_t *n, const char *key, const char **ret)
{
	if (wc_is_null(n)) {
		*ret = "";
		return 0;
	}
	if (n->type != YAML_SCALAR_NODE)
		return wc_fail_at(p, n, key, "expected a single value, got %s", wc_node_kind(n));
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return wc_fail_at(p, n, key, "contains a NUL character");
	*ret = (const char *)n->data.scalar.value;
	return 0;
}

int wc_dup_string(struct parse_ctx *p, const yaml_node_t *n, const char *key, char **ret)
{
	const char *s;
	char *copy;
	int r = wc_get_string(p, n, key, &s);

	if (r < 0)
		return r;
	copy = strdup(s);
	if (!copy)
		return wc_fail_oom(p);
	free(*ret);
	*ret = copy;
	return 0;
}

/* YAML 1.1 booleans, as go-yaml v2 resolves them; quoted text is a string, not a bool. */
int wc_get_bool(struct parse_ctx *p, const yaml_node_t *n, const char *key, bool *ret)
{
	static const char *const yes[] = { "y",    "Y",    "yes", "Yes", "YES", "true",
					   "True", "TRUE", "on",  "On",  "ON" };
	static const char *const no[] = { "n",     "N",     "no",  "No",  "NO", "false",
					  "False", "FALSE", "off", "Off", "OFF" };
	const char *v;

	if (wc_is_null(n)) {
		*ret = false;
		return 0;
	}
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return wc_fail_at(p, n, key, "expected true or false");
	v = (const char *)n->data.scalar.value;
	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (strcmp(v, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return wc_fail_at(p, n, key, "expected true or false, got \"%s\"", v);
}

/* A list of strings (null is empty). */
int wc_get_string_list(struct parse_ctx *p, const yaml_node_t *n, const char *key, char ***ret,
		       size_t *ret_n)
{
	size_t count;
	char **v;

	if (wc_is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE)
		return wc_fail_at(p, n, key, "expected a list, got %s", wc_node_kind(n));
	count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	v = calloc(count + 1, sizeof(*v));
	if (!v)
		return wc_fail_oom(p);
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *item = yaml_document_get_node(p->doc, n->data.sequence.items.start[i]);
		char k[KEY_PATH_MAX];
		int r;

		snprintf(k, sizeof(k), "%s[%zu]", key, i);
		r = item ? wc_dup_string(p, item, k, &v[i]) : wc_fail_at(p, n, k, "missing");
		if (r < 0) {
			for (size_t j = 0; j < i; j++)
				free(v[j]);
			free(v);
			return r;
		}
	}
	*ret = v;
	*ret_n = count;
	return 0;
}

/*
 * Walks a mapping: every key must be a known, unrepeated name; a null value
 * counts as absent. path is the mapping's own key path ("" at the top).
 */
int wc_walk_mapping(struct parse_ctx *p, yaml_node_t *map, const char *path,
		    const struct key_rule *rules, size_t n_rules)
{
	bool seen[16] = { false };

	if (wc_is_null(map))
		return 0;
	if (map->type != YAML_MAPPING_NODE)
		return wc_fail_at(p, map, *path ? path : NULL, "expected a mapping, got %s",
				  wc_node_kind(map));
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
		char full[KEY_PATH_MAX];
		const char *name;
		size_t i;
		int r;

		if (!k || !v || k->type != YAML_SCALAR_NODE)
			return wc_fail_at(p, k ? k : map, *path ? path : NULL,
					  "keys must be plain names");
		name = (const char *)k->data.scalar.value;
		snprintf(full, sizeof(full), "%s%s%s", path, *path ? "." : "", name);
		for (i = 0; i < n_rules && i < ELEMENTSOF(seen); i++)
			if (strcmp(rules[i].name, name) == 0)
				break;
		if (i == n_rules || i >= ELEMENTSOF(seen))
			return wc_fail_at(p, k, full, "unknown key");
		if (seen[i])
			return wc_fail_at(p, k, full, "key given more than once");
		seen[i] = true;
		if (wc_is_null(v))
			continue; /* as go-yaml: a null value leaves the default */
		r = rules[i].handle(p, k, v, full);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * A mapping node whose pairs become an array: checks the node kind (saying
 * `what` was expected) and allocates one zeroed element per pair.
 */
int wc_mapping_array(struct parse_ctx *p, yaml_node_t *value, const char *path, const char *what,
		     size_t elem_size, void **ret)
{
	size_t count;

	if (value->type != YAML_MAPPING_NODE)
		return wc_fail_at(p, value, path, "expected %s, got %s", what, wc_node_kind(value));
	count = (size_t)(value->data.mapping.pairs.top - value->data.mapping.pairs.start);
	*ret = calloc(count ? count : 1, elem_size);
	return *ret ? 0 : wc_fail_oom(p);
}
