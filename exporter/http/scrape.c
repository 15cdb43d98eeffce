/* SPDX-License-Identifier: MIT */
/*
 * The /metrics answer: a pool of exposition buffers (and their gzip state),
 * so that a steady scraper reuses the same memory; the format and gzip
 * negotiated per request (negotiate.h); the --web.max-requests bound.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expo/family.h"
#include "http/collect_filter.h"
#include "http/http.h"
#include "http/internal.h"
#include "http/negotiate.h"
#include "log/log.h"

struct scrape_buffers *http_scrape_buffers_free(struct scrape_buffers *b)
{
	if (!b)
		return NULL;
	outbuf_release(&b->text);
	outbuf_release(&b->gzip);
	gzip_encoder_free(b->encoder);
	free(b);
	return NULL;
}

static struct scrape_buffers *exposition_take(struct http_server *s)
{
	struct scrape_buffers *b = NULL;

	pthread_mutex_lock(&s->pool_lock);
	if (s->n_pool > 0)
		b = s->pool[--s->n_pool];
	pthread_mutex_unlock(&s->pool_lock);
	if (!b && (b = calloc(1, sizeof(*b))))
		b->server = s;
	return b;
}

/* Last in, first out: a lone scraper gets the same buffer, at its grown size, every time. */
static void exposition_give(struct http_server *s, struct scrape_buffers *b)
{
	pthread_mutex_lock(&s->pool_lock);
	if (s->n_pool < EXPOSITION_POOL_MAX) {
		s->pool[s->n_pool++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&s->pool_lock);
	http_scrape_buffers_free(b);
}

/* Compresses b->text into b->gzip. 0 or -errno. */
static int exposition_gzip(struct scrape_buffers *b)
{
	int r;

	if (!b->encoder) {
		r = gzip_encoder_new(&b->encoder);
		if (r < 0)
			return r;
	}
	return gzip_encode(b->encoder, b->text.data, b->text.len, &b->gzip);
}

/* MHD is done with a response's body: its buffers go back to the pool. */
static void exposition_sent(void *cls)
{
	struct scrape_buffers *b = cls;

	exposition_give(b->server, b);
}

/*
 * 200 with the exposition, sent from b itself rather than a copy (a copy was
 * a fresh megabyte per scrape at 100 VMs, ten at 1000, and that much more
 * RSS); b goes back to the pool when MHD frees the response.
 */
static enum MHD_Result reply_exposition(struct http_server *s, struct MHD_Connection *c,
					enum exposition_format fmt, struct scrape_buffers *b,
					bool gzip)
{
	const struct outbuf *body = gzip ? &b->gzip : &b->text;
	struct MHD_Response *resp;
	bool ok;

	resp = MHD_create_response_from_buffer_with_free_callback_cls(
		body->len, body->len ? body->data : (void *)(uintptr_t) "", exposition_sent, b);
	if (!resp) {
		exposition_give(s, b);
		return MHD_NO;
	}
	ok = http_response_headers(s, resp, MHD_HTTP_OK, exposition_content_type(fmt)) &&
	     /* The body depends on both request headers: a cache must key on both. */
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept, Accept-Encoding") ==
		     MHD_YES &&
	     (!gzip ||
	      MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip") == MHD_YES);
	if (!ok) {
		MHD_destroy_response(resp); /* gives b back */
		return MHD_NO;
	}
	return http_response_queue(c, MHD_HTTP_OK, resp);
}

static enum MHD_Result take_collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
					const char *value)
{
	(void)kind;
	collect_filter_arg(cls, key, value);
	return MHD_YES;
}

/* The collectors the request's collect[]/exclude[] ask for; -EINVAL with the reason in f->bad. */
static int request_collectors(struct http_server *s, struct MHD_Connection *c,
			      struct collect_filter *f, uint32_t *ret_mask)
{
	if (s->n_collectors == 0) {
		*ret_mask = UINT32_MAX;
		return 0;
	}
	collect_filter_init(f, s->collectors, s->n_collectors, s->collectors_enabled);
	(void)MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, take_collect_arg, f);
	return collect_filter_mask(f, ret_mask);
}

/* The status codes promhttp_metric_handler_requests_total counts, by index. */
static const unsigned counted_codes[HTTP_COUNTED_CODES] = { 200, 400, 500, 503 };

static void count_code(struct http_server *s, unsigned code)
{
	for (size_t i = 0; i < HTTP_COUNTED_CODES; i++)
		if (counted_codes[i] == code)
			atomic_fetch_add_explicit(&s->requests_by_code[i], 1, memory_order_relaxed);
}

