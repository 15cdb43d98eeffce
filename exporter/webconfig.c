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

#include "cli.h"
#include "macro.h"
#include "webconfig.h"
#include "webconfig_tls.h"

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

_printf_(4, 5) static int fail_at(struct parse_ctx *p, const yaml_node_t *node, const char *key,
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

static int fail_oom(struct parse_ctx *p)
{
	if (p->err && p->errlen > 0)
		snprintf(p->err, p->errlen, "web config %s: out of memory", p->name);
	return -ENOMEM;
}

/* ---- YAML access ------------------------------------------------------------------------ */

static const char *node_kind(const yaml_node_t *n)
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

static bool is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
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
static int get_string(struct parse_ctx *p, const yaml_node_t *n, const char *key, const char **ret)
{
	if (is_null(n)) {
		*ret = "";
		return 0;
	}
	if (n->type != YAML_SCALAR_NODE)
		return fail_at(p, n, key, "expected a single value, got %s", node_kind(n));
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return fail_at(p, n, key, "contains a NUL character");
	*ret = (const char *)n->data.scalar.value;
	return 0;
}

static int dup_string(struct parse_ctx *p, const yaml_node_t *n, const char *key, char **ret)
{
	const char *s;
	char *copy;
	int r = get_string(p, n, key, &s);

	if (r < 0)
		return r;
	copy = strdup(s);
	if (!copy)
		return fail_oom(p);
	free(*ret);
	*ret = copy;
	return 0;
}

/* YAML 1.1 booleans, as go-yaml v2 resolves them; quoted text is a string, not a bool. */
static int get_bool(struct parse_ctx *p, const yaml_node_t *n, const char *key, bool *ret)
{
	static const char *const yes[] = {"y",    "Y",    "yes", "Yes", "YES", "true",
	                                  "True", "TRUE", "on",  "On",  "ON"};
	static const char *const no[] = {"n",     "N",     "no",  "No",  "NO", "false",
	                                 "False", "FALSE", "off", "Off", "OFF"};
	const char *v;

	if (is_null(n)) {
		*ret = false;
		return 0;
	}
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return fail_at(p, n, key, "expected true or false");
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
	return fail_at(p, n, key, "expected true or false, got \"%s\"", v);
}

/* A list of strings (null is empty). */
static int get_string_list(struct parse_ctx *p, const yaml_node_t *n, const char *key, char ***ret,
                           size_t *ret_n)
{
	size_t count;
	char **v;

	if (is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE)
		return fail_at(p, n, key, "expected a list, got %s", node_kind(n));
	count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	v = calloc(count + 1, sizeof(*v));
	if (!v)
		return fail_oom(p);
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *item = yaml_document_get_node(p->doc, n->data.sequence.items.start[i]);
		char k[KEY_PATH_MAX];
		int r;

		snprintf(k, sizeof(k), "%s[%zu]", key, i);
		r = item ? dup_string(p, item, k, &v[i]) : fail_at(p, n, k, "missing");
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

typedef int (*key_handler)(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
                           const char *path);

struct key_rule {
	const char *name;
	key_handler handle;
};

/*
 * Walks a mapping: every key must be a known, unrepeated name; a null value
 * counts as absent. path is the mapping's own key path ("" at the top).
 */
static int walk_mapping(struct parse_ctx *p, yaml_node_t *map, const char *path,
                        const struct key_rule *rules, size_t n_rules)
{
	bool seen[16] = {false};

	if (is_null(map))
		return 0;
	if (map->type != YAML_MAPPING_NODE)
		return fail_at(p, map, *path ? path : NULL, "expected a mapping, got %s",
		               node_kind(map));
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
		char full[KEY_PATH_MAX];
		const char *name;
		size_t i;
		int r;

		if (!k || !v || k->type != YAML_SCALAR_NODE)
			return fail_at(p, k ? k : map, *path ? path : NULL,
			               "keys must be plain names");
		name = (const char *)k->data.scalar.value;
		snprintf(full, sizeof(full), "%s%s%s", path, *path ? "." : "", name);
		for (i = 0; i < n_rules && i < ELEMENTSOF(seen); i++)
			if (strcmp(rules[i].name, name) == 0)
				break;
		if (i == n_rules || i >= ELEMENTSOF(seen))
			return fail_at(p, k, full, "unknown key");
		if (seen[i])
			return fail_at(p, k, full, "key given more than once");
		seen[i] = true;
		if (is_null(v))
			continue; /* as go-yaml: a null value leaves the default */
		r = rules[i].handle(p, k, v, full);
		if (r < 0)
			return r;
	}
	return 0;
}

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

/* Reads a whole regular file (at most max bytes) into a NUL-terminated buffer. */
static int read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = len;
	return 0;
}

