/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the web config (web/webconfig.c, yaml_walk.c, section_tls.c):
 * valid files, every class of error with the key and line it names, relative
 * paths. Certificates are made at run time with GnuTLS, so nothing expires.
 * Basic auth has its own tests (test_basicauth.c).
 */
#include <crypt.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "web/webconfig.h"

static char tmpdir[] = "/tmp/test_webconfig.XXXXXX";
static char *ca_pem, *ca_key_pem, *other_key_pem;

/* ---- fixtures ---------------------------------------------------------------------------- */

static char *datum_to_string(gnutls_datum_t *d)
{
	char *s = malloc(d->size + 1);

	assert_non_null(s);
	memcpy(s, d->data, d->size);
	s[d->size] = '\0';
	gnutls_free(d->data);
	return s;
}

/* A self-signed P-256 CA certificate and its key, as PEM. */
static void make_cert(const char *cn, char **ret_cert, char **ret_key)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t d;
	time_t now = time(NULL);

	assert_int_equal(gnutls_x509_privkey_init(&key), 0);
	assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
						      GNUTLS_CURVE_TO_BITS(
							      GNUTLS_ECC_CURVE_SECP256R1),
						      0),
			 0);
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(crt, "\x01", 1), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 60), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 3600), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						       (unsigned)strlen(cn)),
			 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
	assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, 1, -1), 0);
	assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
	*ret_cert = datum_to_string(&d);
	assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d), 0);
	*ret_key = datum_to_string(&d);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	char *other_cert, sub[512];

	if (!mkdtemp(tmpdir))
		return -1;
	make_cert("kvmstats test CA", &ca_pem, &ca_key_pem);
	make_cert("other", &other_cert, &other_key_pem);
	free(other_cert);
	write_file(tmpdir, "server.crt", ca_pem);
	write_file(tmpdir, "server.key", ca_key_pem);
	write_file(tmpdir, "ca.crt", ca_pem);
	write_file(tmpdir, "other.key", other_key_pem);
	write_file(tmpdir, "garbage.pem", "not a certificate\n");
	snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file(sub, "server.crt", ca_pem);
	write_file(sub, "server.key", ca_key_pem);
	return 0;
}

static int teardown(void **state)
{
	static const char *const files[] = { "server.crt",     "server.key",  "ca.crt",
					     "other.key",      "garbage.pem", "sub/server.crt",
					     "sub/server.key", "sub/web.yml", "web.yml" };
	char path[512];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/sub", tmpdir);
	rmdir(path);
	rmdir(tmpdir);
	free(ca_pem);
	free(ca_key_pem);
	free(other_key_pem);
	return 0;
}

static struct webconfig *parse_ok(const char *yaml)
{
	struct webconfig *c = NULL;
	char err[512] = "";
	int r = webconfig_parse(yaml, strlen(yaml), "web.yml", tmpdir, &c, err, sizeof(err));

	if (r < 0)
		fail_msg("webconfig_parse failed: %d %s\n--- file:\n%s", r, err, yaml);
	assert_non_null(c);
	return c;
}

/* ---- valid files ---------------------------------------------------------------------- */

static void test_empty(void **state)
{
	static const char *const files[] = { "",
					     "\n",
					     "# only a comment\n",
					     "---\n",
					     "~\n",
					     "tls_server_config:\n",
					     "basic_auth_users: ~\n" };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct webconfig *c = parse_ok(files[i]);

		assert_false(c->tls);
		assert_int_equal(c->n_users, 0);
		assert_int_equal(c->n_headers, 0);
		assert_int_equal(c->rate_limit_interval_usec, 0);
		webconfig_free(c);
	}
	assert_null(webconfig_free(NULL));
}

