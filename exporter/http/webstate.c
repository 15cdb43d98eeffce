/* SPDX-License-Identifier: MIT */
/*
 * The web config while the server runs. As the exporter-toolkit re-reads
 * its file per request, so that a rotated certificate or a new password
 * takes effect without a restart, every request first checks whether the
 * config file or the certificate, key and client CA files it names have
 * changed (one stat(2) each). A changed set is loaded whole into a new
 * generation that replaces the current one; a broken edit keeps the last
 * good config and is logged once. TLS itself cannot be turned on or off,
 * and its protocol versions, cipher suites, curves and client CA are fixed
 * in the running TLS layer: a change there is logged as needing a restart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/internal.h"
#include "log/log.h"

static void web_gen_free(struct web_gen *g)
{
	for (unsigned i = 0; i < g->n_pcerts; i++)
		gnutls_pcert_deinit(&g->pcerts[i]);
	if (g->key)
		gnutls_privkey_deinit(g->key);
	basicauth_free(g->auth);
	if (g->owns_web)
		webconfig_free(g->web);
	free(g);
}

struct web_gen *web_gen_ref(struct web_gen *g)
{
	if (g)
		atomic_fetch_add(&g->refs, 1);
	return g;
}

void web_gen_unref(struct web_gen *g)
{
	if (g && atomic_fetch_sub(&g->refs, 1) == 1)
		web_gen_free(g);
}

/* The chain and the key, parsed once for the certificate callback. */
static int web_gen_load_tls(struct web_gen *g, char *err, size_t errlen)
{
	gnutls_datum_t cert = { (unsigned char *)g->web->cert_pem,
				(unsigned)strlen(g->web->cert_pem) };
	gnutls_datum_t key = { (unsigned char *)g->web->key_pem,
			       (unsigned)strlen(g->web->key_pem) };
	unsigned n = WEB_GEN_CHAIN_MAX;
	int r;

	r = gnutls_pcert_list_import_x509_raw(g->pcerts, &n, &cert, GNUTLS_X509_FMT_PEM, 0);
	if (r < 0)
		return snprintf(err, errlen, "certificate chain: %s", gnutls_strerror(r)), -EINVAL;
	g->n_pcerts = n;
	r = gnutls_privkey_init(&g->key);
	if (r >= 0)
		r = gnutls_privkey_import_x509_raw(g->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0)
		return snprintf(err, errlen, "private key: %s", gnutls_strerror(r)), -EINVAL;
	return 0;
}

/* A generation for web (taken in every case when owns is true). NULL with the reason in err. */
static struct web_gen *web_gen_new(struct webconfig *web, bool owns, char *err, size_t errlen)
{
	struct web_gen *g = calloc(1, sizeof(*g));

	if (!g) {
		if (owns)
			webconfig_free(web);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&g->refs, 1);
	g->web = web;
	g->owns_web = owns;
	if (web->n_users > 0 && basicauth_new(web, &g->auth) < 0) {
		snprintf(err, errlen, "out of memory");
		web_gen_free(g);
		return NULL;
	}
	if (web->tls && web_gen_load_tls(g, err, errlen) < 0) {
		web_gen_free(g);
		return NULL;
	}
	return g;
}

static void stamp(const char *path, struct web_stamp *ret)
{
	struct stat st;

	*ret = (struct web_stamp){ 0 };
	if (!path)
		return;
	if (stat(path, &st) < 0) {
		ret->missing = true;
		return;
	}
	*ret = (struct web_stamp){ .dev = st.st_dev,
				   .ino = st.st_ino,
				   .size = st.st_size,
				   .mtime = st.st_mtim,
				   .ctime = st.st_ctim };
}