static const char *file_error(int r)
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

	r = read_file(path, WEBCONFIG_MAX_FILE_SIZE, &data, NULL);
	if (r == -ENOMEM)
		return fail_oom(p);
	if (r < 0)
		return fail_at(p, node, key, "cannot read \"%s\": %s", path, file_error(r));
	*ret = data;
	return 0;
}

/* ---- tls_server_config --------------------------------------------------------------------- */

static const struct {
	const char *name;
	enum webconfig_client_auth value;
} client_auth_names[] = {
        {"NoClientCert", WEBCONFIG_CLIENT_AUTH_NONE},
        {"RequestClientCert", WEBCONFIG_CLIENT_AUTH_REQUEST},
        {"RequireAnyClientCert", WEBCONFIG_CLIENT_AUTH_REQUIRE_ANY},
        {"VerifyClientCertIfGiven", WEBCONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN},
        {"RequireAndVerifyClientCert", WEBCONFIG_CLIENT_AUTH_REQUIRE_VERIFY},
        /* The toolkit's old spelling of RequireAnyClientCert, kept for compatibility. */
        {"RequireClientCert", WEBCONFIG_CLIENT_AUTH_REQUIRE_ANY},
};

static const struct {
	const char *name;
	enum webconfig_tls_version value;
} tls_versions[] = {
        {"TLS10", WEBCONFIG_TLS10},
        {"TLS11", WEBCONFIG_TLS11},
        {"TLS12", WEBCONFIG_TLS12},
        {"TLS13", WEBCONFIG_TLS13},
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
	        {"cert_file", &p->cert_file, &p->cert_node},
	        {"key_file", &p->key_file, &p->key_node},
	        {"client_ca_file", &p->client_ca_file, &p->client_ca_node},
	        {"cert", &p->cert_inline, &p->cert_node},
	        {"key", &p->key_inline, &p->key_node},
	        {"client_ca", &p->client_ca_inline, &p->client_ca_node},
	};

	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		int r;

		if (strcmp(name, fields[i].name) != 0)
			continue;
		r = dup_string(p, value, path, fields[i].dst);
		if (r < 0)
			return r;
		/* The *_file key, which wins, names the line in later messages. */
		if (!*fields[i].node || strstr(name, "_file"))
			*fields[i].node = value;
		if (**fields[i].dst)
			p->tls_named = true;
		return 0;
	}
	return fail_at(p, key, path, "unknown key");
}

static int tls_client_auth(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
                           const char *path)
{
	const char *s;
	int r = get_string(p, value, path, &s);

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
	return fail_at(p, value, path,
	               "unknown value \"%s\" (expected NoClientCert, RequestClientCert, "
	               "RequireAnyClientCert, VerifyClientCertIfGiven or "
	               "RequireAndVerifyClientCert)",
	               s);
}

static int tls_version(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	bool is_min = strcmp((const char *)key->data.scalar.value, "min_version") == 0;
	const char *s;
	int r = get_string(p, value, path, &s);

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
	return fail_at(p, value, path,
	               "unknown TLS version \"%s\" (expected TLS10, TLS11, TLS12 or TLS13)", s);
}

/* Fails on the first name known() does not accept: 'unknown WHAT "NAME" (HINT)' at its index. */
static int check_names(struct parse_ctx *p, yaml_node_t *value, const char *path,
                       char *const *names, size_t n, bool (*known)(const char *),
                       const char *what, const char *hint)
{
	for (size_t i = 0; i < n; i++) {
		char k[KEY_PATH_MAX];

		if (known(names[i]))
			continue;
		snprintf(k, sizeof(k), "%s[%zu]", path, i);
		return fail_at(p, value, k, "unknown %s \"%s\" (%s)", what, names[i], hint);
	}
	return 0;
}

