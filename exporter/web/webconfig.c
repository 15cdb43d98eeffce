/* SPDX-License-Identifier: MIT */
/*
 * The exporter-toolkit web configuration, read the way the toolkit reads it
 * (yaml.UnmarshalStrict into its Config struct): unknown and repeated keys
 * are errors, YAML 1.1 booleans, relative paths from the file's directory, TLS
 * on as soon as a certificate, key, client CA or auth type is named. What
 * GnuTLS cannot honour exactly is refused with the reason, never dropped:
 * a security setting that is silently ignored is worse than a startup error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "macro.h"
#include "util/duration.h"
#include "util/fileio.h"
#include "web/parse.h"
#include "web/webconfig.h"

/* ---- http_server_config ------------------------------------------------------------------- */

/*
 * The toolkit's list of headers an operator may add, with the values allowed
 * where the header has a fixed vocabulary (NULL: any value). Everything else,
 * above all the headers that describe the body (Content-Type,
 * Content-Encoding, Content-Length), stays the exporter's.
 */
static const struct {
	const char *name;
	const char *values[3];
} allowed_headers[] = {
	{ "Strict-Transport-Security", { NULL } },
	{ "X-Content-Type-Options", { "nosniff", NULL } },
	{ "X-Frame-Options", { "deny", "sameorigin", NULL } },
	{ "X-XSS-Protection", { NULL } },
	{ "Content-Security-Policy", { NULL } },
};

static int http_headers(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	struct webconfig *c = p->c;
	int r;

	r = wc_mapping_array(p, value, path, "a mapping of header names to values",
			     sizeof(*c->headers), (void **)&c->headers);
	if (r < 0)
		return r;

	for (yaml_node_pair_t *pair = value->data.mapping.pairs.start;
	     pair < value->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
		char full[KEY_PATH_MAX];
		const char *name, *val;
		size_t i;

		if (!k || !v || k->type != YAML_SCALAR_NODE)
			return wc_fail_at(p, value, path, "header names must be plain names");
		name = (const char *)k->data.scalar.value;
		snprintf(full, sizeof(full), "%s.%s", path, name);
		r = wc_get_string(p, v, full, &val);
		if (r < 0)
			return r;
		if (strcasecmp(name, "Content-Type") == 0 ||
		    strcasecmp(name, "Content-Encoding") == 0 ||
		    strcasecmp(name, "Content-Length") == 0)
			return wc_fail_at(p, k, full,
					  "this header describes the response body and is set by "
					  "the "
					  "exporter; it cannot be configured");
		for (i = 0; i < ELEMENTSOF(allowed_headers); i++)
			if (strcasecmp(name, allowed_headers[i].name) == 0)
				break;
		if (i == ELEMENTSOF(allowed_headers))
			return wc_fail_at(p, k, full,
					  "this header cannot be configured (allowed, as in the "
					  "exporter-toolkit: Strict-Transport-Security, "
					  "X-Content-Type-Options, X-Frame-Options, "
					  "X-XSS-Protection, "
					  "Content-Security-Policy)");
		for (size_t j = 0; j < c->n_headers; j++)
			if (strcmp(c->headers[j].name, allowed_headers[i].name) == 0)
				return wc_fail_at(p, k, full, "header given more than once");
		for (const char *s = val; *s; s++)
			if ((unsigned char)*s < 0x20 || *s == 0x7f)
				return wc_fail_at(p, v, full, "control characters are not allowed");
		if (allowed_headers[i].values[0]) {
			bool ok = false;

			for (size_t j = 0; allowed_headers[i].values[j] && !ok; j++)
				ok = strcasecmp(val, allowed_headers[i].values[j]) == 0;
			if (!ok)
				return wc_fail_at(p, v, full,
						  "invalid value \"%s\" (expected %s%s%s)", val,
						  allowed_headers[i].values[0],
						  allowed_headers[i].values[1] ? " or " : "",
						  allowed_headers[i].values[1]
							  ? allowed_headers[i].values[1]
							  : "");
		}
		c->headers[c->n_headers].name = strdup(allowed_headers[i].name);
		c->headers[c->n_headers].value = strdup(val);
		c->n_headers++;
		if (!c->headers[c->n_headers - 1].name || !c->headers[c->n_headers - 1].value)
			return wc_fail_oom(p);
	}
	return 0;
}

