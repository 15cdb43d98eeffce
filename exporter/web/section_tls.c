/* SPDX-License-Identifier: MIT */
/* tls_server_config: the settings, the PEM files they name, and GnuTLS priorities. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "util/fileio.h"
#include "web/parse.h"
#include "web/webconfig_tls.h"

/* ---- files -------------------------------------------------------------------------------- */

/* base_dir/path unless path is absolute (or empty), as config_util.JoinDir does. */
static char *join_dir(const char *base_dir, const char *path)
{
	char *s;

	if (path[0] == '/' || path[0] == '\0' || !base_dir || !*base_dir)
		return strdup(path);
	if (asprintf(&s, "%s/%s", base_dir, path) < 0)
		return NULL;
	return s;
}

const char *wc_file_error(int r)
{
	switch (r) {
	case -EFBIG:
		return "file too large (at most 1 MiB)";
	case -EBADFD:
		return "not a regular file";
	default:
		return strerror(-r);
	}
}

/* Reads the PEM named by a *_file key (path already joined) into *ret. */
static int load_pem(struct parse_ctx *p, const yaml_node_t *node, const char *key, const char *path,
		    char **ret)
{
	char *data;
	int r;

	r = read_file_bounded(path, WEBCONFIG_MAX_FILE_SIZE, &data, NULL);
	if (r == -ENOMEM)
		return wc_fail_oom(p);
	if (r < 0)
		return wc_fail_at(p, node, key, "cannot read \"%s\": %s", path, wc_file_error(r));
	*ret = data;
	return 0;
}

/* ---- tls_server_config --------------------------------------------------------------------- */

static const struct {
	const char *name;
	enum webconfig_client_auth value;
} client_auth_names[] = {
	{ "NoClientCert", WEBCONFIG_CLIENT_AUTH_NONE },
	{ "RequestClientCert", WEBCONFIG_CLIENT_AUTH_REQUEST },
	{ "RequireAnyClientCert", WEBCONFIG_CLIENT_AUTH_REQUIRE_ANY },
	{ "VerifyClientCertIfGiven", WEBCONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN },
	{ "RequireAndVerifyClientCert", WEBCONFIG_CLIENT_AUTH_REQUIRE_VERIFY },
	/* The toolkit's old spelling of RequireAnyClientCert, kept for compatibility. */
	{ "RequireClientCert", WEBCONFIG_CLIENT_AUTH_REQUIRE_ANY },
};

static const struct {
	const char *name;
	enum webconfig_tls_version value;
} tls_versions[] = {
	{ "TLS10", WEBCONFIG_TLS10 },
	{ "TLS11", WEBCONFIG_TLS11 },
	{ "TLS12", WEBCONFIG_TLS12 },
	{ "TLS13", WEBCONFIG_TLS13 },
};

/* cert, key, client_ca and their *_file forms: kept raw until the whole file is read. */
static int tls_string(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	const char *name = (const char *)key->data.scalar.value;
	struct {
		const char *name;
		char **dst;
		yaml_node_t **node;
	} fields[] = {
		{ "cert_file", &p->cert_file, &p->cert_node },
		{ "key_file", &p->key_file, &p->key_node },
		{ "client_ca_file", &p->client_ca_file, &p->client_ca_node },
		{ "cert", &p->cert_inline, &p->cert_node },
		{ "key", &p->key_inline, &p->key_node },
		{ "client_ca", &p->client_ca_inline, &p->client_ca_node },
	};

	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		int r;

		if (strcmp(name, fields[i].name) != 0)
			continue;
		r = wc_dup_string(p, value, path, fields[i].dst);
		if (r < 0)
			return r;
		/* The *_file key, which wins, names the line in later messages. */
		if (!*fields[i].node || strstr(name, "_file"))
			*fields[i].node = value;
		if (**fields[i].dst)
			p->tls_named = true;
		return 0;
	}
	return wc_fail_at(p, key, path, "unknown key");
}

static int tls_client_auth(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
			   const char *path)
{
	const char *s;
	int r = wc_get_string(p, value, path, &s);

	if (r < 0)
		return r;
	p->client_auth_node = value;
	if (!*s)
		return 0;
	p->tls_named = true;
	for (size_t i = 0; i < ELEMENTSOF(client_auth_names); i++)
		if (strcmp(s, client_auth_names[i].name) == 0) {
			p->c->client_auth = client_auth_names[i].value;
			return 0;
		}
	return wc_fail_at(p, value, path,
			  "unknown value \"%s\" (expected NoClientCert, RequestClientCert, "
			  "RequireAnyClientCert, VerifyClientCertIfGiven or "
			  "RequireAndVerifyClientCert)",
			  s);
}

static int tls_version(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	bool is_min = strcmp((const char *)key->data.scalar.value, "min_version") == 0;
	const char *s;
	int r = wc_get_string(p, value, path, &s);

	if (r < 0)
		return r;
	if (!is_min)
		p->max_version_node = value;
	for (size_t i = 0; i < ELEMENTSOF(tls_versions); i++)
		if (strcmp(s, tls_versions[i].name) == 0) {
			if (is_min)
				p->c->min_version = tls_versions[i].value;
			else
				p->c->max_version = tls_versions[i].value;
			return 0;
		}
	return wc_fail_at(p, value, path,
			  "unknown TLS version \"%s\" (expected TLS10, TLS11, TLS12 or TLS13)", s);
}