static int tls_cipher_suites(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
                             const char *path)
{
	int r = get_string_list(p, value, path, &p->cipher_suites, &p->n_cipher_suites);

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
	int r = get_string_list(p, value, path, &p->curves, &p->n_curves);

	if (r < 0)
		return r;
	p->curve_node = value;
	return check_names(p, value, path, p->curves, p->n_curves, webconfig_tls_curve_known,
	                   "curve", "expected CurveP256, CurveP384, CurveP521 or X25519");
}

static int tls_prefer_server(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
                             const char *path)
{
	return get_bool(p, value, path, &p->prefer_server_cipher_suites);
}

static int tls_allowed_sans(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value,
                            const char *path)
{
	struct webconfig *c = p->c;
	int r = get_string_list(p, value, path, &c->client_allowed_sans, &c->n_client_allowed_sans);

	if (r < 0)
		return r;
	/*
	 * "client_allowed_sans: []" (or an empty value) makes Go check SANs against an
	 * empty list, which no certificate passes. Keep that: allocate an empty list.
	 */
	if (!c->client_allowed_sans) {
		c->client_allowed_sans = calloc(1, sizeof(char *));
		if (!c->client_allowed_sans)
			return fail_oom(p);
	}
	return 0;
}

static const struct key_rule tls_rules[] = {
        {"cert", tls_string},
        {"key", tls_string},
        {"client_ca", tls_string},
        {"cert_file", tls_string},
        {"key_file", tls_string},
        {"client_ca_file", tls_string},
        {"client_auth_type", tls_client_auth},
        {"cipher_suites", tls_cipher_suites},
        {"curve_preferences", tls_curves},
        {"min_version", tls_version},
        {"max_version", tls_version},
        {"prefer_server_cipher_suites", tls_prefer_server},
        {"client_allowed_sans", tls_allowed_sans},
};

