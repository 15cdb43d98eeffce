/* SPDX-License-Identifier: MIT */
/* Client certificates: requested per connection, checked during the handshake. */
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "log/log.h"

/* ---- TLS client certificates ------------------------------------------------------------ */

/* Go's net.IP.String(): an IPv4-mapped IPv6 address prints as IPv4. */
static void format_san_ip(const unsigned char *ip, size_t len, char *buf, size_t buflen)
{
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	buf[0] = '\0';
	if (len == 4)
		inet_ntop(AF_INET, ip, buf, (socklen_t)buflen);
	else if (len == 16 && memcmp(ip, v4mapped, sizeof(v4mapped)) == 0)
		inet_ntop(AF_INET, ip + 12, buf, (socklen_t)buflen);
	else if (len == 16)
		inet_ntop(AF_INET6, ip, buf, (socklen_t)buflen);
}

/* client_allowed_sans: one of the leaf's DNS, e-mail, IP or URI SANs must be listed. */
static bool cert_has_allowed_san(const gnutls_datum_t *der, const struct webconfig *w)
{
	gnutls_x509_crt_t crt;
	bool found = false;

	if (gnutls_x509_crt_init(&crt) < 0)
		return false;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(crt);
		return false;
	}
	for (unsigned seq = 0; !found; seq++) {
		unsigned char buf[1024];
		char text[INET6_ADDRSTRLEN + 1];
		const char *value = NULL;
		size_t size = sizeof(buf) - 1;
		unsigned critical;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf, &size, &critical);

		if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
			continue; /* longer than any name we could have listed */
		if (type < 0)
			break;
		buf[size] = '\0';
		switch (type) {
		case GNUTLS_SAN_DNSNAME:
		case GNUTLS_SAN_RFC822NAME:
		case GNUTLS_SAN_URI:
			if (strlen((char *)buf) == size)
				value = (const char *)buf;
			break;
		case GNUTLS_SAN_IPADDRESS:
			format_san_ip(buf, size, text, sizeof(text));
			value = text;
			break;
		default:
			break;
		}
		for (size_t i = 0; value && *value && i < w->n_client_allowed_sans && !found; i++)
			found = strcmp(value, w->client_allowed_sans[i]) == 0;
	}
	gnutls_x509_crt_deinit(crt);
	return found;
}

/*
 * Fails the handshake the way Go's crypto/tls does, with an alert the client
 * can report ("certificate required", "bad certificate"); MHD would just
 * close the connection.
 */
static int tls_reject(gnutls_session_t session, gnutls_alert_description_t alert)
{
	if (alert == GNUTLS_A_CERTIFICATE_REQUIRED &&
	    gnutls_protocol_get_version(session) != GNUTLS_TLS1_3)
		alert = GNUTLS_A_HANDSHAKE_FAILURE; /* TLS 1.2 has no "certificate required" */
	(void)gnutls_alert_send(session, GNUTLS_AL_FATAL, alert);
	return -1;
}

/*
 * Whether the session's client certificate (if any) satisfies the web
 * config: 0, or the TLS alert to refuse the client with.
 */
static int tls_client_check(gnutls_session_t session, const struct webconfig *w,
			    const char *address)
{
	const gnutls_datum_t *certs;
	unsigned n = 0, status = 0;

	certs = gnutls_certificate_get_peers(session, &n);
	if (!certs || n == 0) {
		/*
		 * With auth_excluded_paths the path decides, and it is not known yet:
		 * http_tls_client_ok() requires the certificate per request instead.
		 */
		if (w->n_auth_excluded_paths > 0)
			return 0;
		if (w->client_auth == WEBCONFIG_CLIENT_AUTH_REQUIRE_ANY ||
		    w->client_auth == WEBCONFIG_CLIENT_AUTH_REQUIRE_VERIFY ||
		    w->client_allowed_sans) {
			log_debug("TLS client rejected: no client certificate", "address=%s",
				  address);
			return GNUTLS_A_CERTIFICATE_REQUIRED;
		}
		return 0;
	}

	if (w->client_auth == WEBCONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN ||
	    w->client_auth == WEBCONFIG_CLIENT_AUTH_REQUIRE_VERIFY) {
		/* Against client_ca, for client authentication (extended key usage), as Go does. */
		gnutls_typed_vdata_st purpose = {
			.type = GNUTLS_DT_KEY_PURPOSE_OID,
			.data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT
		};
		int r = gnutls_certificate_verify_peers(session, &purpose, 1, &status);

		if (r < 0 || status != 0) {
			gnutls_datum_t why = { NULL, 0 };

			if (r >= 0)
				gnutls_certificate_verification_status_print(status,
									     GNUTLS_CRT_X509, &why,
									     0);
			log_debug("TLS client rejected: certificate not verified",
				  "address=%s err=\"%s\"", address,
				  r < 0      ? gnutls_strerror(r)
				  : why.data ? (char *)why.data
					     : "");
			gnutls_free(why.data);
			return GNUTLS_A_BAD_CERTIFICATE;
		}
	}
	if (w->client_allowed_sans && !cert_has_allowed_san(&certs[0], w)) {
		log_debug("TLS client rejected: no allowed SAN in its certificate", "address=%s",
			  address);
		return GNUTLS_A_BAD_CERTIFICATE;
	}
	return 0;
}

