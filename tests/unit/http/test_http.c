/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for what the web config and the limits add to the HTTP module
 * (http/): --web.max-requests with a collect callback that blocks, basic
 * auth, extra headers, the rate limit and the request size limit over plain
 * HTTP with a raw-socket client, and TLS with client certificates through a
 * GnuTLS client, all on loopback; content negotiation (OpenMetrics, gzip,
 * also for HEAD). test_cli.c covers the routes themselves.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "http/http.h"
#include "log/log.h"
#include "expo/outbuf.h"
#include "web/webconfig.h"

#define BODY    "# HELP x X.\n# TYPE x gauge\nx 1\n"
#define BODY_OM "# TYPE x gauge\n# HELP x X.\nx 1\n# EOF\n"
/* alice:secret, hashed at cost 4 below; base64 of the pairs. */
#define AUTH_GOOD  "Basic YWxpY2U6c2VjcmV0"
#define AUTH_WRONG "Basic YWxpY2U6d3Jvbmc="
#define ALICE_HASH "$2y$04$90ahKRJzRVLHwc6eBw.HHO3DmG3jdnZgPCFrPY8oMHZ3.eX3lwQae"

/* ---- the fake collector: can block until released ------------------------------------- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool block;
	unsigned inside; /* collections in progress */
	atomic_uint calls;
	atomic_int last_fmt;
	atomic_uint last_collectors;
} fake = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int fake_collect(void *userdata, struct outbuf *out, enum exposition_format fmt,
			uint32_t collectors)
{
	atomic_store(&fake.last_collectors, collectors);
	pthread_mutex_lock(&fake.lock);
	fake.inside++;
	pthread_cond_broadcast(&fake.cond);
	while (fake.block)
		pthread_cond_wait(&fake.cond, &fake.lock);
	fake.inside--;
	pthread_mutex_unlock(&fake.lock);
	atomic_fetch_add(&fake.calls, 1);
	atomic_store(&fake.last_fmt, (int)fmt);
	outbuf_puts(out, fmt == EXPOSITION_OPENMETRICS_100 ? BODY_OM : BODY);
	return 0;
}

static void fake_block(bool on)
{
	pthread_mutex_lock(&fake.lock);
	fake.block = on;
	pthread_cond_broadcast(&fake.cond);
	pthread_mutex_unlock(&fake.lock);
}

/* Waits until n collections are blocked inside fake_collect(). */
static void fake_wait_inside(unsigned n)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&fake.lock);
	while (fake.inside < n)
		if (pthread_cond_timedwait(&fake.cond, &fake.lock, &deadline) == ETIMEDOUT)
			break;
	assert_int_equal(fake.inside, n);
	pthread_mutex_unlock(&fake.lock);
}

/* ---- a raw HTTP/1.1 client ---------------------------------------------------------------- */

struct http_reply {
	int status;
	char *raw;
	char *headers;   /* into raw */
	char *body;      /* into raw */
	size_t body_len; /* gzip bodies have NUL bytes */
};

static void http_reply_release(struct http_reply *r)
{
	free(r->raw);
	*r = (struct http_reply){ 0 };
}

static int connect_loopback(unsigned port)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void parse_reply(char *raw, size_t len, struct http_reply *ret)
{
	char *end;

	raw[len] = '\0';
	end = strstr(raw, "\r\n\r\n");
	if (!end)
		fail_msg("no complete reply: \"%s\"", raw);
	*end = '\0';
	*ret = (struct http_reply){ .raw = raw,
				    .headers = raw,
				    .body = end + 4,
				    .body_len = len - (size_t)(end + 4 - raw) };
	assert_int_equal(sscanf(raw, "HTTP/1.1 %d ", &ret->status), 1);
}

/* One request on a fresh connection; extra is more header lines ("Name: value\r\n..."). */
static void http_request(unsigned port, const char *method, const char *path, const char *extra,
			 struct http_reply *ret)
{
	size_t len = 0, cap = 4096, n;
	char *req, *raw;
	int fd;

	fd = connect_loopback(port);
	assert_true(asprintf(&req,
			     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n",
			     method, path, extra ? extra : "") > 0);
	n = strlen(req);
	/* The server may answer (and close) before reading a huge request to its end. */
	(void)!send(fd, req, n, MSG_NOSIGNAL);
	free(req);
	raw = malloc(cap + 1);
	assert_non_null(raw);
	for (;;) {
		ssize_t r;

		if (len == cap) {
			cap *= 2;
			raw = realloc(raw, cap + 1);
			assert_non_null(raw);
		}
		r = recv(fd, raw + len, cap - len, 0);
		if (r < 0 && errno == ECONNRESET)
			break;
		assert_true(r >= 0);
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	parse_reply(raw, len, ret);
}

static void http_get(unsigned port, const char *path, const char *extra, struct http_reply *ret)
{
	http_request(port, "GET", path, extra, ret);
}

static const char *http_header(const struct http_reply *r, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);

