/* SPDX-License-Identifier: MIT */
/*
 * The GnuTLS side of the web config: Go's names for cipher suites and
 * curves, checks of the PEM material, and the GnuTLS priority string that
 * honours min/max_version, cipher_suites, curve_preferences and
 * prefer_server_cipher_suites exactly, or says why it cannot.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "web/webconfig.h"

/* True for the names of Go's tls.CipherSuites() (the only ones the toolkit accepts). */
bool webconfig_tls_suite_known(const char *go_name);

/* True for CurveP256, CurveP384, CurveP521 and X25519. */
bool webconfig_tls_curve_known(const char *go_name);

/* 0 if pem holds at least one certificate; else -EINVAL with the reason in why. */
int webconfig_tls_check_certs(const char *pem, char *why, size_t whylen);

enum webconfig_tls_pair_problem {
	WEBCONFIG_TLS_PAIR_OK = 0,
	WEBCONFIG_TLS_PAIR_BAD_CERT,     /* the certificate is not usable */
	WEBCONFIG_TLS_PAIR_BAD_KEY,      /* the key is not usable (or encrypted) */
	WEBCONFIG_TLS_PAIR_KEY_MISMATCH, /* the key is not the certificate's */
};

/* Checks the server's certificate and key: an enum webconfig_tls_pair_problem (why says more), or
 * -ENOMEM. */
int webconfig_tls_check_pair(const char *cert_pem, const char *key_pem, char *why, size_t whylen);

struct webconfig_tls_params {
	char *const *cipher_suites; /* Go names, already known */
	size_t n_cipher_suites;
	char *const *curves; /* Go names, already known */
	size_t n_curves;
	enum webconfig_tls_version min_version, max_version;
	bool prefer_server_cipher_suites;
};

/*
 * The GnuTLS priority string for params in *ret (malloc'd); -EINVAL with the
 * reason in why if GnuTLS cannot honour them exactly, or -ENOMEM.
 */
int webconfig_tls_priorities(const struct webconfig_tls_params *params, char **ret, char *why,
			     size_t whylen);