/*
 * GnuTLS calls this during the handshake, once the client's Certificate
 * (possibly empty) has arrived; non-zero aborts the handshake.
 */
static int tls_verify_client(gnutls_session_t session)
{
	struct MHD_Connection *c = gnutls_session_get_ptr(session);
	const union MHD_ConnectionInfo *ci;
	struct http_connection *hc;
	int alert;

	ci = c ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
	hc = ci ? ci->socket_context : NULL;
	if (!hc || !hc->tls_gen)
		return tls_reject(session, GNUTLS_A_INTERNAL_ERROR);
	alert = tls_client_check(session, hc->tls_gen->web, hc->listener->address);
	if (alert)
		return tls_reject(session, (gnutls_alert_description_t)alert);
	hc->client_verified = true;
	return 0;
}

/*
 * Per connection, before its TLS handshake: asks for (or requires) a client
 * certificate and installs the check. MHD itself only ever asks ("REQUEST")
 * when given a client CA, and never verifies.
 */
void http_notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			    enum MHD_ConnectionNotificationCode code)
{
	struct http_listener *l = cls;
	const struct webconfig *w;
	const union MHD_ConnectionInfo *ci;
	struct http_connection *hc;
	gnutls_session_t session;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		hc = *socket_context;
		if (hc)
			web_gen_unref(hc->tls_gen);
		free(hc);
		*socket_context = NULL;
		return;
	}
	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	/* Without it, http_tls_client_ok() and tls_verify_client() fail closed. */
	hc = calloc(1, sizeof(*hc));
	if (!hc)
		return;
	hc->listener = l;
	*socket_context = hc;
	/* The handshake uses the config current now (a rotated certificate from here on). */
	hc->tls_gen = http_web_acquire(l->server);
	w = hc->tls_gen ? hc->tls_gen->web : NULL;

	if (!w || !w->tls || w->client_auth == WEBCONFIG_CLIENT_AUTH_NONE)
		return;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return;
	session = ci->tls_session;
	/* REQUEST even when required: tls_verify_client() refuses, with the right alert. */
	gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
	gnutls_session_set_verify_function(session, tls_verify_client);
}

/*
 * Whether the connection's client certificate satisfies client_auth_type.
 * The handshake already enforced it (tls_verify_client()); this is the
 * fail-closed check that nothing let a connection through unverified.
 */
bool http_tls_client_ok(const struct webconfig *w, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;
	struct http_connection *hc;
	gnutls_session_t session;
	unsigned n = 0;

	if (w->client_auth == WEBCONFIG_CLIENT_AUTH_NONE)
		return true;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return false;
	session = ci->tls_session;
	gnutls_certificate_get_peers(session, &n);
	if (n == 0)
		return (w->client_auth == WEBCONFIG_CLIENT_AUTH_REQUEST ||
			w->client_auth == WEBCONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN) &&
		       !w->client_allowed_sans;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	hc = ci ? ci->socket_context : NULL;
	if (!hc)
		return false;
	/* A resumed session skips the Certificate message, and so the callback: check here. */
	if (!hc->client_verified && gnutls_session_is_resumed(session) &&
	    tls_client_check(session, w, hc->listener->address) == 0)
		hc->client_verified = true;
	return hc->client_verified;
}

int http_tls_certificate(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
			 const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
			 gnutls_pcert_st **pcert, unsigned int *pcert_length,
			 gnutls_privkey_t *privkey)
{
	struct MHD_Connection *c = gnutls_session_get_ptr(session);
	const union MHD_ConnectionInfo *ci;
	struct http_connection *hc;

	ci = c ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
	hc = ci ? ci->socket_context : NULL;
	/* No generation (out of memory at connection start): no certificate, the handshake fails.
	 */
	if (!hc || !hc->tls_gen || !hc->tls_gen->key)
		return -1;
	*pcert = hc->tls_gen->pcerts;
	*pcert_length = hc->tls_gen->n_pcerts;
	*privkey = hc->tls_gen->key;
	return 0;
}
