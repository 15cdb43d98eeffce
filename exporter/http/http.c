/* SPDX-License-Identifier: MIT */
/*
 * The HTTP front end on libmicrohttpd.
 *
 * We bind every listen socket ourselves (so that an error names the address
 * the operator wrote, and so that ":port" means dual-stack IPv6+IPv4) and give
 * each one to its own MHD daemon with a thread per connection: a slow scrape,
 * a bcrypt check or a slow client holds up its own connection only, and
 * --web.max-requests is what bounds the concurrent collections. Exposition
 * buffers (and their gzip state) come from a small pool, so a steady scraper
 * reuses the same memory. The format (text 0.0.4 or OpenMetrics) and gzip
 * are negotiated per request (negotiate.h).
 *
 * The web config adds TLS (GnuTLS through MHD; client certificates checked
 * during the handshake), basic auth (basicauth.c), extra headers and a rate
 * limit, all in front of every endpoint, as in the exporter-toolkit.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "http/http.h"
#include "http/internal.h"
#include "log/log.h"
#include "util/clock.h"

/* rate.Limiter.Allow(): take a token if there is one. */
static bool rate_limiter_allow(struct rate_limiter *rl)
{
	uint64_t now;
	bool ok;

	if (atomic_load_explicit(&rl->interval_usec, memory_order_relaxed) == 0)
		return true;
	pthread_mutex_lock(&rl->lock);
	now = monotonic_usec();
	/* Under the lock: a reload changes interval and burst together. */
	if (rl->interval_usec == 0) {
		pthread_mutex_unlock(&rl->lock);
		return true;
	}
	rl->tokens += (double)(now - rl->last_usec) / (double)rl->interval_usec;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
	rl->last_usec = now;
	ok = rl->tokens >= 1.0;
	if (ok)
		rl->tokens -= 1.0;
	pthread_mutex_unlock(&rl->lock);
	return ok;
}

static enum MHD_Result route(struct http_listener *l, struct MHD_Connection *c, const char *url,
			     const char *method);

static enum MHD_Result http_handle_request(void *cls, struct MHD_Connection *c, const char *url,
					   const char *method, const char *version,
					   const char *upload_data, size_t *upload_data_size,
					   void **con_cls)
{
	struct http_listener *l = cls;
	struct http_server *s = l->server;
	struct web_gen *g;
	const struct webconfig *w;
	enum MHD_Result ret;
	bool excluded;

	/* Counted until http_request_completed(), so that a stop can wait for it. */
	if (!*con_cls) {
		*con_cls = s;
		atomic_fetch_add(&s->active, 1);
		/*
		 * GET and HEAD are answered on the next call, once MHD has read the
		 * whole request: an answer queued on this first call, before MHD
		 * knows whether a body follows, makes it close the connection after
		 * the answer, and the scraper would pay a new TCP connection (and we
		 * a new thread) on every scrape instead of keeping one alive.
		 */
		if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
		    strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
			return MHD_YES;
	}
	/* A body on a GET means nothing here: read and dropped (the timeout bounds it). */
	if (*upload_data_size != 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}

	/* The config as the files say now (re-read if they changed), for this request. */
	g = http_web_acquire(s);
	w = g ? g->web : NULL;
	excluded = webconfig_auth_excluded(w, url);
	/* Closing the connection is all a client without a valid certificate gets. */
	if (w && w->tls && !excluded && !http_tls_client_ok(w, c))
		ret = MHD_NO;
	else if (!rate_limiter_allow(&s->limiter))
		ret = http_reply_text(s, c, MHD_HTTP_TOO_MANY_REQUESTS, "Too Many Requests\n");
	/* Every endpoint but auth_excluded_paths, as the toolkit wraps the whole handler. */
	else if (g && g->auth && !excluded &&
		 !basicauth_check(g->auth,
				  MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							      MHD_HTTP_HEADER_AUTHORIZATION)))
		ret = http_reply_text(s, c, MHD_HTTP_UNAUTHORIZED, "Unauthorized\n");
	else
		ret = route(l, c, url, method);
	web_gen_unref(g);
	return ret;
}