static int http_http2(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	return wc_get_bool(p, value, path, &p->c->http2_requested);
}

static const struct key_rule http_rules[] = {
	{ "http2", http_http2 },
	{ "headers", http_headers },
};

static int section_http(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	return wc_walk_mapping(p, value, path, http_rules, ELEMENTSOF(http_rules));
}

/* ---- basic_auth_users ---------------------------------------------------------------------- */

/* $2a$, $2b$ or $2y$, a two-digit cost from 04 to 31, then 22 + 31 characters of salt and hash. */
static bool bcrypt_hash_valid(const char *h)
{
	static const char alphabet[] =
		"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned cost;

	if (strlen(h) != 60 || h[0] != '$' || h[1] != '2' || !strchr("aby", h[2]) || h[2] == '\0' ||
	    h[3] != '$' || h[6] != '$')
		return false;
	if (h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9')
		return false;
	cost = (unsigned)(h[4] - '0') * 10 + (unsigned)(h[5] - '0');
	if (cost < 4 || cost > 31)
		return false;
	for (size_t i = 7; i < 60; i++)
		if (!strchr(alphabet, h[i]) || h[i] == '\0')
			return false;
	return true;
}

static int user_compare(const void *a, const void *b)
{
	return strcmp(((const struct webconfig_user *)a)->name,
		      ((const struct webconfig_user *)b)->name);
}

static int section_users(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
			 const char *path)
{
	struct webconfig *c = p->c;
	int r;

	r = wc_mapping_array(p, value, path, "a mapping of user names to bcrypt hashes",
			     sizeof(*c->users), (void **)&c->users);
	if (r < 0)
		return r;
	for (yaml_node_pair_t *pair = value->data.mapping.pairs.start;
	     pair < value->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
		char full[KEY_PATH_MAX];
		const char *name, *hash;

		if (!k || !v || k->type != YAML_SCALAR_NODE)
			return wc_fail_at(p, value, path, "user names must be plain names");
		name = (const char *)k->data.scalar.value;
		snprintf(full, sizeof(full), "%s.%s", path, name);
		if (strlen(name) != k->data.scalar.length || !*name || strchr(name, ':'))
			return wc_fail_at(p, k, full,
					  "a user name must be non-empty, without ':' or NUL "
					  "characters");
		for (size_t j = 0; j < c->n_users; j++)
			if (strcmp(c->users[j].name, name) == 0)
				return wc_fail_at(p, k, full, "user given more than once");
		r = wc_get_string(p, v, full, &hash);
		if (r < 0)
			return r;
		if (!bcrypt_hash_valid(hash))
			return wc_fail_at(
				p, v, full,
				"not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost from "
				"04 to 31 and 53 characters, e.g. from htpasswd -nBC 10)");
		c->users[c->n_users].name = strdup(name);
		c->users[c->n_users].hash = strdup(hash);
		c->n_users++;
		if (!c->users[c->n_users - 1].name || !c->users[c->n_users - 1].hash)
			return wc_fail_oom(p);
	}
	qsort(c->users, c->n_users, sizeof(*c->users), user_compare);
	return 0;
}

/* ---- rate_limit ---------------------------------------------------------------------------- */

static int rate_burst(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	const char *s;
	unsigned long v = 0;
	int r = wc_get_string(p, value, path, &s);

	if (r < 0)
		return r;
	if (value->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || !*s)
		return wc_fail_at(p, value, path, "expected a whole number");
	if (*s == '+')
		s++;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return wc_fail_at(p, value, path,
					  "expected a whole number from 0 to 1000000");
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > 1000000)
			return wc_fail_at(p, value, path,
					  "expected a whole number from 0 to 1000000");
	}
	p->c->rate_limit_burst = (unsigned)v;
	return 0;
}