	for (const char *line = strstr(r->headers, "\r\n"); line; line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
			const char *v = line + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			if (!e)
				e = v + strlen(v);
			snprintf(buf, len, "%.*s", (int)(e - v), v);
			return buf;
		}
	}
	return NULL;
}

/* The port of the one listener, found by binding 0 and reading the log line. */
static unsigned free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static const char *const collector_names[] = { "alpha", "beta", "gamma" };

static struct http_server *start(unsigned port, unsigned max_requests, struct webconfig *web)
{
	char addr[64], err[256] = "";
	char *listen[] = { addr };
	struct http_config cfg = {
		.listen = listen,
		.n_listen = 1,
		.telemetry_path = "/metrics",
		.collect = fake_collect,
		/* gamma exists but is not enabled */
		.collectors = collector_names,
		.n_collectors = 3,
		.collectors_enabled = 0x3,
		.max_requests = max_requests,
		.web = web,
	};
	struct http_server *s = NULL;
	int r;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	r = http_server_start(&cfg, &s, err, sizeof(err));
	if (r < 0)
		fail_msg("http_server_start: %d %s", r, err);
	return s;
}

static struct webconfig *web(const char *yaml, const char *dir)
{
	struct webconfig *c = NULL;
	char err[512] = "";

	if (webconfig_parse(yaml, strlen(yaml), "web.yml", dir, &c, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	return c;
}

/* ---- --web.max-requests ----------------------------------------------------------------- */

struct bg_request {
	pthread_t thread;
	unsigned port;
	const char *path;
	struct http_reply reply;
};

static void *bg_request_run(void *arg)
{
	struct bg_request *b = arg;

	http_get(b->port, b->path, NULL, &b->reply);
	return NULL;
}

static void bg_request_start(struct bg_request *b, unsigned port, const char *path)
{
	*b = (struct bg_request){ .port = port, .path = path };
	assert_int_equal(pthread_create(&b->thread, NULL, bg_request_run, b), 0);
}

static void test_max_requests(void **state)
{
	unsigned port = free_port();
	struct http_server *s = start(port, 2, NULL);
	struct bg_request a, b;
	struct http_reply r;
	char h[256];

	/* Two scrapes block inside collect; a third is refused at once. */
	fake_block(true);
	bg_request_start(&a, port, "/metrics");
	bg_request_start(&b, port, "/metrics");
	fake_wait_inside(2);
	http_get(port, "/metrics", NULL, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "Limit of concurrent requests reached (2), try again later.\n");
	assert_string_equal(http_header(&r, "Content-Type", h, sizeof(h)),
			    "text/plain; charset=utf-8");
	http_reply_release(&r);

	/* Other endpoints are not counted, and are answered while scrapes are stuck. */
	http_get(port, "/-/healthy", NULL, &r);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);

	fake_block(false);
	pthread_join(a.thread, NULL);
	pthread_join(b.thread, NULL);
	assert_int_equal(a.reply.status, 200);
	assert_string_equal(a.reply.body, BODY);
	assert_int_equal(b.reply.status, 200);
	http_reply_release(&a.reply);
	http_reply_release(&b.reply);

	/* The slots are free again. */
	http_get(port, "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);
	http_server_stop(s);

	/* 0: no limit. */
	port = free_port();
	s = start(port, 0, NULL);
	fake_block(true);
	bg_request_start(&a, port, "/metrics");
	bg_request_start(&b, port, "/metrics");
	fake_wait_inside(2);
	http_get(port, "/-/healthy", NULL, &r);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);
	fake_block(false);
	pthread_join(a.thread, NULL);
	pthread_join(b.thread, NULL);
	assert_int_equal(a.reply.status, 200);
	assert_int_equal(b.reply.status, 200);
	http_reply_release(&a.reply);
	http_reply_release(&b.reply);
	http_server_stop(s);
}

/* A request line or headers beyond the per-connection memory limit: refused, not served. */
static void test_request_size_limit(void **state)
{
	unsigned port = free_port();
	struct http_server *s = start(port, 0, NULL);
	struct http_reply r;
	size_t big = 64 * 1024;
	char *path = malloc(big + 2), *header = malloc(big + 16);

	assert_non_null(path);
	assert_non_null(header);
	path[0] = '/';
	memset(path + 1, 'a', big);
	path[big + 1] = '\0';
	http_get(port, path, NULL, &r);
	assert_true(r.status >= 400 && r.status < 500);
	http_reply_release(&r);

	memcpy(header, "X-Big: ", 7);
	memset(header + 7, 'b', big);
	memcpy(header + 7 + big, "\r\n", 3);
	http_get(port, "/metrics", header, &r);
	assert_true(r.status >= 400 && r.status < 500);
	http_reply_release(&r);

	/* Ordinary requests still work. */
	http_get(port, "/metrics", "User-Agent: Prometheus/3.0\r\nAccept: */*\r\n", &r);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);
	free(path);
	free(header);
	http_server_stop(s);
}