static void test_minimal_tls(void **state)
{
	struct webconfig *c = parse_ok("tls_server_config:\n"
				       "  cert_file: server.crt\n"
				       "  key_file: server.key\n");

	assert_true(c->tls);
	assert_string_equal(c->cert_pem, ca_pem);
	assert_string_equal(c->key_pem, ca_key_pem);
	assert_null(c->client_ca_pem);
	assert_int_equal(c->client_auth, WEBCONFIG_CLIENT_AUTH_NONE);
	/* The toolkit's defaults: TLS 1.2 to 1.3, the server's preference. */
	assert_int_equal(c->min_version, WEBCONFIG_TLS12);
	assert_int_equal(c->max_version, WEBCONFIG_TLS13);
	assert_non_null(strstr(c->priorities, "%SERVER_PRECEDENCE"));
	assert_non_null(strstr(c->priorities, "+VERS-TLS1.3"));
	assert_non_null(strstr(c->priorities, "+VERS-TLS1.2"));
	assert_null(strstr(c->priorities, "+VERS-TLS1.1"));
	assert_null(c->client_allowed_sans);
	assert_false(c->http2_requested);
	webconfig_free(c);
}

static void test_full(void **state)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	char salt[CRYPT_GENSALT_OUTPUT_SIZE], yaml[4096];
	const char *hash;
	struct webconfig *c;

	assert_non_null(cd);
	assert_non_null(crypt_gensalt_rn("$2b$", 4, NULL, 0, salt, sizeof(salt)));
	hash = crypt_r("secret", salt, cd);
	assert_non_null(hash);
	snprintf(yaml, sizeof(yaml),
		 "# every key the exporter-toolkit knows\n"
		 "tls_server_config:\n"
		 "  cert_file: \"server.crt\"\n"
		 "  key_file: server.key\n"
		 "  client_auth_type: RequireAndVerifyClientCert\n"
		 "  client_ca_file: %s/ca.crt\n"
		 "  min_version: TLS12\n"
		 "  max_version: TLS13\n"
		 "  prefer_server_cipher_suites: false\n"
		 "  cipher_suites:\n"
		 "  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n"
		 "  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n"
		 "  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n"
		 "  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n"
		 "  - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\n"
		 "  - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256\n"
		 "  - TLS_AES_128_GCM_SHA256\n"
		 "  - TLS_AES_256_GCM_SHA384\n"
		 "  - TLS_CHACHA20_POLY1305_SHA256\n"
		 "  - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA\n"
		 "  - TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA\n"
		 "  - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n"
		 "  - TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA\n"
		 "  curve_preferences: [X25519, CurveP256, CurveP384, CurveP521]\n"
		 "  client_allowed_sans: [\"scraper.example\", \"10.0.0.1\"]\n"
		 "http_server_config:\n"
		 "  http2: true\n"
		 "  headers:\n"
		 "    X-Frame-Options: deny\n"
		 "    Strict-Transport-Security: max-age=31536000; includeSubDomains\n"
		 "    X-Content-Type-Options: nosniff\n"
		 "    X-XSS-Protection: 1\n"
		 "    Content-Security-Policy: \"default-src 'self'\"\n"
		 "basic_auth_users:\n"
		 "  zoe: %s\n"
		 "  alice: '%s'\n"
		 "rate_limit:\n"
		 "  interval: 1s\n"
		 "  burst: 5\n",
		 tmpdir, hash, hash);
	c = parse_ok(yaml);

	assert_true(c->tls);
	assert_int_equal(c->client_auth, WEBCONFIG_CLIENT_AUTH_REQUIRE_VERIFY);
	assert_string_equal(c->client_ca_pem, ca_pem);
	assert_null(strstr(c->priorities, "%SERVER_PRECEDENCE"));
	assert_non_null(strstr(c->priorities, "-CIPHER-ALL"));
	assert_non_null(strstr(c->priorities, "+AES-128-GCM"));
	assert_non_null(strstr(c->priorities, "+CHACHA20-POLY1305"));
	assert_non_null(strstr(c->priorities, "+ECDHE-RSA"));
	assert_null(strstr(c->priorities, "+RSA:"));
	assert_non_null(strstr(c->priorities, "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1"));
	assert_int_equal(c->n_client_allowed_sans, 2);
	assert_string_equal(c->client_allowed_sans[1], "10.0.0.1");
	assert_true(c->http2_requested);
	assert_int_equal(c->n_headers, 5);
	assert_string_equal(c->headers[0].name, "X-Frame-Options");
	assert_string_equal(c->headers[0].value, "deny");
	assert_string_equal(c->headers[4].value, "default-src 'self'");
	/* Sorted by name, for lookups. */
	assert_int_equal(c->n_users, 2);
	assert_string_equal(c->users[0].name, "alice");
	assert_string_equal(c->users[1].name, "zoe");
	assert_string_equal(webconfig_find_user(c, "zoe")->hash, hash);
	assert_null(webconfig_find_user(c, "bob"));
	assert_int_equal(c->rate_limit_interval_usec, 1000000);
	assert_int_equal(c->rate_limit_burst, 5);
	webconfig_free(c);
	free(cd);
}