static enum MHD_Result route(struct http_listener *l, struct MHD_Connection *c, const char *url,
			     const char *method)
{
	struct http_server *s = l->server;

	/* Other methods are refused on the first call (and the connection closed). */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return http_reply_text(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed\n");

	if (strcmp(url, s->telemetry_path) == 0)
		return http_reply_metrics(l, c);
	if (strcmp(url, "/") == 0)
		return http_reply(s, c, MHD_HTTP_OK, CONTENT_TYPE_HTML, s->landing_page,
				  s->landing_page_len, MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/-/healthy") == 0)
		return http_reply_text(s, c, MHD_HTTP_OK, "Healthy\n");
	if (strcmp(url, "/-/ready") == 0) {
		if (!s->ready || s->ready(s->userdata))
			return http_reply_text(s, c, MHD_HTTP_OK, "Ready\n");
		return http_reply_text(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, "Not ready\n");
	}
	return http_reply_text(s, c, MHD_HTTP_NOT_FOUND, "Not Found\n");
}

static void http_request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
				   enum MHD_RequestTerminationCode toe)
{
	struct http_listener *l = cls;

	if (*con_cls) {
		atomic_fetch_sub(&l->server->active, 1);
		*con_cls = NULL;
	}
}

/* MHD's messages: mostly per-connection noise a client can cause at will, so debug level. */
_printf_(2, 0) static void http_log_mhd(void *cls, const char *fmt, va_list ap)
{
	struct http_listener *l = cls;
	char text[512];
	size_t n;

	vsnprintf(text, sizeof(text), fmt, ap);
	n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = '\0';
	log_msg(atomic_load(&l->starting) ? LOG_LEVEL_ERROR : LOG_LEVEL_DEBUG, text,
		"component=libmicrohttpd address=%s", l->address);
}

/*
 * Closes fd unless MHD already did. A failing MHD_start_daemon() closes the
 * listen socket on some paths and not on others; comparing the inode tells
 * whether the number still names our socket (a reused number would name a
 * different file), so we neither leak it nor close someone else's.
 */
static void close_if_still_ours(int fd, const struct stat *ours)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && st.st_dev == ours->st_dev && st.st_ino == ours->st_ino)
		safe_close(fd);
}

static int listener_start(struct http_listener *l, char *errbuf, size_t errlen)
{
	const struct webconfig *w = l->server->web_gen ? l->server->web_gen->web : NULL;
	/* ITC: MHD_quiesce_daemon() (http_server_drain()) needs it with internal threads. */
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls[5];
	size_t n_tls = 0;
	struct stat st;
	int saved;

	/*
	 * MHD keeps these pointers; the first web config outlives the daemon. The
	 * certificate comes from a callback, per connection, so that a rotated one
	 * is served without a restart.
	 */
	if (w && w->tls) {
		flags |= MHD_USE_TLS;
		gnutls_certificate_retrieve_function2 *cb = http_tls_certificate;
		void *cb_ptr;

		/* MHD takes the function through its void * slot; ISO C has no cast for that. */
		_Static_assert(sizeof(cb) == sizeof(cb_ptr), "function and object pointers differ");
		memcpy(&cb_ptr, &cb, sizeof(cb_ptr));
		tls[n_tls++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_CERT_CALLBACK, 0, cb_ptr };
		tls[n_tls++] =
			(struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, w->priorities };
		if (w->client_ca_pem)
			tls[n_tls++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0,
								w->client_ca_pem };
	}
	tls[n_tls] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

	if (fstat(l->fd, &st) < 0)
		return http_set_error(errbuf, errlen, -errno, "cannot serve on %s: %s", l->address,
				      strerror(errno));

	atomic_store(&l->starting, true);
	errno = 0;
	l->daemon =
		MHD_start_daemon(flags, 0, NULL, NULL, http_handle_request, l,
				 /* first, so that MHD never prints on its own */
				 MHD_OPTION_EXTERNAL_LOGGER, http_log_mhd, l,
				 MHD_OPTION_LISTEN_SOCKET, l->fd, MHD_OPTION_CONNECTION_LIMIT,
				 HTTP_CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				 HTTP_PER_IP_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
				 HTTP_CONNECTION_TIMEOUT_SEC, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
				 (size_t)HTTP_CONNECTION_MEMORY_LIMIT, MHD_OPTION_NOTIFY_CONNECTION,
				 http_notify_connection, l, MHD_OPTION_NOTIFY_COMPLETED,
				 http_request_completed, l, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
	saved = errno;
	atomic_store(&l->starting, false);
	if (!l->daemon) {
		close_if_still_ours(l->fd, &st);
		l->fd = -1;
		saved = saved > 0 ? saved : EIO;
		return http_set_error(errbuf, errlen, -saved,
				      "cannot start the HTTP server on %s: %s", l->address,
				      strerror(saved));
	}
	l->fd = -1; /* MHD_stop_daemon() closes it */
	log_info("listening", "address=%s", l->address);
	return 0;
}

static void html_escape_put(struct outbuf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			outbuf_puts(b, "&amp;");
			break;
		case '<':
			outbuf_puts(b, "&lt;");
			break;
		case '>':
			outbuf_puts(b, "&gt;");
			break;
		case '"':
			outbuf_puts(b, "&quot;");
			break;
		case '\'':
			outbuf_puts(b, "&#39;");
			break;
		default:
			outbuf_putc(b, *s);
		}
	}
}