/* ---- basic auth, headers, rate limit (plain HTTP) --------------------------------------- */

static void test_basic_auth(void **state)
{
	static const char *const paths[] = { "/metrics", "/", "/-/healthy", "/-/ready", "/nope" };
	unsigned port = free_port();
	struct webconfig *w;
	struct http_server *s;
	struct http_reply r;
	char h[256];

	/* alice:secret at cost 4, $2y$ as htpasswd -B writes it. */
	w = web("basic_auth_users:\n"
		"  alice: " ALICE_HASH "\n"
		"http_server_config:\n"
		"  headers:\n"
		"    X-Frame-Options: deny\n"
		"    Content-Security-Policy: default-src 'none'\n",
		"/");
	s = start(port, 0, w);

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		http_get(port, paths[i], NULL, &r);
		assert_int_equal(r.status, 401);
		assert_string_equal(http_header(&r, "WWW-Authenticate", h, sizeof(h)),
				    "Basic realm=\"kvmstats_exporter\"");
		/* The configured headers are on every response, errors included. */
		assert_string_equal(http_header(&r, "X-Frame-Options", h, sizeof(h)), "deny");
		http_reply_release(&r);
	}
	http_get(port, "/metrics", "Authorization: " AUTH_WRONG "\r\n", &r);
	assert_int_equal(r.status, 401);
	http_reply_release(&r);
	http_get(port, "/metrics", "Authorization: Basic Ym9iOnNlY3JldA==\r\n", &r); /* bob */
	assert_int_equal(r.status, 401);
	http_reply_release(&r);
	http_get(port, "/metrics", "Authorization: Bearer token\r\n", &r);
	assert_int_equal(r.status, 401);
	http_reply_release(&r);

	for (int i = 0; i < 3; i++) {
		http_get(port, "/metrics", "Authorization: " AUTH_GOOD "\r\n", &r);
		assert_int_equal(r.status, 200);
		assert_string_equal(r.body, BODY);
		assert_null(http_header(&r, "WWW-Authenticate", h, sizeof(h)));
		assert_string_equal(http_header(&r, "X-Frame-Options", h, sizeof(h)), "deny");
		assert_string_equal(http_header(&r, "Content-Security-Policy", h, sizeof(h)),
				    "default-src 'none'");
		assert_string_equal(http_header(&r, "Content-Type", h, sizeof(h)),
				    "text/plain; version=0.0.4; charset=utf-8");
		http_reply_release(&r);
	}
	http_get(port, "/nope", "Authorization: " AUTH_GOOD "\r\n", &r);
	assert_int_equal(r.status, 404);
	http_reply_release(&r);

	http_server_stop(s);
	webconfig_free(w);
}

static void test_rate_limit(void **state)
{
	unsigned port = free_port();
	struct webconfig *w = web("rate_limit:\n  interval: 1h\n  burst: 2\n", "/");
	struct http_server *s = start(port, 0, w);
	struct http_reply r;

	for (int i = 0; i < 2; i++) {
		http_get(port, "/-/healthy", NULL, &r);
		assert_int_equal(r.status, 200);
		http_reply_release(&r);
	}
	http_get(port, "/metrics", NULL, &r);
	assert_int_equal(r.status, 429);
	http_reply_release(&r);
	http_server_stop(s);
	webconfig_free(w);
}

/* ---- TLS and client certificates ------------------------------------------------------ */

static char *datum_to_string(gnutls_datum_t *d)
{
	char *s = malloc(d->size + 1);

	assert_non_null(s);
	memcpy(s, d->data, d->size);
	s[d->size] = '\0';
	gnutls_free(d->data);
	return s;
}

struct pki {
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	char *crt_pem, *key_pem;
};