static void test_variants(void **state)
{
	struct webconfig *c;

	/* Inline PEM, the toolkit's "cert" and "key" (block scalars indented by four). */
	{
		size_t cap = strlen(ca_pem) * 2 + strlen(ca_key_pem) * 2 + 256;
		char *yaml = malloc(cap), *o = yaml;

		assert_non_null(yaml);
		o += sprintf(o, "tls_server_config:\n  cert: |\n");
		for (const char *p = ca_pem; *p; p++) {
			if (p == ca_pem || p[-1] == '\n')
				o += sprintf(o, "    ");
			*o++ = *p;
		}
		o += sprintf(o, "  key: |\n");
		for (const char *p = ca_key_pem; *p; p++) {
			if (p == ca_key_pem || p[-1] == '\n')
				o += sprintf(o, "    ");
			*o++ = *p;
		}
		*o = '\0';
		c = parse_ok(yaml);
		assert_true(c->tls);
		assert_string_equal(c->cert_pem, ca_pem);
		assert_string_equal(c->key_pem, ca_key_pem);
		webconfig_free(c);
		free(yaml);
	}

	/* Basic auth without TLS is allowed (the toolkit allows it; http.c warns). */
	c = parse_ok("basic_auth_users:\n"
		     "  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n");
	assert_false(c->tls);
	assert_int_equal(c->n_users, 1);
	webconfig_free(c);

	/* Client certificates without verification need no CA; RequireClientCert is the old name.
	 */
	c = parse_ok("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
		     "  client_auth_type: RequireClientCert\n");
	assert_int_equal(c->client_auth, WEBCONFIG_CLIENT_AUTH_REQUIRE_ANY);
	webconfig_free(c);

	/* TLS 1.3 only; TLS 1.0 to 1.2; a *_file wins over the inline value, as in the toolkit. */
	c = parse_ok("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
		     "  key: ignored\n  min_version: TLS13\n  curve_preferences:\n  - CurveP521\n");
	assert_int_equal(c->min_version, WEBCONFIG_TLS13);
	assert_null(strstr(c->priorities, "+VERS-TLS1.2"));
	assert_string_equal(c->key_pem, ca_key_pem);
	webconfig_free(c);
	c = parse_ok("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
		     "  min_version: TLS10\n  max_version: TLS12\n"
		     "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
		     " TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n");
	assert_non_null(strstr(c->priorities, "+VERS-TLS1.0"));
	assert_null(strstr(c->priorities, "+VERS-TLS1.3"));
	webconfig_free(c);

	/* rate_limit: a bare number is nanoseconds (go-yaml's time.Duration); 0 is off. */
	c = parse_ok("rate_limit:\n  interval: 2500000\n  burst: 0\n");
	assert_int_equal(c->rate_limit_interval_usec, 2500);
	webconfig_free(c);
	c = parse_ok("rate_limit:\n  interval: 0\n");
	assert_int_equal(c->rate_limit_interval_usec, 0);
	webconfig_free(c);

	/* YAML 1.1 booleans. */
	c = parse_ok("http_server_config:\n  http2: yes\n");
	assert_true(c->http2_requested);
	webconfig_free(c);
	c = parse_ok("http_server_config:\n  http2: Off\n");
	assert_false(c->http2_requested);
	webconfig_free(c);

	/* An empty client_allowed_sans list is kept: no certificate can pass it. */
	c = parse_ok("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
		     "  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: []\n");
	assert_non_null(c->client_allowed_sans);
	assert_int_equal(c->n_client_allowed_sans, 0);
	webconfig_free(c);
}