/* Fails on the first name known() does not accept: 'unknown WHAT "NAME" (HINT)' at its index. */
static int check_names(struct parse_ctx *p, yaml_node_t *value, const char *path,
		       char *const *names, size_t n, bool (*known)(const char *), const char *what,
		       const char *hint)
{
	for (size_t i = 0; i < n; i++) {
		char k[KEY_PATH_MAX];

		if (known(names[i]))
			continue;
		snprintf(k, sizeof(k), "%s[%zu]", path, i);
		return wc_fail_at(p, value, k, "unknown %s \"%s\" (%s)", what, names[i], hint);
	}
	return 0;
}

static int tls_cipher_suites(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
			     const char *path)
{
	int r = wc_get_string_list(p, value, path, &p->cipher_suites, &p->n_cipher_suites);

	if (r < 0)
		return r;
	p->cipher_node = value;
	return check_names(p, value, path, p->cipher_suites, p->n_cipher_suites,
			   webconfig_tls_suite_known, "cipher suite",
			   "the names are Go's, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256; "
			   "insecure suites are not accepted");
}

static int tls_curves(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	int r = wc_get_string_list(p, value, path, &p->curves, &p->n_curves);

	if (r < 0)
		return r;
	p->curve_node = value;
	return check_names(p, value, path, p->curves, p->n_curves, webconfig_tls_curve_known,
			   "curve", "expected CurveP256, CurveP384, CurveP521 or X25519");
}

static int tls_prefer_server(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
			     const char *path)
{
	return wc_get_bool(p, value, path, &p->prefer_server_cipher_suites);
}

static int tls_allowed_sans(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
			    const char *path)
{
	struct webconfig *c = p->c;
	int r = wc_get_string_list(p, value, path, &c->client_allowed_sans,
				   &c->n_client_allowed_sans);

	if (r < 0)
		return r;
	/*
	 * "client_allowed_sans: []" (or an empty value) makes Go check SANs against an
	 * empty list, which no certificate passes. Keep that: allocate an empty list.
	 */
	if (!c->client_allowed_sans) {
		c->client_allowed_sans = calloc(1, sizeof(char *));
		if (!c->client_allowed_sans)
			return wc_fail_oom(p);
	}
	return 0;
}

static const struct key_rule tls_rules[] = {
	{ "cert", tls_string },
	{ "key", tls_string },
	{ "client_ca", tls_string },
	{ "cert_file", tls_string },
	{ "key_file", tls_string },
	{ "client_ca_file", tls_string },
	{ "client_auth_type", tls_client_auth },
	{ "cipher_suites", tls_cipher_suites },
	{ "curve_preferences", tls_curves },
	{ "min_version", tls_version },
	{ "max_version", tls_version },
	{ "prefer_server_cipher_suites", tls_prefer_server },
	{ "client_allowed_sans", tls_allowed_sans },
};

int wc_section_tls(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	return wc_walk_mapping(p, value, path, tls_rules, ELEMENTSOF(tls_rules));
}

/* The certificate, the key, that they match, and the client CAs: each named by its key. */
static int check_tls_material(struct parse_ctx *p)
{
	struct webconfig *c = p->c;
	bool cert_file = p->cert_file && *p->cert_file, key_file = p->key_file && *p->key_file;
	char why[256];
	int r;

	r = webconfig_tls_check_pair(c->cert_pem, c->key_pem, why, sizeof(why));
	if (r == -ENOMEM)
		return wc_fail_oom(p);
	if (r == WEBCONFIG_TLS_PAIR_BAD_CERT)
		return wc_fail_at(p, p->cert_node,
				  cert_file ? "tls_server_config.cert_file"
					    : "tls_server_config.cert",
				  "%s", why);
	if (r == WEBCONFIG_TLS_PAIR_BAD_KEY || r == WEBCONFIG_TLS_PAIR_KEY_MISMATCH)
		return wc_fail_at(p, p->key_node,
				  key_file ? "tls_server_config.key_file" : "tls_server_config.key",
				  "%s%s", why,
				  r == WEBCONFIG_TLS_PAIR_BAD_KEY ? ""
				  : cert_file                     ? " in cert_file"
								  : " in cert");
	if (c->client_ca_pem && webconfig_tls_check_certs(c->client_ca_pem, why, sizeof(why)) < 0)
		return wc_fail_at(p, p->client_ca_node,
				  p->client_ca_file && *p->client_ca_file
					  ? "tls_server_config.client_ca_file"
					  : "tls_server_config.client_ca",
				  "%s", why);
	return 0;
}