/* A P-256 certificate: a CA when issuer is NULL, else a leaf for purpose with one DNS SAN. */
static void pki_make(struct pki *p, const char *cn, struct pki *issuer, const char *purpose,
		     const char *dns)
{
	gnutls_datum_t d;
	time_t now = time(NULL);
	static unsigned char serial = 1;

	assert_int_equal(gnutls_x509_privkey_init(&p->key), 0);
	assert_int_equal(gnutls_x509_privkey_generate(p->key, GNUTLS_PK_ECDSA,
						      GNUTLS_CURVE_TO_BITS(
							      GNUTLS_ECC_CURVE_SECP256R1),
						      0),
			 0);
	assert_int_equal(gnutls_x509_crt_init(&p->crt), 0);
	gnutls_x509_crt_set_version(p->crt, 3);
	serial++;
	gnutls_x509_crt_set_serial(p->crt, &serial, 1);
	gnutls_x509_crt_set_activation_time(p->crt, now - 60);
	gnutls_x509_crt_set_expiration_time(p->crt, now + 3600);
	gnutls_x509_crt_set_dn_by_oid(p->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
				      (unsigned)strlen(cn));
	gnutls_x509_crt_set_key(p->crt, p->key);
	if (!issuer) {
		gnutls_x509_crt_set_basic_constraints(p->crt, 1, -1);
		gnutls_x509_crt_set_key_usage(p->crt, GNUTLS_KEY_KEY_CERT_SIGN);
		assert_int_equal(gnutls_x509_crt_sign2(p->crt, p->crt, p->key, GNUTLS_DIG_SHA256,
						       0),
				 0);
	} else {
		gnutls_x509_crt_set_basic_constraints(p->crt, 0, -1);
		gnutls_x509_crt_set_key_purpose_oid(p->crt, purpose, 0);
		gnutls_x509_crt_set_subject_alt_name(p->crt, GNUTLS_SAN_DNSNAME, dns,
						     (unsigned)strlen(dns), GNUTLS_FSAN_SET);
		assert_int_equal(gnutls_x509_crt_sign2(p->crt, issuer->crt, issuer->key,
						       GNUTLS_DIG_SHA256, 0),
				 0);
	}
	assert_int_equal(gnutls_x509_crt_export2(p->crt, GNUTLS_X509_FMT_PEM, &d), 0);
	p->crt_pem = datum_to_string(&d);
	assert_int_equal(gnutls_x509_privkey_export2(p->key, GNUTLS_X509_FMT_PEM, &d), 0);
	p->key_pem = datum_to_string(&d);
}

static void pki_release(struct pki *p)
{
	gnutls_x509_crt_deinit(p->crt);
	gnutls_x509_privkey_deinit(p->key);
	free(p->crt_pem);
	free(p->key_pem);
}

/* Session resumption: tls_get() saves the session into / resumes it from here when asked. */
static struct {
	bool save, use, resumed;
	gnutls_datum_t data;
} resume;

/*
 * One HTTPS GET with a GnuTLS client trusting ca (client may be NULL).
 * Returns 0 with *ret filled, or the GnuTLS error that ended the exchange
 * (a failed handshake, or in TLS 1.3 the server's alert on the first read).
 */
static int tls_get(unsigned port, const struct pki *ca, const struct pki *client,
		   const char *priority, const char *extra, struct http_reply *ret,
		   gnutls_alert_description_t *ret_alert)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t session;
	gnutls_datum_t cd, kd, ad;
	size_t len = 0, cap = 4096;
	char *req, *raw;
	int fd, r;

	assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
	ad = (gnutls_datum_t){ (unsigned char *)ca->crt_pem, (unsigned)strlen(ca->crt_pem) };
	assert_int_equal(gnutls_certificate_set_x509_trust_mem(cred, &ad, GNUTLS_X509_FMT_PEM), 1);
	if (client) {
		cd = (gnutls_datum_t){ (unsigned char *)client->crt_pem,
				       (unsigned)strlen(client->crt_pem) };
		kd = (gnutls_datum_t){ (unsigned char *)client->key_pem,
				       (unsigned)strlen(client->key_pem) };
		assert_int_equal(gnutls_certificate_set_x509_key_mem(cred, &cd, &kd,
								     GNUTLS_X509_FMT_PEM),
				 0);
	}
	assert_int_equal(gnutls_init(&session, GNUTLS_CLIENT), 0);
	assert_int_equal(gnutls_priority_set_direct(session, priority ? priority : "NORMAL", NULL),
			 0);
	assert_int_equal(gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred), 0);
	gnutls_session_set_verify_cert(session, "localhost", 0);
	fd = connect_loopback(port);
	gnutls_transport_set_int(session, fd);
	gnutls_handshake_set_timeout(session, 10000);
	if (resume.use && resume.data.data)
		assert_int_equal(gnutls_session_set_data(session, resume.data.data,
							 resume.data.size),
				 0);

	do
		r = gnutls_handshake(session);
	while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0)
		goto out;

	assert_true(
		asprintf(&req,
			 "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s\r\n",
			 extra ? extra : "") > 0);
	r = (int)gnutls_record_send(session, req, strlen(req));
	free(req);
	if (r < 0) {
		/*
		 * TLS 1.3: the client's handshake ends before the server checks the
		 * client certificate, so the request can meet the server's close.
		 * The alert may still be waiting to be read.
		 */
		char drain[256];
		ssize_t n = gnutls_record_recv(session, drain, sizeof(drain));

		if (n == GNUTLS_E_FATAL_ALERT_RECEIVED)
			r = (int)n;
		goto out;
	}
	raw = malloc(cap + 1);
	assert_non_null(raw);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			cap *= 2;
			raw = realloc(raw, cap + 1);
			assert_non_null(raw);
		}
		n = gnutls_record_recv(session, raw + len, cap - len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == 0 || (n == GNUTLS_E_PREMATURE_TERMINATION && len > 0))
			break;
		if (n < 0) {
			free(raw);
			r = (int)n;
			goto out;
		}
		len += (size_t)n;
	}
	parse_reply(raw, len, ret);
	r = 0;
	resume.resumed = gnutls_session_is_resumed(session);
	if (resume.save) {
		gnutls_free(resume.data.data);
		resume.data = (gnutls_datum_t){ NULL, 0 };
		assert_int_equal(gnutls_session_get_data2(session, &resume.data), 0);
	}