/* Links are relative, so that the page also works behind a reverse proxy's path prefix. */
static int landing_page_build(struct http_server *s)
{
	struct outbuf b = { 0 };

	outbuf_puts(&b, "<!DOCTYPE html>\n"
			"<html lang=\"en\">\n"
			"<head><meta charset=\"utf-8\"><title>kvmstats_exporter</title></head>\n"
			"<body>\n"
			"<h1>kvmstats_exporter</h1>\n"
			"<p>Prometheus exporter for KVM binary statistics.</p>\n"
			"<ul>\n"
			"<li><a href=\".");
	html_escape_put(&b, s->telemetry_path);
	outbuf_puts(&b, "\">Metrics</a></li>\n"
			"<li><a href=\"./-/healthy\">Health</a></li>\n"
			"<li><a href=\"./-/ready\">Readiness</a></li>\n"
			"</ul>\n"
			"<p>Version " PROJECT_VERSION " (revision " PROJECT_REVISION ")</p>\n"
			"</body>\n"
			"</html>\n");
	if (b.failed) {
		outbuf_release(&b);
		return -ENOMEM;
	}
	s->landing_page = b.data;
	s->landing_page_len = b.len;
	return 0;
}

/* What the web config turned on, once at start. */
static void web_config_log(const struct webconfig *w)
{
	if (!w)
		return;
	if (w->tls)
		log_info("TLS is enabled", "client_auth_type=%s min_version=%s max_version=%s",
			 webconfig_client_auth_to_string(w->client_auth),
			 webconfig_tls_version_to_string(w->min_version),
			 webconfig_tls_version_to_string(w->max_version));
	else
		log_info("TLS is disabled", "http2=false");
	if (w->n_users > 0)
		log_info("basic authentication is enabled", "users=%zu", w->n_users);
	if (w->n_users > 0 && !w->tls)
		log_warn("basic authentication without TLS sends passwords in clear text",
			 "users=%zu", w->n_users);
	if (w->http2_requested)
		log_info("HTTP/2 is not supported; serving HTTP/1.1",
			 "key=http_server_config.http2");
	if (w->rate_limit_interval_usec > 0)
		log_info("rate limit is enabled", "burst=%u interval_usec=%" PRIu64,
			 w->rate_limit_burst, w->rate_limit_interval_usec);
}

int http_config_load_web_config(struct http_config *cfg, const char *path, char *err, size_t errlen)
{
	struct webconfig *w;
	int r;

	char *copy = strdup(path);

	if (!copy)
		return http_set_error(err, errlen, -ENOMEM, "out of memory");
	r = webconfig_load(path, &w, err, errlen);
	if (r < 0) {
		free(copy);
		return r;
	}
	webconfig_free(cfg->web);
	cfg->web = w;
	free(cfg->web_config_path);
	cfg->web_config_path = copy;
	return 0;
}

void http_config_release(struct http_config *cfg)
{
	if (!cfg)
		return;
	cfg->web = webconfig_free(cfg->web);
	free(cfg->web_config_path);
	cfg->web_config_path = NULL;
}