static int build_priorities(struct parse_ctx *p)
{
	struct webconfig_tls_params params = {
		.cipher_suites = p->cipher_suites,
		.n_cipher_suites = p->n_cipher_suites,
		.curves = p->curves,
		.n_curves = p->n_curves,
		.min_version = p->c->min_version,
		.max_version = p->c->max_version,
		.prefer_server_cipher_suites = p->prefer_server_cipher_suites,
	};
	char why[512];
	int r;

	r = webconfig_tls_priorities(&params, &p->c->priorities, why, sizeof(why));
	if (r == -ENOMEM)
		return wc_fail_oom(p);
	if (r < 0)
		return wc_fail_at(p, p->cipher_node,
				  p->cipher_node ? "tls_server_config.cipher_suites"
						 : "tls_server_config",
				  "%s", why);
	return 0;
}

/* As in the toolkit, a *_file (relative to the config's directory) wins over the inline value. */
static int resolve_pem(struct parse_ctx *p, const char *file, char **inline_value,
		       const yaml_node_t *node, const char *file_key, char **ret)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (!file || !*file) {
		*ret = TAKE_PTR(*inline_value);
		return 0;
	}
	path = join_dir(p->base_dir, file);
	if (!path)
		return wc_fail_oom(p);
	r = load_pem(p, node, file_key, path, ret);
	/* Watched for changes (a rotated certificate) next to the config itself. */
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(p->c->tls_files); i++)
		if (!p->c->tls_files[i]) {
			p->c->tls_files[i] = TAKE_PTR(path);
			break;
		}
	return r;
}

/* After the whole file: apply the toolkit's TLS rules and read the PEM material. */
int wc_finish_tls(struct parse_ctx *p)
{
	struct webconfig *c = p->c;
	bool has_cert = (p->cert_file && *p->cert_file) || (p->cert_inline && *p->cert_inline);
	bool has_key = (p->key_file && *p->key_file) || (p->key_inline && *p->key_inline);
	bool has_ca = (p->client_ca_file && *p->client_ca_file) ||
		      (p->client_ca_inline && *p->client_ca_inline);
	int r;

	if (!p->tls_named) {
		/* The toolkit serves plain HTTP then, and ignores the other TLS keys. */
		c->tls = false;
		c->client_auth = WEBCONFIG_CLIENT_AUTH_NONE;
		return 0;
	}
	c->tls = true;
	if (!has_cert)
		return wc_fail_at(p, p->cert_node, "tls_server_config",
				  "missing one of cert or cert_file");
	if (!has_key)
		return wc_fail_at(p, p->key_node, "tls_server_config",
				  "missing one of key or key_file");
	if (c->min_version > c->max_version)
		return wc_fail_at(p, p->max_version_node, "tls_server_config.max_version",
				  "%s is below min_version %s",
				  webconfig_tls_version_to_string(c->max_version),
				  webconfig_tls_version_to_string(c->min_version));
	if (has_ca && c->client_auth == WEBCONFIG_CLIENT_AUTH_NONE)
		return wc_fail_at(p, p->client_ca_node, "tls_server_config.client_auth_type",
				  "a client CA is configured but client_auth_type is NoClientCert; "
				  "set one of RequestClientCert, RequireAnyClientCert, "
				  "VerifyClientCertIfGiven or RequireAndVerifyClientCert");
	if (!has_ca && (c->client_auth == WEBCONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN ||
			c->client_auth == WEBCONFIG_CLIENT_AUTH_REQUIRE_VERIFY))
		return wc_fail_at(p, p->client_auth_node, "tls_server_config.client_ca_file",
				  "%s needs the CA to verify client certificates against "
				  "(client_ca_file or client_ca)",
				  webconfig_client_auth_to_string(c->client_auth));
	if (c->client_allowed_sans && c->client_auth == WEBCONFIG_CLIENT_AUTH_NONE)
		return wc_fail_at(p, NULL, "tls_server_config.client_allowed_sans",
				  "needs a client_auth_type that asks for client certificates");

	r = resolve_pem(p, p->cert_file, &p->cert_inline, p->cert_node,
			"tls_server_config.cert_file", &c->cert_pem);
	if (r >= 0)
		r = resolve_pem(p, p->key_file, &p->key_inline, p->key_node,
				"tls_server_config.key_file", &c->key_pem);
	if (r >= 0 && has_ca)
		r = resolve_pem(p, p->client_ca_file, &p->client_ca_inline, p->client_ca_node,
				"tls_server_config.client_ca_file", &c->client_ca_pem);
	if (r < 0)
		return r;

	r = check_tls_material(p);
	if (r < 0)
		return r;
	return build_priorities(p);
}

const char *webconfig_client_auth_to_string(enum webconfig_client_auth a)
{
	for (size_t i = 0; i < ELEMENTSOF(client_auth_names); i++)
		if (client_auth_names[i].value == a)
			return client_auth_names[i].name;
	return "unknown";
}

const char *webconfig_tls_version_to_string(enum webconfig_tls_version v)
{
	for (size_t i = 0; i < ELEMENTSOF(tls_versions); i++)
		if (tls_versions[i].value == v)
			return tls_versions[i].name;
	return "unknown";
}
