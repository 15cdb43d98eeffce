/* SPDX-License-Identifier: MIT */
/*
 * The exporter-toolkit web configuration file (--web.config.file), read into
 * a struct: TLS settings (with the certificate, key and client CAs already
 * read into memory and checked), extra response headers, basic-auth users and
 * the rate limit. Parsing and validation only: nothing here logs or serves.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum webconfig_client_auth {
	WEBCONFIG_CLIENT_AUTH_NONE,            /* NoClientCert */
	WEBCONFIG_CLIENT_AUTH_REQUEST,         /* RequestClientCert: asked, not checked */
	WEBCONFIG_CLIENT_AUTH_REQUIRE_ANY,     /* RequireAnyClientCert: required, not checked */
	WEBCONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN, /* VerifyClientCertIfGiven */
	WEBCONFIG_CLIENT_AUTH_REQUIRE_VERIFY,  /* RequireAndVerifyClientCert */
};

enum webconfig_tls_version {
	WEBCONFIG_TLS10 = 10,
	WEBCONFIG_TLS11 = 11,
	WEBCONFIG_TLS12 = 12,
	WEBCONFIG_TLS13 = 13,
};

struct webconfig_header {
	char *name; /* canonical spelling, e.g. "X-Frame-Options" */
	char *value;
};

struct webconfig_user {
	char *name;
	char *hash; /* bcrypt: $2a$, $2b$ or $2y$ */
};

struct webconfig {
	/* TLS: on when tls_server_config names a certificate, key, client CA or auth type. */
	bool tls;
	char *cert_pem;      /* certificate chain, NUL-terminated PEM */
	char *key_pem;       /* private key, NUL-terminated PEM */
	char *client_ca_pem; /* NULL unless client_ca_file or client_ca is set */
	enum webconfig_client_auth client_auth;
	enum webconfig_tls_version min_version, max_version;
	char **client_allowed_sans; /* client certificates must carry one of these SANs */
	size_t n_client_allowed_sans;
	char *priorities; /* GnuTLS priority string for versions, suites and groups */

	/* http_server_config */
	bool http2_requested; /* http2: true was written; we serve HTTP/1.1 only */
	struct webconfig_header *headers;
	size_t n_headers;

	/* basic_auth_users, sorted by name */
	struct webconfig_user *users;
	size_t n_users;

	/* rate_limit: at most burst requests at once, refilled one per interval; 0 = off */
	uint64_t rate_limit_interval_usec;
	unsigned rate_limit_burst;

	/* auth_excluded_paths: request paths (exact) served without basic auth or client
	 * certificate */
	char **auth_excluded_paths;
	size_t n_auth_excluded_paths;

	/* The files the config was read from besides itself (cert_file, key_file, client_ca_file).
	 */
	char *tls_files[3];
};

/* At most this many auth_excluded_paths. */
#define WEBCONFIG_MAX_EXCLUDED_PATHS 64

/*
 * Reads and checks the file at path (relative paths inside it are relative to
 * its directory). On success returns 0 and *ret; on failure returns -errno
 * and writes one line into err naming the file, the line and the key.
 */
int webconfig_load(const char *path, struct webconfig **ret, char *err, size_t errlen);

/* The same from a string; base_dir resolves relative paths, name stands for the file in errors. */
int webconfig_parse(const char *text, size_t len, const char *name, const char *base_dir,
		    struct webconfig **ret, char *err, size_t errlen);

/* Frees everything (wiping the key and the password hashes). Accepts NULL, returns NULL. */
struct webconfig *webconfig_free(struct webconfig *c);

/* The user of that name, or NULL. */
/* Whether path is one of auth_excluded_paths. */
bool webconfig_auth_excluded(const struct webconfig *c, const char *path);

const struct webconfig_user *webconfig_find_user(const struct webconfig *c, const char *name);

/* The YAML spelling of a client_auth_type or TLS version, for logs. */
const char *webconfig_client_auth_to_string(enum webconfig_client_auth a);
const char *webconfig_tls_version_to_string(enum webconfig_tls_version v);