int http_server_start(const struct http_config *cfg, struct http_server **ret, char *errbuf,
		      size_t errlen)
{
	struct http_server *s;
	int r;

	if (!cfg || !cfg->collect || !cfg->telemetry_path || cfg->telemetry_path[0] != '/' ||
	    (cfg->n_listen == 0 && cfg->n_listen_fds == 0)) {
		if (cfg)
			http_close_fds(cfg->listen_fds, 0, cfg->n_listen_fds);
		return http_set_error(errbuf, errlen, -EINVAL, "invalid HTTP server configuration");
	}

	s = calloc(1, sizeof(*s));
	if (!s) {
		http_close_fds(cfg->listen_fds, 0, cfg->n_listen_fds);
		return http_set_error(errbuf, errlen, -ENOMEM, "out of memory");
	}
	s->collect = cfg->collect;
	s->collectors = cfg->collectors;
	s->n_collectors = cfg->n_collectors;
	s->collectors_enabled = cfg->collectors_enabled;
	s->ready = cfg->ready;
	s->userdata = cfg->userdata;
	s->max_requests = cfg->max_requests;
	pthread_mutex_init(&s->pool_lock, NULL);
	pthread_mutex_init(&s->limiter.lock, NULL);
	if (cfg->web) {
		s->limiter.interval_usec = cfg->web->rate_limit_interval_usec;
		s->limiter.burst = cfg->web->rate_limit_burst;
		s->limiter.tokens = cfg->web->rate_limit_burst;
		s->limiter.last_usec = monotonic_usec();
	}
	r = http_web_init(s, cfg->web, cfg->web_config_path, errbuf, errlen);
	if (r < 0) {
		http_close_fds(cfg->listen_fds, 0, cfg->n_listen_fds);
		goto fail;
	}
	s->telemetry_path = strdup(cfg->telemetry_path);
	if (!s->telemetry_path || landing_page_build(s) < 0) {
		http_close_fds(cfg->listen_fds, 0, cfg->n_listen_fds);
		r = http_set_error(errbuf, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	web_config_log(cfg->web);

	if (cfg->n_listen_fds > 0) {
		r = http_adopt_listen_fds(s, cfg->listen_fds, cfg->n_listen_fds, errbuf, errlen);
		if (r < 0)
			goto fail;
	}
	/* Bind everything first: a bad address fails before anything serves. */
	for (size_t i = 0; cfg->n_listen_fds == 0 && i < cfg->n_listen; i++) {
		_cleanup_free_ char *host = NULL;
		unsigned port;

		r = http_parse_listen_address(cfg->listen[i], &host, &port);
		if (r < 0) {
			http_set_error(errbuf, errlen, r,
				       "invalid listen address \"%s\": expected host:port, :port "
				       "or [ipv6]:port",
				       cfg->listen[i]);
			goto fail;
		}
		if (host)
			r = http_bind_host(s, cfg->listen[i], host, port, errbuf, errlen);
		else
			r = http_bind_any(s, cfg->listen[i], port, errbuf, errlen);
		if (r < 0)
			goto fail;
	}

	/* The listener array no longer moves: its elements can be MHD closures. */
	for (size_t i = 0; i < s->n_listeners; i++) {
		r = listener_start(&s->listeners[i], errbuf, errlen);
		if (r < 0)
			goto fail;
	}

	*ret = s;
	return 0;

fail:
	http_server_stop(s);
	return r;
}

void http_server_drain(struct http_server *s, unsigned timeout_msec)
{
	const struct timespec tick = { .tv_nsec = 10 * 1000 * 1000 };

	if (!s)
		return;
	for (size_t i = 0; i < s->n_listeners; i++) {
		struct http_listener *l = &s->listeners[i];
		MHD_socket fd;

		if (!l->daemon)
			continue;
		/* The listen socket is ours again; closed after MHD_stop_daemon(). */
		fd = MHD_quiesce_daemon(l->daemon);
		if (fd != MHD_INVALID_SOCKET)
			l->fd = fd;
	}
	for (unsigned waited = 0; atomic_load(&s->active) > 0 && waited < timeout_msec;
	     waited += 10)
		nanosleep(&tick, NULL);
	if (atomic_load(&s->active) > 0)
		log_warn("stopping with requests still in flight", "requests=%u",
			 atomic_load(&s->active));
}

struct http_server *http_server_stop(struct http_server *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n_listeners; i++) {
		struct http_listener *l = &s->listeners[i];

		/* Joins the polling thread and closes every connection and the listen socket. */
		if (l->daemon)
			MHD_stop_daemon(l->daemon);
		safe_close(l->fd);
	}
	for (size_t i = 0; i < s->n_pool; i++)
		http_scrape_buffers_free(s->pool[i]);
	pthread_mutex_destroy(&s->pool_lock);
	pthread_mutex_destroy(&s->limiter.lock);
	http_web_release(s);
	free(s->listeners);
	free(s->landing_page);
	free(s->telemetry_path);
	free(s);
	return NULL;
}