static bool stamp_equal(const struct web_stamp *a, const struct web_stamp *b)
{
	return a->missing == b->missing && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Stamps of the config file and the TLS files it named. */
static void stamps_take(const char *path, const struct webconfig *w, struct web_stamp *ret)
{
	stamp(path, &ret[0]);
	for (size_t i = 0; i < 3; i++)
		stamp(w ? w->tls_files[i] : NULL, &ret[1 + i]);
}

static void mark_loaded(struct http_server *s, bool ok)
{
	atomic_store(&s->web_last_ok, ok);
	if (ok)
		atomic_store(&s->web_last_ok_time, (uint64_t)time(NULL));
}

int http_web_init(struct http_server *s, struct webconfig *web, const char *path, char *err,
		  size_t errlen)
{
	pthread_mutex_init(&s->web_lock, NULL);
	if (!web)
		return 0;
	s->web_gen = web_gen_new(web, false, err, errlen);
	if (!s->web_gen)
		return -EINVAL;
	s->web_tls = web->tls;
	if (path) {
		s->web_path = strdup(path);
		if (!s->web_path)
			return snprintf(err, errlen, "out of memory"), -ENOMEM;
		stamps_take(path, web, s->web_stamps);
	}
	mark_loaded(s, true);
	return 0;
}

void http_web_release(struct http_server *s)
{
	web_gen_unref(s->web_gen);
	s->web_gen = NULL;
	free(s->web_path);
	s->web_path = NULL;
	pthread_mutex_destroy(&s->web_lock);
}

/* Settings the running TLS layer holds; a change needs a restart. */
static void warn_fixed_tls(const struct webconfig *old, const struct webconfig *new)
{
	bool prio = !old->priorities != !new->priorities ||
		    (old->priorities && strcmp(old->priorities, new->priorities) != 0);
	bool ca = !old->client_ca_pem != !new->client_ca_pem ||
		  (old->client_ca_pem && strcmp(old->client_ca_pem, new->client_ca_pem) != 0);

	if (prio || ca)
		log_warn("web config: a TLS setting changed that takes effect only after a restart",
			 "setting=%s",
			 prio && ca ? "versions/cipher_suites/curves,client_ca"
			 : prio     ? "versions/cipher_suites/curves"
				    : "client_ca");
}

/* Loads the changed files; the lock is held. */
static void reload(struct http_server *s, const struct web_stamp *now)
{
	struct webconfig *w = NULL;
	struct web_gen *g, *old;
	char err[512];

	/* Whatever happens, this version of the files is dealt with: one line per edit. */
	memcpy(s->web_stamps, now, sizeof(s->web_stamps));
	if (webconfig_load(s->web_path, &w, err, sizeof(err)) < 0) {
		log_warn("web config not reloaded, keeping the last good one", "err=\"%s\"", err);
		mark_loaded(s, false);
		return;
	}
	/* Its TLS files may differ from the ones stamped: watch the new ones. */
	stamps_take(s->web_path, w, s->web_stamps);
	if (w->tls != s->web_tls) {
		log_warn("web config not reloaded, keeping the last good one",
			 "err=\"turning TLS %s needs a restart\"", w->tls ? "on" : "off");
		webconfig_free(w);
		mark_loaded(s, false);
		return;
	}
	if (w->tls)
		warn_fixed_tls(s->web_gen->web, w);
	g = web_gen_new(w, true, err, sizeof(err));
	if (!g) {
		log_warn("web config not reloaded, keeping the last good one", "err=\"%s\"", err);
		mark_loaded(s, false);
		return;
	}
	old = s->web_gen;
	s->web_gen = g;
	web_gen_unref(old);
	/* The rate limit is the server's: new parameters, tokens kept within the new burst. */
	pthread_mutex_lock(&s->limiter.lock);
	s->limiter.interval_usec = w->rate_limit_interval_usec;
	s->limiter.burst = w->rate_limit_burst;
	if (s->limiter.tokens > w->rate_limit_burst)
		s->limiter.tokens = w->rate_limit_burst;
	pthread_mutex_unlock(&s->limiter.lock);
	mark_loaded(s, true);
	log_info("web config reloaded", "path=\"%s\" users=%zu tls=%s", s->web_path, w->n_users,
		 w->tls ? "true" : "false");
}

struct web_gen *http_web_current(struct http_server *s)
{
	struct web_gen *g;

	pthread_mutex_lock(&s->web_lock);
	g = web_gen_ref(s->web_gen);
	pthread_mutex_unlock(&s->web_lock);
	return g;
}

struct web_gen *http_web_acquire(struct http_server *s)
{
	struct web_stamp now[4];
	struct web_gen *g;

	pthread_mutex_lock(&s->web_lock);
	if (s->web_path && s->web_gen) {
		stamps_take(s->web_path, s->web_gen->web, now);
		for (size_t i = 0; i < 4; i++)
			if (!stamp_equal(&now[i], &s->web_stamps[i])) {
				reload(s, now);
				break;
			}
	}
	g = web_gen_ref(s->web_gen);
	pthread_mutex_unlock(&s->web_lock);
	return g;
}