out:
	if (ret_alert)
		*ret_alert = r == GNUTLS_E_FATAL_ALERT_RECEIVED ? gnutls_alert_get(session) : 0;
	gnutls_deinit(session);
	gnutls_certificate_free_credentials(cred);
	close(fd);
	return r;
}

/*
 * The server refused the client certificate: with the expected alert, or
 * (TLS 1.3 only) with a reset that overtook the alert after the client's
 * request was already on its way.
 */
static void assert_refused(int r, const gnutls_alert_description_t *alert,
			   gnutls_alert_description_t want)
{
	if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		assert_int_equal(*alert, want);
		return;
	}
	if (r != GNUTLS_E_PUSH_ERROR && r != GNUTLS_E_PULL_ERROR &&
	    r != GNUTLS_E_PREMATURE_TERMINATION)
		fail_msg("expected the certificate to be refused, got %d (%s)", r,
			 gnutls_strerror(r));
}

/* Appends "  key: |" and the PEM, indented by four, as a YAML block scalar. */
static size_t yaml_block(char *out, size_t cap, size_t n, const char *key, const char *pem)
{
	n += (size_t)snprintf(out + n, cap - n, "  %s: |\n", key);
	for (const char *p = pem; *p && n + 8 < cap; p++) {
		if (p == pem || p[-1] == '\n')
			n += (size_t)snprintf(out + n, cap - n, "    ");
		out[n++] = *p;
	}
	out[n] = '\0';
	return n;
}

/* tls_server_config with the server's certificate and key and the client CA, inline. */
static size_t yaml_pem_blocks(char *out, size_t cap, const struct pki *server, const struct pki *ca)
{
	size_t n = (size_t)snprintf(out, cap, "tls_server_config:\n");

	n = yaml_block(out, cap, n, "cert", server->crt_pem);
	n = yaml_block(out, cap, n, "key", server->key_pem);
	n = yaml_block(out, cap, n, "client_ca", ca->crt_pem);
	assert_true(n + 512 < cap);
	return n;
}

