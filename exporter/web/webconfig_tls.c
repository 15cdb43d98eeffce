/* SPDX-License-Identifier: MIT */
/*
 * GnuTLS for the web config. GnuTLS does not take a list of cipher suites:
 * it enables every suite whose key exchange, cipher and MAC are all enabled.
 * So the priority string is built from the parts of the suites asked for,
 * GnuTLS is asked which suites that turns on, and a list that would turn on
 * more than it names is refused rather than silently widened.
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "web/webconfig_tls.h"

/*
 * The cipher suites Go's tls.CipherSuites() names (the toolkit accepts no
 * others), with their IANA numbers; GnuTLS tells the key exchange, cipher and
 * MAC of each number.
 */
static const struct {
	const char *name;
	uint8_t id[2];
} go_cipher_suites[] = {
	{ "TLS_RSA_WITH_AES_128_CBC_SHA", { 0x00, 0x2f } },
	{ "TLS_RSA_WITH_AES_256_CBC_SHA", { 0x00, 0x35 } },
	{ "TLS_RSA_WITH_AES_128_GCM_SHA256", { 0x00, 0x9c } },
	{ "TLS_RSA_WITH_AES_256_GCM_SHA384", { 0x00, 0x9d } },
	{ "TLS_AES_128_GCM_SHA256", { 0x13, 0x01 } },
	{ "TLS_AES_256_GCM_SHA384", { 0x13, 0x02 } },
	{ "TLS_CHACHA20_POLY1305_SHA256", { 0x13, 0x03 } },
	{ "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", { 0xc0, 0x09 } },
	{ "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", { 0xc0, 0x0a } },
	{ "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", { 0xc0, 0x13 } },
	{ "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", { 0xc0, 0x14 } },
	{ "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", { 0xc0, 0x2b } },
	{ "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", { 0xc0, 0x2c } },
	{ "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", { 0xc0, 0x2f } },
	{ "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", { 0xc0, 0x30 } },
	{ "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", { 0xcc, 0xa8 } },
	{ "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", { 0xcc, 0xa9 } },
};

/* The toolkit's curve names and GnuTLS's groups. */
static const struct {
	const char *name;
	const char *gnutls;
} go_curves[] = {
	{ "CurveP256", "GROUP-SECP256R1" },
	{ "CurveP384", "GROUP-SECP384R1" },
	{ "CurveP521", "GROUP-SECP521R1" },
	{ "X25519", "GROUP-X25519" },
};

bool webconfig_tls_suite_known(const char *go_name)
{
	for (size_t i = 0; i < ELEMENTSOF(go_cipher_suites); i++)
		if (strcmp(go_name, go_cipher_suites[i].name) == 0)
			return true;
	return false;
}

bool webconfig_tls_curve_known(const char *go_name)
{
	for (size_t i = 0; i < ELEMENTSOF(go_curves); i++)
		if (strcmp(go_name, go_curves[i].name) == 0)
			return true;
	return false;
}

/* A PEM certificate list; the number of certificates, or a negative GnuTLS error. */
static int pem_count_certs(const char *pem)
{
	gnutls_datum_t d = { .data = (unsigned char *)(uintptr_t)pem,
			     .size = (unsigned)strlen(pem) };
	gnutls_x509_crt_t *certs = NULL;
	unsigned n = 0;
	int r;

	r = gnutls_x509_crt_list_import2(&certs, &n, &d, GNUTLS_X509_FMT_PEM, 0);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(certs[i]);
	gnutls_free(certs);
	return (int)n;
}

int webconfig_tls_check_certs(const char *pem, char *why, size_t whylen)
{
	int r = pem_count_certs(pem);

	if (r > 0)
		return 0;
	snprintf(why, whylen, "no valid PEM certificate found%s%s", r < 0 ? ": " : "",
		 r < 0 ? gnutls_strerror(r) : "");
	return -EINVAL;
}