void http_server_write_metrics(void *userdata, struct family_writer *w)
{
	struct http_server *s = userdata;

	if (s->web_path) {
		family_write_u64(w, "kvmstats_exporter_web_config_last_reload_successful",
				 FAMILY_GAUGE,
				 "Whether the last load of --web.config.file succeeded (a failed "
				 "one keeps the last good config).",
				 atomic_load(&s->web_last_ok) ? 1 : 0);
		family_write_u64(
			w, "kvmstats_exporter_web_config_last_reload_success_timestamp_seconds",
			FAMILY_GAUGE, "When --web.config.file was last loaded successfully.",
			atomic_load(&s->web_last_ok_time));
	}

	family_write_u64(w, "promhttp_metric_handler_requests_in_flight", FAMILY_GAUGE,
			 "Scrapes of the telemetry path being answered now, this one included.",
			 atomic_load(&s->in_flight));
	family_begin(w, "promhttp_metric_handler_requests", FAMILY_COUNTER, NULL,
		     "Scrapes of the telemetry path answered, by HTTP status code.");
	for (size_t i = 0; i < HTTP_COUNTED_CODES; i++) {
		uint64_t n = atomic_load_explicit(&s->requests_by_code[i], memory_order_relaxed);

		/* 200, 500 and 503 always, as promhttp; 400 once a request was refused. */
		if (counted_codes[i] == 400 && n == 0)
			continue;
		family_sample(w, NULL);
		family_label_u64(w, "code", counted_codes[i]);
		family_value_u64(w, n);
	}
}

static enum MHD_Result reply_metrics(struct http_listener *l, struct MHD_Connection *c,
				     unsigned *ret_code);

enum MHD_Result http_reply_metrics(struct http_listener *l, struct MHD_Connection *c)
{
	unsigned code = 0;
	enum MHD_Result ret = reply_metrics(l, c, &code);

	count_code(l->server, code);
	return ret;
}

static enum MHD_Result reply_metrics(struct http_listener *l, struct MHD_Connection *c,
				     unsigned *ret_code)
{
	struct http_server *s = l->server;
	struct scrape_buffers *b;
	struct collect_filter filter;
	enum exposition_format fmt;
	enum MHD_Result ret;
	uint32_t collectors;
	char msg[COLLECT_FILTER_WHY_MAX + 2];
	bool gzip;
	int r;

	if (request_collectors(s, c, &filter, &collectors) < 0) {
		snprintf(msg, sizeof(msg), "%s\n", filter.bad);
		*ret_code = MHD_HTTP_BAD_REQUEST;
		return http_reply(s, c, MHD_HTTP_BAD_REQUEST, CONTENT_TYPE_TEXT, msg, strlen(msg),
				  MHD_RESPMEM_MUST_COPY);
	}

	/* promhttp's MaxRequestsInFlight: refuse at once rather than queue. */
	if (atomic_fetch_add(&s->in_flight, 1) >= s->max_requests && s->max_requests > 0) {
		atomic_fetch_sub(&s->in_flight, 1);
		snprintf(msg, sizeof(msg),
			 "Limit of concurrent requests reached (%u), try again later.\n",
			 s->max_requests);
		log_debug("scrape refused: too many in flight", "address=%s max_requests=%u",
			  l->address, s->max_requests);
		*ret_code = MHD_HTTP_SERVICE_UNAVAILABLE;
		return http_reply(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, CONTENT_TYPE_TEXT, msg,
				  strlen(msg), MHD_RESPMEM_MUST_COPY);
	}

	b = exposition_take(s);
	if (!b) {
		atomic_fetch_sub(&s->in_flight, 1);
		*ret_code = MHD_HTTP_INTERNAL_SERVER_ERROR;
		return http_reply_text(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				       "error collecting metrics: out of memory\n");
	}
	fmt = negotiate_format(
		MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
	gzip = negotiate_gzip(
		MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
	outbuf_reset(&b->text);
	r = s->collect(s->userdata, &b->text, fmt, collectors);
	if (r >= 0 && b->text.failed)
		r = -ENOMEM;
	/* HEAD too: its Content-Length is the one GET would send. */
	if (r >= 0 && gzip)
		r = exposition_gzip(b);
	if (r < 0) {
		log_warn("scrape failed", "address=%s err=\"%s\"", l->address, strerror(-r));
		snprintf(msg, sizeof(msg), "error collecting metrics: %s\n", strerror(-r));
		*ret_code = MHD_HTTP_INTERNAL_SERVER_ERROR;
		ret = http_reply(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, CONTENT_TYPE_TEXT, msg,
				 strlen(msg), MHD_RESPMEM_MUST_COPY);
		exposition_give(s, b);
	} else {
		*ret_code = MHD_HTTP_OK;
		ret = reply_exposition(s, c, fmt, b, gzip); /* b is the response's now */
	}
	atomic_fetch_sub(&s->in_flight, 1);
	return ret;
}
