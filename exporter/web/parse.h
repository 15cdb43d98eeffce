/* SPDX-License-Identifier: MIT */
/*
 * Internals of the web config parser shared by its files: the parse context,
 * the strict YAML walker (yaml_walk.c: unknown and repeated keys are errors,
 * every error names the file, the line and the key) and the TLS section
 * (section_tls.c), which webconfig.c's top level calls.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "macro.h"

struct webconfig;

/* Far beyond any real web config (or certificate chain); a bigger file is a mistake. */
#define WEBCONFIG_MAX_FILE_SIZE (1u << 20)
#define KEY_PATH_MAX            256

struct parse_ctx {
	const char *name;     /* the file, for messages */
	const char *base_dir; /* for relative paths */
	yaml_document_t *doc;
	char *err;
	size_t errlen;
	struct webconfig *c;
	/* Raw TLS settings, resolved once the whole file is read. */
	char *cert_file, *key_file, *client_ca_file;
	char *cert_inline, *key_inline, *client_ca_inline;
	yaml_node_t *cert_node, *key_node, *client_ca_node, *client_auth_node;
	yaml_node_t *cipher_node, *curve_node, *max_version_node;
	bool tls_named; /* any of the keys that turn TLS on */
	bool prefer_server_cipher_suites;
	char **cipher_suites;
	size_t n_cipher_suites;
	char **curves;
	size_t n_curves;
};

typedef int (*key_handler)(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
			   const char *path);

struct key_rule {
	const char *name;
	key_handler handle;
};

/* Writes "web config FILE:LINE: KEY: message" into p->err; returns -EINVAL. */
_printf_(4, 5) int wc_fail_at(struct parse_ctx *p, const yaml_node_t *node, const char *key,
			      const char *fmt, ...);
/* Writes "out of memory" into p->err; returns -ENOMEM. */
int wc_fail_oom(struct parse_ctx *p);
/* "a mapping", "a list", ... for messages. */
const char *wc_node_kind(const yaml_node_t *n);
/* Whether a node is YAML null (absent, ~, null). */
bool wc_is_null(const yaml_node_t *n);
/* A scalar's string (borrowed from the document). */
int wc_get_string(struct parse_ctx *p, const yaml_node_t *n, const char *key, const char **ret);
/* A scalar's string, copied. */
int wc_dup_string(struct parse_ctx *p, const yaml_node_t *n, const char *key, char **ret);
/* A YAML 1.1 boolean, as go-yaml reads it. */
int wc_get_bool(struct parse_ctx *p, const yaml_node_t *n, const char *key, bool *ret);
/* A list of scalars, copied. */
int wc_get_string_list(struct parse_ctx *p, const yaml_node_t *n, const char *key, char ***ret,
		       size_t *ret_n);
/*
 * Walks a mapping: every key must be a known, unrepeated name; a null value
 * counts as absent. path is the mapping's own key path ("" at the top).
 */
int wc_walk_mapping(struct parse_ctx *p, yaml_node_t *map, const char *path,
		    const struct key_rule *rules, size_t n_rules);
/* A mapping whose pairs become an array of zeroed elements (what: the expected kind). */
int wc_mapping_array(struct parse_ctx *p, yaml_node_t *value, const char *path, const char *what,
		     size_t elem_size, void **ret);

/* The reason a read_file_bounded() of a config file failed, for messages. */
const char *wc_file_error(int r);

/* tls_server_config: records the raw settings. */
int wc_section_tls(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path);
/* After the whole file: reads and checks the TLS material, builds the priority string. */
int wc_finish_tls(struct parse_ctx *p);