int webconfig_tls_check_pair(const char *cert_pem, const char *key_pem, char *why, size_t whylen)
{
	gnutls_datum_t cd = { .data = (unsigned char *)(uintptr_t)cert_pem,
			      .size = (unsigned)strlen(cert_pem) };
	gnutls_datum_t kd = { .data = (unsigned char *)(uintptr_t)key_pem,
			      .size = (unsigned)strlen(key_pem) };
	gnutls_certificate_credentials_t cred;
	gnutls_x509_privkey_t key;
	int r;

	if (webconfig_tls_check_certs(cert_pem, why, whylen) < 0)
		return WEBCONFIG_TLS_PAIR_BAD_CERT;

	if (gnutls_x509_privkey_init(&key) < 0)
		return -ENOMEM;
	r = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
	gnutls_x509_privkey_deinit(key);
	if (r < 0) {
		snprintf(why, whylen,
			 "no usable PEM private key found (%s; encrypted keys are not supported)",
			 gnutls_strerror(r));
		return WEBCONFIG_TLS_PAIR_BAD_KEY;
	}

	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return -ENOMEM;
	r = gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_certificate_free_credentials(cred);
	if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
		snprintf(why, whylen, "the private key does not belong to the certificate");
		return WEBCONFIG_TLS_PAIR_KEY_MISMATCH;
	}
	if (r < 0) {
		snprintf(why, whylen, "GnuTLS cannot use this certificate and key: %s",
			 gnutls_strerror(r));
		return WEBCONFIG_TLS_PAIR_BAD_CERT;
	}
	return WEBCONFIG_TLS_PAIR_OK;
}

static bool suite_in(const uint8_t (*ids)[2], size_t n, const unsigned char id[2])
{
	for (size_t i = 0; i < n; i++)
		if (ids[i][0] == id[0] && ids[i][1] == id[1])
			return true;
	return false;
}

static const char *suite_go_name(const unsigned char id[2], const char *fallback)
{
	for (size_t i = 0; i < ELEMENTSOF(go_cipher_suites); i++)
		if (go_cipher_suites[i].id[0] == id[0] && go_cipher_suites[i].id[1] == id[1])
			return go_cipher_suites[i].name;
	return fallback;
}

/* Appends ":+name" (or ":-name" when minus) unless already in s. */
static int prio_add(char **s, const char *sign, const char *name)
{
	char *grown, item[64];

	snprintf(item, sizeof(item), ":%s%s", sign, name);
	if (strstr(*s, item)) {
		size_t n = strlen(item);
		const char *at = strstr(*s, item);

		/* A whole token only: ":+AES-128-GCM" is not ":+AES-128-GCM-8". */
		if (at[n] == ':' || at[n] == '\0')
			return 0;
	}
	if (asprintf(&grown, "%s%s", *s, item) < 0)
		return -ENOMEM;
	free(*s);
	*s = grown;
	return 0;
}

/* The GnuTLS suite of a Go name: its number, key exchange, cipher, MAC and minimum version. */
static bool suite_lookup(const char *go_name, uint8_t id[2], gnutls_kx_algorithm_t *kx,
			 gnutls_cipher_algorithm_t *cipher, gnutls_mac_algorithm_t *mac,
			 gnutls_protocol_t *min_version)
{
	const uint8_t *want = NULL;
	unsigned char sid[2];

	for (size_t i = 0; i < ELEMENTSOF(go_cipher_suites) && !want; i++)
		if (strcmp(go_name, go_cipher_suites[i].name) == 0)
			want = go_cipher_suites[i].id;
	if (!want)
		return false;
	for (size_t k = 0; gnutls_cipher_suite_info(k, sid, kx, cipher, mac, min_version); k++)
		if (sid[0] == want[0] && sid[1] == want[1]) {
			memcpy(id, want, 2);
			return true;
		}
	return false;
}