static void test_tls(void **state)
{
	struct pki ca, server, client, other_ca, stranger, server_only;
	struct webconfig *w;
	struct http_server *s;
	struct http_reply r;
	gnutls_alert_description_t alert;
	char yaml[16384], h[64];
	unsigned port;
	size_t n;

	pki_make(&ca, "test CA", NULL, NULL, NULL);
	pki_make(&server, "localhost", &ca, GNUTLS_KP_TLS_WWW_SERVER, "localhost");
	pki_make(&client, "scraper", &ca, GNUTLS_KP_TLS_WWW_CLIENT, "scraper.example");
	/* A certificate from the right CA but for servers only: not a client certificate. */
	pki_make(&server_only, "not a client", &ca, GNUTLS_KP_TLS_WWW_SERVER, "scraper.example");
	/* Same name as the real CA (so that clients offer its certificates), another key. */
	pki_make(&other_ca, "test CA", NULL, NULL, NULL);
	pki_make(&stranger, "stranger", &other_ca, GNUTLS_KP_TLS_WWW_CLIENT, "scraper.example");

	n = yaml_pem_blocks(yaml, sizeof(yaml), &server, &ca);
	snprintf(yaml + n, sizeof(yaml) - n,
		 "  client_auth_type: RequireAndVerifyClientCert\n"
		 "  client_allowed_sans: [scraper.example]\n"
		 "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=60\n");
	w = web(yaml, "/");
	port = free_port();
	s = start(port, 0, w);

	/* The right client certificate: 200, over TLS 1.3 and 1.2. */
	assert_int_equal(tls_get(port, &ca, &client, NULL, NULL, &r, NULL), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, BODY);
	assert_string_equal(http_header(&r, "Strict-Transport-Security", h, sizeof(h)),
			    "max-age=60");
	http_reply_release(&r);
	assert_int_equal(tls_get(port, &ca, &client, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL, &r,
				 NULL),
			 0);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);

	/*
	 * A resumed session (TLS 1.3 ticket or TLS 1.2 session) has no Certificate
	 * message: the server checks the certificate it remembers instead.
	 */
	for (int v = 0; v < 2; v++) {
		const char *prio = v ? "NORMAL:-VERS-ALL:+VERS-TLS1.2" : NULL;

		resume.save = true;
		assert_int_equal(tls_get(port, &ca, &client, prio, NULL, &r, NULL), 0);
		http_reply_release(&r);
		resume.save = false;
		resume.use = true;
		assert_int_equal(tls_get(port, &ca, &client, prio, NULL, &r, NULL), 0);
		assert_int_equal(r.status, 200);
		if (!resume.resumed)
			print_message("note: the server did not resume the %s session\n",
				      v ? "TLS 1.2" : "TLS 1.3");
		http_reply_release(&r);
		resume.use = false;
		gnutls_free(resume.data.data);
		resume.data = (gnutls_datum_t){ NULL, 0 };
	}

	/* No certificate: TLS 1.3 "certificate required", TLS 1.2 a handshake failure. */
	assert_refused(tls_get(port, &ca, NULL, NULL, NULL, &r, &alert), &alert,
		       GNUTLS_A_CERTIFICATE_REQUIRED);
	assert_int_equal(tls_get(port, &ca, NULL, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL, &r,
				 &alert),
			 GNUTLS_E_FATAL_ALERT_RECEIVED);
	assert_int_equal(alert, GNUTLS_A_HANDSHAKE_FAILURE);
	/* Another CA's certificate, or one not meant for clients: "bad certificate". */
	assert_refused(tls_get(port, &ca, &stranger, NULL, NULL, &r, &alert), &alert,
		       GNUTLS_A_BAD_CERTIFICATE);
	assert_refused(tls_get(port, &ca, &server_only, NULL, NULL, &r, &alert), &alert,
		       GNUTLS_A_BAD_CERTIFICATE);
	http_server_stop(s);
	webconfig_free(w);

	/* client_allowed_sans that the certificate does not carry. */
	{
		char *at = strstr(yaml, "[scraper.example]");

		assert_non_null(at);
		memcpy(at, "[scraper.exampl_]", 17);
	}
	w = web(yaml, "/");
	port = free_port();
	s = start(port, 0, w);
	assert_refused(tls_get(port, &ca, &client, NULL, NULL, &r, &alert), &alert,
		       GNUTLS_A_BAD_CERTIFICATE);
	http_server_stop(s);
	webconfig_free(w);

	/* VerifyClientCertIfGiven: none is fine, a bad one is not. min_version TLS13. */
	n = yaml_pem_blocks(yaml, sizeof(yaml), &server, &ca);
	snprintf(yaml + n, sizeof(yaml) - n,
		 "  client_auth_type: VerifyClientCertIfGiven\n  min_version: TLS13\n"
		 "basic_auth_users:\n  alice: %s\n",
		 ALICE_HASH);
	w = web(yaml, "/");
	port = free_port();
	s = start(port, 0, w);
	assert_int_equal(tls_get(port, &ca, NULL, NULL, "Authorization: " AUTH_GOOD "\r\n", &r,
				 NULL),
			 0);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);
	assert_int_equal(tls_get(port, &ca, NULL, NULL, NULL, &r, NULL), 0);
	assert_int_equal(r.status, 401);
	http_reply_release(&r);
	assert_int_equal(tls_get(port, &ca, &client, NULL, "Authorization: " AUTH_GOOD "\r\n", &r,
				 NULL),
			 0);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);
	assert_refused(tls_get(port, &ca, &stranger, NULL, NULL, &r, &alert), &alert,
		       GNUTLS_A_BAD_CERTIFICATE);
	/* A TLS 1.2 client is refused. */
	assert_true(tls_get(port, &ca, NULL, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL, &r, NULL) < 0);
	/* Plain HTTP on the TLS port gets no HTTP answer. */
	{
		int fd = connect_loopback(port);
		char buf[64];
		const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

		(void)!send(fd, req, strlen(req), MSG_NOSIGNAL);
		assert_true(recv(fd, buf, sizeof(buf), 0) <= 0 || strncmp(buf, "HTTP/", 5) != 0);
		close(fd);
	}
	http_server_stop(s);
	webconfig_free(w);

	pki_release(&ca);
	pki_release(&server);
	pki_release(&client);
	pki_release(&server_only);
	pki_release(&other_ca);
	pki_release(&stranger);
}

