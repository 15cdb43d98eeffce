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
	        body->len, body->len ? body->data : (void *)(uintptr_t)"", exposition_sent, b);
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

enum MHD_Result http_reply_metrics(struct http_listener *l, struct MHD_Connection *c)
{
	struct http_server *s = l->server;
	struct scrape_buffers *b;
	enum exposition_format fmt;
	enum MHD_Result ret;
	char msg[256];
	bool gzip;
	int r;

	/* promhttp's MaxRequestsInFlight: refuse at once rather than queue. */
	if (atomic_fetch_add(&s->in_flight, 1) >= s->max_requests && s->max_requests > 0) {
		atomic_fetch_sub(&s->in_flight, 1);
		snprintf(msg, sizeof(msg),
		         "Limit of concurrent requests reached (%u), try again later.\n",
		         s->max_requests);
		log_debug("scrape refused: too many in flight", "address=%s max_requests=%u",
		          l->address, s->max_requests);
		return http_reply(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, CONTENT_TYPE_TEXT, msg,
		             strlen(msg), MHD_RESPMEM_MUST_COPY);
	}

	b = exposition_take(s);
	if (!b) {
		atomic_fetch_sub(&s->in_flight, 1);
		return http_reply_text(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                  "error collecting metrics: out of memory\n");
	}
	fmt = negotiate_format(
	        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
	gzip = negotiate_gzip(
	        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
	outbuf_reset(&b->text);
	r = s->collect(s->userdata, &b->text, fmt);
	if (r >= 0 && b->text.failed)
		r = -ENOMEM;
	/* HEAD too: its Content-Length is the one GET would send. */
	if (r >= 0 && gzip)
		r = exposition_gzip(b);
	if (r < 0) {
		log_warn("scrape failed", "address=%s err=\"%s\"", l->address, strerror(-r));
		snprintf(msg, sizeof(msg), "error collecting metrics: %s\n", strerror(-r));
		ret = http_reply(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, CONTENT_TYPE_TEXT, msg,
		            strlen(msg), MHD_RESPMEM_MUST_COPY);
		exposition_give(s, b);
	} else {
		ret = reply_exposition(s, c, fmt, b, gzip); /* b is the response's now */
	}
	atomic_fetch_sub(&s->in_flight, 1);
	return ret;
}
