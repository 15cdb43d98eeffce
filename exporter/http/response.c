/* SPDX-License-Identifier: MIT */
/* Answers and the headers every answer carries. */
#include <stdint.h>
#include <string.h>

#include "http/internal.h"

/* Adds the headers every answer carries to resp; false if MHD refused one. */
bool http_response_headers(struct http_server *s, struct MHD_Response *resp, unsigned status,
			   const char *content_type)
{
	bool ok;

	ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES;
	if (ok && status == MHD_HTTP_METHOD_NOT_ALLOWED)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") == MHD_YES;
	if (ok && status == MHD_HTTP_UNAUTHORIZED)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					     "Basic realm=\"" AUTH_REALM "\"") == MHD_YES;
	/* On every response, as the toolkit sets them before authentication. */
	struct web_gen *g = http_web_current(s);

	for (size_t i = 0; ok && g && i < g->web->n_headers; i++)
		ok = MHD_add_response_header(resp, g->web->headers[i].name,
					     g->web->headers[i].value) == MHD_YES;
	web_gen_unref(g);
	return ok;
}

/* A response with the headers every answer carries, or NULL. */
struct MHD_Response *http_response_new(struct http_server *s, unsigned status,
				       const char *content_type, const void *body, size_t len,
				       enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;

	/* MHD reads from a persistent buffer but never writes to it. */
	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, mode);
	if (!resp)
		return NULL;
	if (!http_response_headers(s, resp, status, content_type)) {
		MHD_destroy_response(resp);
		return NULL;
	}
	return resp;
}

/* Queues resp (NULL: fails the connection) and drops our reference. */
enum MHD_Result http_response_queue(struct MHD_Connection *c, unsigned status,
				    struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result http_reply(struct http_server *s, struct MHD_Connection *c, unsigned status,
			   const char *content_type, const void *body, size_t len,
			   enum MHD_ResponseMemoryMode mode)
{
	return http_response_queue(c, status,
				   http_response_new(s, status, content_type, body, len, mode));
}

enum MHD_Result http_reply_text(struct http_server *s, struct MHD_Connection *c, unsigned status,
				const char *text)
{
	return http_reply(s, c, status, CONTENT_TYPE_TEXT, text, strlen(text),
			  MHD_RESPMEM_PERSISTENT);
}