/* The versions, suites and groups asked for, as priority-string tokens. */
static int priorities_compose(const struct webconfig_tls_params *pp, uint8_t (*wanted)[2],
			      size_t *n_wanted, char **ret, char *why, size_t whylen)
{
	_cleanup_free_ char *s = NULL;
	int r;

	s = strdup(pp->prefer_server_cipher_suites ? "NORMAL:%SERVER_PRECEDENCE" : "NORMAL");
	if (!s)
		return -ENOMEM;
	r = prio_add(&s, "-", "VERS-ALL");
	for (int v = WEBCONFIG_TLS13; v >= WEBCONFIG_TLS10 && r == 0; v--)
		if (v >= (int)pp->min_version && v <= (int)pp->max_version) {
			char tok[16];

			snprintf(tok, sizeof(tok), "VERS-TLS1.%d", v - WEBCONFIG_TLS10);
			r = prio_add(&s, "+", tok);
		}
	/* Go offers ECDHE (and static RSA when listed), never finite-field DHE. */
	if (r == 0)
		r = prio_add(&s, "-", "KX-ALL");

	if (pp->n_cipher_suites == 0) {
		if (r == 0)
			r = prio_add(&s, "+", "ECDHE-ECDSA");
		if (r == 0)
			r = prio_add(&s, "+", "ECDHE-RSA");
	} else {
		if (r == 0)
			r = prio_add(&s, "-", "CIPHER-ALL");
		if (r == 0)
			r = prio_add(&s, "-", "MAC-ALL");
		for (size_t i = 0; i < pp->n_cipher_suites && r == 0; i++) {
			gnutls_kx_algorithm_t kx;
			gnutls_cipher_algorithm_t ci;
			gnutls_mac_algorithm_t mac;
			gnutls_protocol_t minv;

			if (!suite_lookup(pp->cipher_suites[i], wanted[*n_wanted], &kx, &ci, &mac,
					  &minv)) {
				snprintf(why, whylen, "%s is not available in this GnuTLS",
					 pp->cipher_suites[i]);
				return -EINVAL;
			}
			(*n_wanted)++;
			r = prio_add(&s, "+", gnutls_cipher_get_name(ci));
			if (r == 0)
				r = prio_add(&s, "+", gnutls_mac_get_name(mac));
			/* TLS 1.3 suites have no key exchange of their own. */
			if (r == 0 && minv != GNUTLS_TLS1_3)
				r = prio_add(&s, "+", gnutls_kx_get_name(kx));
		}
	}

	if (pp->n_curves > 0 && r == 0) {
		r = prio_add(&s, "-", "GROUP-ALL");
		for (size_t i = 0; i < pp->n_curves && r == 0; i++)
			for (size_t j = 0; j < ELEMENTSOF(go_curves); j++)
				if (strcmp(pp->curves[i], go_curves[j].name) == 0)
					r = prio_add(&s, "+", go_curves[j].gnutls);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}

int webconfig_tls_priorities(const struct webconfig_tls_params *pp, char **ret, char *why,
			     size_t whylen)
{
	_cleanup_free_ uint8_t(*wanted)[2] = NULL;
	_cleanup_free_ char *s = NULL;
	gnutls_priority_t prio;
	const char *errpos = NULL;
	size_t n_wanted = 0;
	unsigned n13 = 0;
	int r;

	wanted = calloc(pp->n_cipher_suites + 1, sizeof(*wanted));
	if (!wanted)
		return -ENOMEM;
	r = priorities_compose(pp, wanted, &n_wanted, &s, why, whylen);
	if (r < 0)
		return r;

	r = gnutls_priority_init(&prio, s, &errpos);
	if (r < 0) {
		snprintf(why, whylen,
			 "GnuTLS rejects the settings (priority string \"%s\" at \"%s\"): %s", s,
			 errpos ? errpos : "", gnutls_strerror(r));
		return -EINVAL;
	}
	/* Which suites that really turns on. */
	for (unsigned i = 0;; i++) {
		gnutls_kx_algorithm_t kx;
		gnutls_cipher_algorithm_t ci;
		gnutls_mac_algorithm_t mac;
		gnutls_protocol_t minv;
		unsigned char sid[2];
		const char *name;
		unsigned idx;

		r = gnutls_priority_get_cipher_suite_index(prio, i, &idx);
		if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (r < 0)
			continue;
		name = gnutls_cipher_suite_info(idx, sid, &kx, &ci, &mac, &minv);
		if (!name)
			continue;
		if (minv == GNUTLS_TLS1_3) {
			n13++;
			continue;
		}
		if (pp->n_cipher_suites > 0 &&
		    !suite_in((const uint8_t(*)[2])wanted, n_wanted, sid)) {
			snprintf(why, whylen,
				 "GnuTLS enables suites by key exchange, cipher and MAC, and this "
				 "list "
				 "would also enable %s; add it to the list or drop the suites that "
				 "share its parts",
				 suite_go_name(sid, name));
			gnutls_priority_deinit(prio);
			return -EINVAL;
		}
	}
	gnutls_priority_deinit(prio);
	if (pp->max_version >= WEBCONFIG_TLS13 && n13 == 0) {
		snprintf(why, whylen,
			 "leaves no cipher for TLS 1.3: add TLS_AES_128_GCM_SHA256, "
			 "TLS_AES_256_GCM_SHA384 or TLS_CHACHA20_POLY1305_SHA256, or set "
			 "max_version: TLS12");
		return -EINVAL;
	}
	*ret = TAKE_PTR(s);
	return 0;
}