/* ---- content negotiation -------------------------------------------------------------- */

/* What a client's inflate makes of a gzip body, NUL-terminated (caller frees). */
static char *gunzip(const char *in, size_t n)
{
	z_stream z = { 0 };
	size_t cap = 1024;
	char *out = malloc(cap);

	assert_non_null(out);
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap - 1;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.avail_in, 0);
	out[z.total_out] = '\0';
	inflateEnd(&z);
	return out;
}

#define ACCEPT_PROMETHEUS                                                                          \
	"Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;"         \
	"version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
#define CONTENT_TYPE_OM  "application/openmetrics-text; version=1.0.0; charset=utf-8"
#define CONTENT_TYPE_004 "text/plain; version=0.0.4; charset=utf-8"

/* Checks a 200 of /metrics: content type, Vary, encoding, and the body after decoding. */
static void check_exposition(const struct http_reply *r, const char *content_type, bool gzip,
			     const char *body)
{
	char h[256];

	assert_int_equal(r->status, 200);
	assert_string_equal(http_header(r, "Content-Type", h, sizeof(h)), content_type);
	assert_string_equal(http_header(r, "Vary", h, sizeof(h)), "Accept, Accept-Encoding");
	assert_int_equal(atoi(http_header(r, "Content-Length", h, sizeof(h))), (int)r->body_len);
	if (!gzip) {
		assert_null(http_header(r, "Content-Encoding", h, sizeof(h)));
		assert_int_equal(r->body_len, strlen(body));
		assert_memory_equal(r->body, body, r->body_len);
		return;
	}
	assert_string_equal(http_header(r, "Content-Encoding", h, sizeof(h)), "gzip");
	char *plain = gunzip(r->body, r->body_len);
	assert_string_equal(plain, body);
	free(plain);
}

static void test_negotiation(void **state)
{
	unsigned port = free_port();
	struct http_server *s = start(port, 0, NULL);
	struct http_reply r, head;
	char *first;
	size_t first_len;
	char h[256];

	/* No Accept, a browser's, curl's: text 0.0.4, uncompressed. */
	http_get(port, "/metrics", NULL, &r);
	check_exposition(&r, CONTENT_TYPE_004, false, BODY);
	assert_int_equal(atomic_load(&fake.last_fmt), EXPOSITION_TEXT_004);
	http_reply_release(&r);
	http_get(port, "/metrics", "Accept: text/html,*/*;q=0.8\r\n", &r);
	check_exposition(&r, CONTENT_TYPE_004, false, BODY);
	http_reply_release(&r);

	/* Prometheus' own header: OpenMetrics, and the collector was asked for it. */
	http_get(port, "/metrics", ACCEPT_PROMETHEUS, &r);
	check_exposition(&r, CONTENT_TYPE_OM, false, BODY_OM);
	assert_int_equal(atomic_load(&fake.last_fmt), EXPOSITION_OPENMETRICS_100);
	http_reply_release(&r);

	/* gzip: a body any inflate reads back; the same bytes scrape after scrape (reused state).
	 */
	http_get(port, "/metrics", ACCEPT_PROMETHEUS "Accept-Encoding: gzip\r\n", &r);
	check_exposition(&r, CONTENT_TYPE_OM, true, BODY_OM);
	first_len = r.body_len;
	first = malloc(first_len);
	assert_non_null(first);
	memcpy(first, r.body, first_len);
	http_reply_release(&r);
	for (int i = 0; i < 3; i++) {
		http_get(port, "/metrics", ACCEPT_PROMETHEUS "Accept-Encoding: gzip, deflate\r\n",
			 &r);
		check_exposition(&r, CONTENT_TYPE_OM, true, BODY_OM);
		assert_int_equal(r.body_len, first_len);
		assert_memory_equal(r.body, first, first_len);
		http_reply_release(&r);
	}
	http_get(port, "/metrics", "Accept-Encoding: gzip\r\n", &r);
	check_exposition(&r, CONTENT_TYPE_004, true, BODY);
	http_reply_release(&r);

	/* HEAD: the headers GET would send, Content-Length of the gzip body included; no body. */
	http_request(port, "HEAD", "/metrics", ACCEPT_PROMETHEUS "Accept-Encoding: gzip\r\n",
		     &head);
	assert_int_equal(head.status, 200);
	assert_int_equal(head.body_len, 0);
	assert_string_equal(http_header(&head, "Content-Type", h, sizeof(h)), CONTENT_TYPE_OM);
	assert_string_equal(http_header(&head, "Content-Encoding", h, sizeof(h)), "gzip");
	assert_int_equal(atoi(http_header(&head, "Content-Length", h, sizeof(h))), (int)first_len);
	http_reply_release(&head);
	free(first);

	/* gzip refused or not preferred: identity. */
	http_get(port, "/metrics", "Accept-Encoding: gzip;q=0, identity\r\n", &r);
	check_exposition(&r, CONTENT_TYPE_004, false, BODY);
	http_reply_release(&r);
	http_get(port, "/metrics", "Accept-Encoding: gzip;q=0.5, identity;q=1\r\n", &r);
	check_exposition(&r, CONTENT_TYPE_004, false, BODY);
	http_reply_release(&r);
	/* Garbage headers: the defaults, never an error. */
	http_get(port, "/metrics", "Accept: ;;\"\r\nAccept-Encoding: ,;q=x\r\n", &r);
	check_exposition(&r, CONTENT_TYPE_004, false, BODY);
	http_reply_release(&r);

	http_server_stop(s);
}