/* Relative paths are relative to the config file's directory, whatever the working directory. */
/* auth_excluded_paths, and the TLS files a reload watches. */
static void test_excluded_paths_and_files(void **state)
{
	struct webconfig *c = parse_ok("auth_excluded_paths:\n  - /-/healthy\n  - /metrics\n");

	(void)state;
	assert_int_equal(c->n_auth_excluded_paths, 2);
	assert_true(webconfig_auth_excluded(c, "/metrics"));
	assert_true(webconfig_auth_excluded(c, "/-/healthy"));
	/* Exact paths, as the toolkit compares them. */
	assert_false(webconfig_auth_excluded(c, "/metrics/"));
	assert_false(webconfig_auth_excluded(c, "/"));
	assert_false(webconfig_auth_excluded(NULL, "/metrics"));
	assert_null(c->tls_files[0]);
	webconfig_free(c);

	c = parse_ok("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
	assert_non_null(c->tls_files[0]);
	assert_non_null(strstr(c->tls_files[0], "/server.crt"));
	assert_non_null(strstr(c->tls_files[1], "/server.key"));
	assert_null(c->tls_files[2]);
	assert_false(webconfig_auth_excluded(c, "/metrics"));
	webconfig_free(c);
}

static void test_relative_paths(void **state)
{
	char path[512], cwd[512], err[512] = "";
	struct webconfig *c = NULL;

	write_file(tmpdir, "sub/web.yml",
		   "tls_server_config:\n  cert_file: server.crt\n  key_file: ./server.key\n"
		   "  client_auth_type: RequestClientCert\n  client_ca_file: ../ca.crt\n");
	snprintf(path, sizeof(path), "%s/sub/web.yml", tmpdir);
	assert_int_equal(webconfig_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c->cert_pem, ca_pem);
	assert_string_equal(c->client_ca_pem, ca_pem);
	webconfig_free(c);

	/* A relative path to the config itself. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	c = NULL;
	assert_int_equal(webconfig_load("sub/web.yml", &c, err, sizeof(err)), 0);
	assert_string_equal(c->key_pem, ca_key_pem);
	webconfig_free(c);
	/* From inside the directory: "web.yml" has no slash. */
	assert_int_equal(chdir("sub"), 0);
	c = NULL;
	assert_int_equal(webconfig_load("web.yml", &c, err, sizeof(err)), 0);
	webconfig_free(c);
	assert_int_equal(chdir(cwd), 0);

	/* The file itself is missing. */
	snprintf(path, sizeof(path), "%s/missing.yml", tmpdir);
	assert_int_equal(webconfig_load(path, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "missing.yml"));
	assert_non_null(strstr(err, "No such file"));
	/* A directory. */
	assert_int_equal(webconfig_load(tmpdir, &c, err, sizeof(err)), -EISDIR);
}

/* ---- errors ---------------------------------------------------------------------------- */

struct error_case {
	const char *yaml;
	const char *expect[3]; /* substrings of the one-line message */
};

static const struct error_case error_cases[] = {
	{ "auth_excluded_paths:\n  - metrics\n",
	  { "auth_excluded_paths", "\"metrics\" is not a path" } },
	{ "auth_excluded_paths: /metrics\n", { "auth_excluded_paths" } },
	/* YAML itself */
	{ "tls_server_config:\n  cert_file: [unclosed\n", { "web.yml:", "invalid YAML" } },
	{ "hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\n", { "web.yml:1:", "expected a mapping" } },
	{ "- a\n- b\n", { "web.yml:1:", "expected a mapping" } },
	/* unknown, repeated and mistyped keys */
	{ "tls_server_confg:\n  cert_file: x\n",
	  { "web.yml:1:", "tls_server_confg: unknown key" } },
	{ "tls_server_config:\n  cert_filse: server.crt\n",
	  { "web.yml:2:", "tls_server_config.cert_filse: unknown key" } },
	{ "basic_auth_users: {}\nbasic_auth_users: {}\n",
	  { "web.yml:2:", "basic_auth_users: key given more than once" } },
	{ "tls_server_config: yes\n", { "web.yml:1:", "tls_server_config", "expected a mapping" } },
	{ "tls_server_config:\n  cert_file: [a, b]\n",
	  { "web.yml:2:", "tls_server_config.cert_file", "expected a single value" } },
	{ "tls_server_config:\n  cipher_suites: TLS_AES_128_GCM_SHA256\n",
	  { "web.yml:2:", "tls_server_config.cipher_suites", "expected a list" } },
	{ "http_server_config:\n  http2: \"true\"\n",
	  { "web.yml:2:", "http_server_config.http2", "expected true or false" } },
	{ "tls_server_config:\n  prefer_server_cipher_suites: maybe\n",
	  { "web.yml:2:", "prefer_server_cipher_suites", "expected true or false" } },
	/* TLS: what is missing, unreadable or wrong */
	{ "tls_server_config:\n  key_file: server.key\n",
	  { "tls_server_config", "missing one of cert or cert_file" } },
	{ "tls_server_config:\n  cert_file: \"\"\n  key_file: server.key\n",
	  { "missing one of cert or cert_file" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key: \"\"\n",
	  { "missing one of key or key_file" } },
	{ "tls_server_config:\n  client_auth_type: RequireAnyClientCert\n",
	  { "missing one of cert or cert_file" } },
	{ "tls_server_config:\n  cert_file: somefile\n  key_file: server.key\n",
	  { "web.yml:2:", "tls_server_config.cert_file", "No such file" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: somefile\n",
	  { "web.yml:3:", "tls_server_config.key_file", "somefile" } },
	{ "tls_server_config:\n  cert_file: garbage.pem\n  key_file: server.key\n",
	  { "web.yml:2:", "tls_server_config.cert_file", "no valid PEM certificate" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: garbage.pem\n",
	  { "web.yml:3:", "tls_server_config.key_file", "private key" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
	  { "web.yml:3:", "tls_server_config.key_file", "does not belong" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  client_auth_type: Sometimes\n",
	  { "web.yml:4:", "tls_server_config.client_auth_type", "unknown value \"Sometimes\"" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  client_ca_file: ca.crt\n",
	  { "tls_server_config.client_auth_type", "NoClientCert" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  client_auth_type: RequireAndVerifyClientCert\n",
	  { "web.yml:4:", "client_ca_file", "needs the CA" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: garbage.pem\n",
	  { "web.yml:5:", "tls_server_config.client_ca_file", "no valid PEM certificate" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  client_allowed_sans: [a]\n",
	  { "client_allowed_sans", "client_auth_type" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  min_version: TLS111\n",
	  { "web.yml:4:", "tls_server_config.min_version", "TLS111" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  min_version: TLS13\n  max_version: TLS12\n",
	  { "web.yml:5:", "tls_server_config.max_version", "below min_version" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048\n",
	  { "web.yml:5:", "cipher_suites[0]", "unknown cipher suite" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  cipher_suites:\n  - TLS_RSA_WITH_RC4_128_SHA\n",
	  { "cipher_suites[0]", "insecure" } },
	/* GnuTLS cannot enable exactly these two: it would add the AES-256-CBC x ECDHE-RSA one. */
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  max_version: TLS12\n  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n"
	  "  - TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA\n",
	  { "web.yml:6:", "tls_server_config.cipher_suites", "would also enable TLS_ECDHE_" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n",
	  { "tls_server_config.cipher_suites", "no cipher for TLS 1.3" } },
	{ "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	  "  curve_preferences:\n    - CurveP257\n",
	  { "web.yml:5:", "curve_preferences[0]", "CurveP257" } },
	/* headers */
	{ "http_server_config:\n  headers:\n    Content-Type: foo\n",
	  { "web.yml:3:", "http_server_config.headers.Content-Type", "set by the exporter" } },
	{ "http_server_config:\n  headers:\n    content-encoding: gzip\n",
	  { "headers.content-encoding", "set by the exporter" } },
	{ "http_server_config:\n  headers:\n    Content-Length: 1\n", { "Content-Length" } },
	{ "http_server_config:\n  headers:\n    X-Powered-By: me\n",
	  { "web.yml:3:", "headers.X-Powered-By", "cannot be configured" } },
	{ "http_server_config:\n  headers:\n    X-Frame-Options: foo\n",
	  { "web.yml:3:", "headers.X-Frame-Options", "invalid value \"foo\"" } },
	{ "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
	  { "X-Content-Type-Options", "nosniff" } },
	{ "http_server_config:\n  headers:\n    X-XSS-Protection: \"1\\r\\nSet-Cookie: a\"\n",
	  { "X-XSS-Protection", "control characters" } },
	{ "http_server_config:\n  headers: [a]\n", { "http_server_config.headers", "mapping" } },
	/* users */
	{ "basic_auth_users:\n  john: doe\n",
	  { "web.yml:2:", "basic_auth_users.john", "not a bcrypt hash" } },
	{ "basic_auth_users:\n  john: $1$abcdefgh$abcdefghijklmnopqrstuv\n",
	  { "basic_auth_users.john", "bcrypt" } },
	{ "basic_auth_users:\n  john: "
	  "$2b$03$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
	  { "basic_auth_users.john", "bcrypt" } },
	{ "basic_auth_users:\n  \"a:b\": "
	  "$2b$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
	  { "basic_auth_users.a:b", "':'" } },
	{ "basic_auth_users:\n  a: $2b$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n"
	  "  a: $2b$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
	  { "web.yml:3:", "basic_auth_users.a", "more than once" } },
	/* rate_limit */
	{ "rate_limit:\n  interval: soon\n", { "web.yml:2:", "rate_limit.interval", "duration" } },
	{ "rate_limit:\n  interval: -1s\n", { "rate_limit.interval" } },
	{ "rate_limit:\n  burst: -3\n", { "web.yml:2:", "rate_limit.burst", "whole number" } },
	{ "rate_limit:\n  every: 1s\n", { "rate_limit.every: unknown key" } },
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *e = &error_cases[i];
		struct webconfig *c = NULL;
		char err[512] = "";
		int r;

		r = webconfig_parse(e->yaml, strlen(e->yaml), "web.yml", tmpdir, &c, err,
				    sizeof(err));
		if (r != -EINVAL)
			fail_msg("case %zu: %d (%s)\n--- file:\n%s", i, r, err, e->yaml);
		assert_null(c);
		/* One line, starting with the file. */
		assert_null(strchr(err, '\n'));
		assert_true(strncmp(err, "web config web.yml", 18) == 0);
		for (size_t j = 0; j < 3 && e->expect[j]; j++)
			if (!strstr(err, e->expect[j]))
				fail_msg("case %zu: \"%s\" not in: %s\n--- file:\n%s", i,
					 e->expect[j], err, e->yaml);
	}
}

/* A tiny error buffer cuts the message but never overflows; no buffer is fine too. */
static void test_error_buffer(void **state)
{
	struct webconfig *c = NULL;
	char err[8];

	memset(err, 'x', sizeof(err));
	assert_int_equal(webconfig_parse("x: 1\n", 5, "web.yml", tmpdir, &c, err, 4), -EINVAL);
	assert_int_equal(err[3], '\0');
	assert_int_equal(err[4], 'x');
	assert_int_equal(webconfig_parse("x: 1\n", 5, "web.yml", tmpdir, &c, NULL, 0), -EINVAL);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_minimal_tls),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_variants),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_buffer),
		cmocka_unit_test(test_excluded_paths_and_files),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