static int section_tls(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	return walk_mapping(p, value, path, tls_rules, ELEMENTSOF(tls_rules));
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
		return fail_oom(p);
	if (r == WEBCONFIG_TLS_PAIR_BAD_CERT)
		return fail_at(p, p->cert_node,
		               cert_file ? "tls_server_config.cert_file" : "tls_server_config.cert",
		               "%s", why);
	if (r == WEBCONFIG_TLS_PAIR_BAD_KEY || r == WEBCONFIG_TLS_PAIR_KEY_MISMATCH)
		return fail_at(p, p->key_node,
		               key_file ? "tls_server_config.key_file" : "tls_server_config.key",
		               "%s%s", why,
		               r == WEBCONFIG_TLS_PAIR_BAD_KEY ? ""
		               : cert_file                     ? " in cert_file"
		                                               : " in cert");
	if (c->client_ca_pem && webconfig_tls_check_certs(c->client_ca_pem, why, sizeof(why)) < 0)
		return fail_at(p, p->client_ca_node,
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
		return fail_oom(p);
	if (r < 0)
		return fail_at(p, p->cipher_node,
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

	if (!file || !*file) {
		*ret = TAKE_PTR(*inline_value);
		return 0;
	}
	path = join_dir(p->base_dir, file);
	if (!path)
		return fail_oom(p);
	return load_pem(p, node, file_key, path, ret);
}

/* After the whole file: apply the toolkit's TLS rules and read the PEM material. */
static int finish_tls(struct parse_ctx *p)
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
		return fail_at(p, p->cert_node, "tls_server_config",
		               "missing one of cert or cert_file");
	if (!has_key)
		return fail_at(p, p->key_node, "tls_server_config",
		               "missing one of key or key_file");
	if (c->min_version > c->max_version)
		return fail_at(p, p->max_version_node, "tls_server_config.max_version",
		               "%s is below min_version %s",
		               webconfig_tls_version_to_string(c->max_version),
		               webconfig_tls_version_to_string(c->min_version));
	if (has_ca && c->client_auth == WEBCONFIG_CLIENT_AUTH_NONE)
		return fail_at(p, p->client_ca_node, "tls_server_config.client_auth_type",
		               "a client CA is configured but client_auth_type is NoClientCert; "
		               "set one of RequestClientCert, RequireAnyClientCert, "
		               "VerifyClientCertIfGiven or RequireAndVerifyClientCert");
	if (!has_ca && (c->client_auth == WEBCONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN ||
	                c->client_auth == WEBCONFIG_CLIENT_AUTH_REQUIRE_VERIFY))
		return fail_at(p, p->client_auth_node, "tls_server_config.client_ca_file",
		               "%s needs the CA to verify client certificates against "
		               "(client_ca_file or client_ca)",
		               webconfig_client_auth_to_string(c->client_auth));
	if (c->client_allowed_sans && c->client_auth == WEBCONFIG_CLIENT_AUTH_NONE)
		return fail_at(p, NULL, "tls_server_config.client_allowed_sans",
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
        {"Strict-Transport-Security", {NULL}},
        {"X-Content-Type-Options", {"nosniff", NULL}},
        {"X-Frame-Options", {"deny", "sameorigin", NULL}},
        {"X-XSS-Protection", {NULL}},
        {"Content-Security-Policy", {NULL}},
};

/*
 * A mapping node whose pairs become an array: checks the node kind (saying
 * `what` was expected) and allocates one zeroed element per pair.
 */
static int mapping_array(struct parse_ctx *p, yaml_node_t *value, const char *path,
                         const char *what, size_t elem_size, void **ret)
{
	size_t count;

	if (value->type != YAML_MAPPING_NODE)
		return fail_at(p, value, path, "expected %s, got %s", what, node_kind(value));
	count = (size_t)(value->data.mapping.pairs.top - value->data.mapping.pairs.start);
	*ret = calloc(count ? count : 1, elem_size);
	return *ret ? 0 : fail_oom(p);
}

static int http_headers(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	struct webconfig *c = p->c;
	int r;

	r = mapping_array(p, value, path, "a mapping of header names to values",
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
			return fail_at(p, value, path, "header names must be plain names");
		name = (const char *)k->data.scalar.value;
		snprintf(full, sizeof(full), "%s.%s", path, name);
		r = get_string(p, v, full, &val);
		if (r < 0)
			return r;
		if (strcasecmp(name, "Content-Type") == 0 ||
		    strcasecmp(name, "Content-Encoding") == 0 ||
		    strcasecmp(name, "Content-Length") == 0)
			return fail_at(p, k, full,
			               "this header describes the response body and is set by the "
			               "exporter; it cannot be configured");
		for (i = 0; i < ELEMENTSOF(allowed_headers); i++)
			if (strcasecmp(name, allowed_headers[i].name) == 0)
				break;
		if (i == ELEMENTSOF(allowed_headers))
			return fail_at(p, k, full,
			               "this header cannot be configured (allowed, as in the "
			               "exporter-toolkit: Strict-Transport-Security, "
			               "X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, "
			               "Content-Security-Policy)");
		for (size_t j = 0; j < c->n_headers; j++)
			if (strcmp(c->headers[j].name, allowed_headers[i].name) == 0)
				return fail_at(p, k, full, "header given more than once");
		for (const char *s = val; *s; s++)
			if ((unsigned char)*s < 0x20 || *s == 0x7f)
				return fail_at(p, v, full, "control characters are not allowed");
		if (allowed_headers[i].values[0]) {
			bool ok = false;

			for (size_t j = 0; allowed_headers[i].values[j] && !ok; j++)
				ok = strcasecmp(val, allowed_headers[i].values[j]) == 0;
			if (!ok)
				return fail_at(p, v, full, "invalid value \"%s\" (expected %s%s%s)",
				               val, allowed_headers[i].values[0],
				               allowed_headers[i].values[1] ? " or " : "",
				               allowed_headers[i].values[1]
				                       ? allowed_headers[i].values[1]
				                       : "");
		}
		c->headers[c->n_headers].name = strdup(allowed_headers[i].name);
		c->headers[c->n_headers].value = strdup(val);
		c->n_headers++;
		if (!c->headers[c->n_headers - 1].name || !c->headers[c->n_headers - 1].value)
			return fail_oom(p);
	}
	return 0;
}

static int http_http2(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	return get_bool(p, value, path, &p->c->http2_requested);
}

static const struct key_rule http_rules[] = {
        {"http2", http_http2},
        {"headers", http_headers},
};

static int section_http(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	return walk_mapping(p, value, path, http_rules, ELEMENTSOF(http_rules));
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

	r = mapping_array(p, value, path, "a mapping of user names to bcrypt hashes",
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
			return fail_at(p, value, path, "user names must be plain names");
		name = (const char *)k->data.scalar.value;
		snprintf(full, sizeof(full), "%s.%s", path, name);
		if (strlen(name) != k->data.scalar.length || !*name || strchr(name, ':'))
			return fail_at(
			        p, k, full,
			        "a user name must be non-empty, without ':' or NUL characters");
		for (size_t j = 0; j < c->n_users; j++)
			if (strcmp(c->users[j].name, name) == 0)
				return fail_at(p, k, full, "user given more than once");
		r = get_string(p, v, full, &hash);
		if (r < 0)
			return r;
		if (!bcrypt_hash_valid(hash))
			return fail_at(
			        p, v, full,
			        "not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost from "
			        "04 to 31 and 53 characters, e.g. from htpasswd -nBC 10)");
		c->users[c->n_users].name = strdup(name);
		c->users[c->n_users].hash = strdup(hash);
		c->n_users++;
		if (!c->users[c->n_users - 1].name || !c->users[c->n_users - 1].hash)
			return fail_oom(p);
	}
	qsort(c->users, c->n_users, sizeof(*c->users), user_compare);
	return 0;
}

/* ---- rate_limit ---------------------------------------------------------------------------- */

static int rate_burst(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	const char *s;
	unsigned long v = 0;
	int r = get_string(p, value, path, &s);

	if (r < 0)
		return r;
	if (value->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || !*s)
		return fail_at(p, value, path, "expected a whole number");
	if (*s == '+')
		s++;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return fail_at(p, value, path, "expected a whole number from 0 to 1000000");
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > 1000000)
			return fail_at(p, value, path, "expected a whole number from 0 to 1000000");
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
	int r = get_string(p, value, path, &s);

	if (r < 0)
		return r;
	for (const char *q = s; *q; q++)
		digits = digits && *q >= '0' && *q <= '9';
	if (digits && *s && value->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		uint64_t ns = 0;

		for (const char *q = s; *q; q++) {
			if (ns > (UINT64_MAX - 9) / 10)
				return fail_at(p, value, path, "out of range");
			ns = ns * 10 + (uint64_t)(*q - '0');
		}
		p->c->rate_limit_interval_usec = ns / 1000;
		if (ns > 0 && ns < 1000)
			p->c->rate_limit_interval_usec = 1;
		return 0;
	}
	r = parse_duration_usec(s, &usec);
	if (r < 0)
		return fail_at(p, value, path,
		               "expected a duration such as 100ms, 1s or 1m (not negative)");
	p->c->rate_limit_interval_usec = usec;
	return 0;
}

static const struct key_rule rate_rules[] = {
        {"burst", rate_burst},
        {"interval", rate_interval},
};

static int section_rate(struct parse_ctx *p, yaml_node_t *key, yaml_node_t *value, const char *path)
{
	return walk_mapping(p, value, path, rate_rules, ELEMENTSOF(rate_rules));
}

static const struct key_rule root_rules[] = {
        {"tls_server_config", section_tls},
        {"http_server_config", section_http},
        {"basic_auth_users", section_users},
        {"rate_limit", section_rate},
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
	struct parse_ctx p = {.name = name,
	                      .base_dir = base_dir,
	                      .err = err,
	                      .errlen = errlen,
	                      .prefer_server_cipher_suites = true};
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	int r;

	p.c = calloc(1, sizeof(*p.c));
	if (!p.c)
		return fail_oom(&p);
	/* The toolkit's defaults. */
	p.c->min_version = WEBCONFIG_TLS12;
	p.c->max_version = WEBCONFIG_TLS13;

	if (!yaml_parser_initialize(&parser)) {
		webconfig_free(p.c);
		return fail_oom(&p);
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		if (parser.error == YAML_MEMORY_ERROR)
			r = fail_oom(&p);
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
	if (root && !is_null(root) && root->type != YAML_MAPPING_NODE)
		r = fail_at(&p, root, NULL, "expected a mapping of settings at the top, got %s",
		            node_kind(root));
	else
		r = root ? walk_mapping(&p, root, "", root_rules, ELEMENTSOF(root_rules)) : 0;
	if (r >= 0)
		r = finish_tls(&p);
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

	r = read_file(path, WEBCONFIG_MAX_FILE_SIZE, &text, &len);
	if (r < 0) {
		if (err && errlen > 0)
			snprintf(err, errlen, "web config %s: cannot read it: %s", path,
			         file_error(r));
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
	struct webconfig_user key = {.name = (char *)(uintptr_t)name};

	if (!c || c->n_users == 0)
		return NULL;
	return bsearch(&key, c->users, c->n_users, sizeof(*c->users), user_compare);
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