/* go-yaml's time.Duration: a Go duration string, or a bare integer of nanoseconds. */
static int rate_interval(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
			 const char *path)
{
	const char *s;
	bool digits = true;
	uint64_t usec;
	int r = wc_get_string(p, value, path, &s);

	if (r < 0)
		return r;
	for (const char *q = s; *q; q++)
		digits = digits && *q >= '0' && *q <= '9';
	if (digits && *s && value->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		uint64_t ns = 0;

		for (const char *q = s; *q; q++) {
			if (ns > (UINT64_MAX - 9) / 10)
				return wc_fail_at(p, value, path, "out of range");
			ns = ns * 10 + (uint64_t)(*q - '0');
		}
		p->c->rate_limit_interval_usec = ns / 1000;
		if (ns > 0 && ns < 1000)
			p->c->rate_limit_interval_usec = 1;
		return 0;
	}
	r = parse_duration_usec(s, &usec);
	if (r < 0)
		return wc_fail_at(p, value, path,
				  "expected a duration such as 100ms, 1s or 1m (not negative)");
	p->c->rate_limit_interval_usec = usec;
	return 0;
}

static const struct key_rule rate_rules[] = {
	{ "burst", rate_burst },
	{ "interval", rate_interval },
};

static int section_rate(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	return wc_walk_mapping(p, value, path, rate_rules, ELEMENTSOF(rate_rules));
}

/* ---- auth_excluded_paths ------------------------------------------------------------------- */

static int section_excluded(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
			    const char *path)
{
	struct webconfig *c = p->c;
	int r = wc_get_string_list(p, value, path, &c->auth_excluded_paths,
				   &c->n_auth_excluded_paths);

	if (r < 0)
		return r;
	if (c->n_auth_excluded_paths > WEBCONFIG_MAX_EXCLUDED_PATHS)
		return wc_fail_at(p, value, path, "more than %d paths",
				  WEBCONFIG_MAX_EXCLUDED_PATHS);
	for (size_t i = 0; i < c->n_auth_excluded_paths; i++)
		if (c->auth_excluded_paths[i][0] != '/')
			return wc_fail_at(p, value, path,
					  "\"%s\" is not a path (it must start with /)",
					  c->auth_excluded_paths[i]);
	return 0;
}

bool webconfig_auth_excluded(const struct webconfig *c, const char *path)
{
	for (size_t i = 0; c && path && i < c->n_auth_excluded_paths; i++)
		if (strcmp(c->auth_excluded_paths[i], path) == 0)
			return true;
	return false;
}

static const struct key_rule root_rules[] = {
	{ "tls_server_config", wc_section_tls },     { "http_server_config", section_http },
	{ "basic_auth_users", section_users },       { "rate_limit", section_rate },
	{ "auth_excluded_paths", section_excluded },
};

/* ---- entry points ------------------------------------------------------------------------- */

static void parse_ctx_release(struct parse_ctx *p)
{
	free(p->cert_file);
	free(p->key_file);
	free(p->client_ca_file);
	free(p->cert_inline);
	if (p->key_inline) {
		explicit_bzero(p->key_inline, strlen(p->key_inline));
		free(p->key_inline);
	}
	free(p->client_ca_inline);
	for (size_t i = 0; i < p->n_cipher_suites; i++)
		free(p->cipher_suites[i]);
	free(p->cipher_suites);
	for (size_t i = 0; i < p->n_curves; i++)
		free(p->curves[i]);
	free(p->curves);
}

int webconfig_parse(const char *text, size_t len, const char *name, const char *base_dir,
		    struct webconfig **ret, char *err, size_t errlen)
{
	struct parse_ctx p = { .name = name,
			       .base_dir = base_dir,
			       .err = err,
			       .errlen = errlen,
			       .prefer_server_cipher_suites = true };
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	int r;