/* collect[]/exclude[]: the mask handed to collect(), or a one-line 400. */
static void test_collect_params(void **state)
{
	static const struct {
		const char *path;
		int status;
		uint32_t mask;      /* for 200 */
		const char *reason; /* for 400, the whole body */
	} cases[] = {
		{ "/metrics", 200, 0x3, NULL },
		{ "/metrics?collect[]=alpha", 200, 0x1, NULL },
		{ "/metrics?collect%5B%5D=beta&collect%5B%5D=alpha", 200, 0x3, NULL },
		{ "/metrics?exclude[]=alpha", 200, 0x2, NULL },
		{ "/metrics?other=1&exclude[]=beta", 200, 0x1, NULL },
		{ "/metrics?collect[]=alpha&exclude[]=beta", 400, 0,
		  "collect[] and exclude[] cannot be combined\n" },
		{ "/metrics?collect[]=delta", 400, 0,
		  "collect[]: unknown collector \"delta\" (enabled: alpha, beta)\n" },
		{ "/metrics?exclude[]=gamma", 400, 0,
		  "exclude[]: disabled collector \"gamma\" (enabled: alpha, beta)\n" },
		/* A client's newline never splits the one-line reason. */
		{ "/metrics?collect[]=a%0Ab%0D", 400, 0,
		  "collect[]: unknown collector \"a?b?\" (enabled: alpha, beta)\n" },
		{ "/metrics?collect[]=", 400, 0,
		  "collect[]: unknown collector \"\" (enabled: alpha, beta)\n" },
	};
	unsigned port = free_port();
	struct http_server *s = start(port, 0, NULL);
	struct http_reply r;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned calls = atomic_load(&fake.calls);

		atomic_store(&fake.last_collectors, 0xdead);
		http_get(port, cases[i].path, NULL, &r);
		if (r.status != cases[i].status)
			fail_msg("%s: HTTP %d, expected %d", cases[i].path, r.status,
				 cases[i].status);
		if (cases[i].status == 200) {
			assert_int_equal(atomic_load(&fake.last_collectors), cases[i].mask);
		} else {
			/* Refused before collecting anything. */
			assert_int_equal(atomic_load(&fake.calls), calls);
			assert_string_equal(r.body, cases[i].reason);
		}
		http_reply_release(&r);
	}

	/* promhttp's counters: every answer above by its code; 500 and 503 at zero. */
	struct outbuf out = { 0 };
	struct family_writer w = family_writer_init(&out, EXPOSITION_TEXT_004);
	size_t ok = 0, bad = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cases[i].status == 200 ? ok++ : bad++;
	http_server_write_metrics(s, &w);
	outbuf_putc(&out, '\0');
	char want[128];

	snprintf(want, sizeof(want), "promhttp_metric_handler_requests_total{code=\"200\"} %zu\n",
		 ok);
	assert_non_null(strstr(out.data, want));
	snprintf(want, sizeof(want), "promhttp_metric_handler_requests_total{code=\"400\"} %zu\n",
		 bad);
	assert_non_null(strstr(out.data, want));
	assert_non_null(
		strstr(out.data, "promhttp_metric_handler_requests_total{code=\"500\"} 0\n"));
	assert_non_null(
		strstr(out.data, "promhttp_metric_handler_requests_total{code=\"503\"} 0\n"));
	assert_non_null(strstr(out.data, "promhttp_metric_handler_requests_in_flight 0\n"));
	assert_non_null(
		strstr(out.data, "# TYPE promhttp_metric_handler_requests_total counter\n"));
	outbuf_release(&out);
	http_server_stop(s);
}

int main(void)
{
	/* As in the daemon: a peer closing first is an error return, not a fatal signal. */
	signal(SIGPIPE, SIG_IGN);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max_requests),
		cmocka_unit_test(test_request_size_limit),
		cmocka_unit_test(test_basic_auth),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_negotiation),
		cmocka_unit_test(test_collect_params),
	};

	/* The server's info lines would drown cmocka's output. */
	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