	p.c = calloc(1, sizeof(*p.c));
	if (!p.c)
		return wc_fail_oom(&p);
	/* The toolkit's defaults. */
	p.c->min_version = WEBCONFIG_TLS12;
	p.c->max_version = WEBCONFIG_TLS13;

	if (!yaml_parser_initialize(&parser)) {
		webconfig_free(p.c);
		return wc_fail_oom(&p);
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		if (parser.error == YAML_MEMORY_ERROR)
			r = wc_fail_oom(&p);
		else if (err && errlen > 0)
			snprintf(err, errlen, "web config %s:%zu: invalid YAML: %s%s%s", name,
				 (size_t)parser.problem_mark.line + 1,
				 parser.problem ? parser.problem : "syntax error",
				 parser.context ? " " : "", parser.context ? parser.context : "");
		r = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
		yaml_parser_delete(&parser);
		webconfig_free(p.c);
		return r;
	}
	yaml_parser_delete(&parser);
	p.doc = &doc;

	root = yaml_document_get_root_node(&doc);
	if (root && !wc_is_null(root) && root->type != YAML_MAPPING_NODE)
		r = wc_fail_at(&p, root, NULL, "expected a mapping of settings at the top, got %s",
			       wc_node_kind(root));
	else
		r = root ? wc_walk_mapping(&p, root, "", root_rules, ELEMENTSOF(root_rules)) : 0;
	if (r >= 0)
		r = wc_finish_tls(&p);
	yaml_document_delete(&doc);
	parse_ctx_release(&p);
	if (r < 0) {
		webconfig_free(p.c);
		return r;
	}
	*ret = p.c;
	return 0;
}

int webconfig_load(const char *path, struct webconfig **ret, char *err, size_t errlen)
{
	_cleanup_free_ char *text = NULL, *dir = NULL;
	const char *slash;
	size_t len;
	int r;

	r = read_file_bounded(path, WEBCONFIG_MAX_FILE_SIZE, &text, &len);
	if (r < 0) {
		if (err && errlen > 0)
			snprintf(err, errlen, "web config %s: cannot read it: %s", path,
				 wc_file_error(r));
		return r;
	}
	slash = strrchr(path, '/');
	dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	if (!dir) {
		if (err && errlen > 0)
			snprintf(err, errlen, "web config %s: out of memory", path);
		return -ENOMEM;
	}
	return webconfig_parse(text, len, path, dir, ret, err, errlen);
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

struct webconfig *webconfig_free(struct webconfig *c)
{
	if (!c)
		return NULL;
	free(c->cert_pem);
	free_secret(c->key_pem);
	free(c->client_ca_pem);
	if (c->client_allowed_sans)
		for (size_t i = 0; i < c->n_client_allowed_sans; i++)
			free(c->client_allowed_sans[i]);
	free(c->client_allowed_sans);
	for (size_t i = 0; i < c->n_auth_excluded_paths; i++)
		free(c->auth_excluded_paths[i]);
	free(c->auth_excluded_paths);
	for (size_t i = 0; i < ELEMENTSOF(c->tls_files); i++)
		free(c->tls_files[i]);
	free(c->priorities);
	for (size_t i = 0; i < c->n_headers; i++) {
		free(c->headers[i].name);
		free(c->headers[i].value);
	}
	free(c->headers);
	for (size_t i = 0; i < c->n_users; i++) {
		free(c->users[i].name);
		free_secret(c->users[i].hash);
	}
	free(c->users);
	free(c);
	return NULL;
}

const struct webconfig_user *webconfig_find_user(const struct webconfig *c, const char *name)
{
	struct webconfig_user key = { .name = (char *)(uintptr_t)name };

	if (!c || c->n_users == 0)
		return NULL;
	return bsearch(&key, c->users, c->n_users, sizeof(*c->users), user_compare);
}
