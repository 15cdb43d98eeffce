/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the HTTP server (http/): listen addresses, routes, large
 * bodies, ephemeral ports and start errors, with a fake collect callback and
 * a raw-socket client on loopback (the real exposition is tested elsewhere).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "capture.h"
#include "client.h"
#include "config.h"
#include "expo/outbuf.h"
#include "http/http.h"
#include "log/log.h"
#include "macro.h"

/* ---- listen addresses ------------------------------------------------------------------ */

static void test_listen_addresses(void **state)
{
	static const struct {
		const char *s;
		int r;
		const char *host; /* NULL: all addresses */
		unsigned port;
	} cases[] = {
		{ ":9977", 0, NULL, 9977 },
		{ ":0", 0, NULL, 0 },
		{ ":65535", 0, NULL, 65535 },
		{ "127.0.0.1:9977", 0, "127.0.0.1", 9977 },
		{ "0.0.0.0:80", 0, "0.0.0.0", 80 },
		{ "[::1]:9977", 0, "::1", 9977 },
		{ "[::]:9977", 0, "::", 9977 },
		{ "[fe80::1%eth0]:9977", 0, "fe80::1%eth0", 9977 },
		{ "[::ffff:127.0.0.1]:1", 0, "::ffff:127.0.0.1", 1 },
		{ "localhost:9977", 0, "localhost", 9977 },
		{ "my-host.example.com:9100", 0, "my-host.example.com", 9100 },
		{ "localhost:09977", 0, "localhost", 9977 },
		{ "", -EINVAL, NULL, 0 },
		{ "abc", -EINVAL, NULL, 0 },
		{ "9977", -EINVAL, NULL, 0 },
		{ ":", -EINVAL, NULL, 0 },
		{ ":99999", -EINVAL, NULL, 0 },
		{ ":65536", -EINVAL, NULL, 0 },
		{ ":123456", -EINVAL, NULL, 0 },
		{ ":-1", -EINVAL, NULL, 0 },
		{ ":+80", -EINVAL, NULL, 0 },
		{ ": 80", -EINVAL, NULL, 0 },
		{ ":80 ", -EINVAL, NULL, 0 },
		{ ":0x50", -EINVAL, NULL, 0 },
		{ ":http", -EINVAL, NULL, 0 },
		{ "host:", -EINVAL, NULL, 0 },
		{ "[::1", -EINVAL, NULL, 0 },
		{ "[::1]", -EINVAL, NULL, 0 },
		{ "[::1]:", -EINVAL, NULL, 0 },
		{ "[::1]9977", -EINVAL, NULL, 0 },
		{ "[]:80", -EINVAL, NULL, 0 },
		{ "[localhost]:80", -EINVAL, NULL, 0 },
		{ "[::1]]:80", -EINVAL, NULL, 0 },
		{ "::1:9977", -EINVAL, NULL, 0 },
		{ "a b:80", -EINVAL, NULL, 0 },
		{ "host/x:80", -EINVAL, NULL, 0 },
		{ "http://host:80", -EINVAL, NULL, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char *host = (char *)"untouched";
		unsigned port = 12345;
		int r = http_parse_listen_address(cases[i].s, &host, &port);

		if (r != cases[i].r)
			fail_msg("\"%s\": r=%d, expected %d", cases[i].s, r, cases[i].r);
		if (r < 0) {
			assert_string_equal(host, "untouched");
			continue;
		}
		if (cases[i].host)
			assert_string_equal(host, cases[i].host);
		else
			assert_null(host);
		assert_int_equal(port, cases[i].port);
		free(host);
	}
	assert_int_equal(http_parse_listen_address(NULL, &(char *){ NULL }, &(unsigned){ 0 }),
			 -EINVAL);
}

/* ---- HTTP ------------------------------------------------------------------------------ */

struct fake {
	const char *body;
	int result;       /* returned by collect */
	bool fail_buffer; /* collect sets out->failed */
	atomic_bool ready;
	atomic_int calls;
	/* Observed by collect (in a server thread), checked by the test afterwards. */
	struct outbuf *out_seen;
	char *data_at_entry;
	size_t len_at_entry;
	char *data_after;
};

static struct fake fake;

static int fake_collect(void *userdata, struct outbuf *out, enum exposition_format fmt,
			uint32_t collectors)
{
	(void)collectors;
	struct fake *f = userdata;

	atomic_fetch_add(&f->calls, 1);
	f->out_seen = out;
	f->data_at_entry = out->data;
	f->len_at_entry = out->len;
	if (f->result < 0) {
		outbuf_puts(out, "partial output that must not be served");
		return f->result;
	}
	outbuf_puts(out, f->body);
	if (f->fail_buffer)
		out->failed = true;
	f->data_after = out->data;
	return 0;
}

static bool fake_ready(void *userdata)
{
	return atomic_load(&((struct fake *)userdata)->ready);
}

static struct http_server *start_server(const char *addr, char **ret_log)
{
	char *listen[] = { (char *)addr };
	struct http_config cfg = {
		.listen = listen,
		.n_listen = 1,
		.telemetry_path = "/metrics",
		.collect = fake_collect,
		.ready = fake_ready,
		.userdata = &fake,
	};
	struct http_server *s = NULL;
	char err[256] = "";
	struct capture c;
	char *log;
	int r;

	capture_start(&c, STDERR_FILENO);
	r = http_server_start(&cfg, &s, err, sizeof(err));
	log = capture_stop(&c);
	if (r < 0)
		fail_msg("http_server_start(%s): %d %s", addr, r, err);
	if (ret_log)
		*ret_log = log;
	else
		free(log);
	return s;
}

static void test_http_routes(void **state)
{
	struct http_server *s;
	struct http_reply r;
	char addr[64], h[256];
	unsigned port = free_port();
	char *log;
	struct outbuf *first_out;
	char *first_data;

	fake = (struct fake){ .body = "# HELP x X.\n# TYPE x gauge\nx 1\n", .ready = true };
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	s = start_server(addr, &log);
	/* The bound address is logged, in the form tests and operators look for. */
	snprintf(h, sizeof(h), "msg=\"listening\" address=127.0.0.1:%u\n", port);
	assert_non_null(strstr(log, h));
	free(log);

	/* /metrics: 200, the exposition content type, the body collect wrote. */
	http_request(port, "GET", "/metrics", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(http_header(&r, "Content-Type", h, sizeof(h)),
			    "text/plain; version=0.0.4; charset=utf-8");
	assert_int_equal(r.body_len, strlen(fake.body));
	assert_string_equal(r.body, fake.body);
	http_reply_release(&r);
	assert_int_equal(atomic_load(&fake.calls), 1);
	first_out = fake.out_seen;
	first_data = fake.data_after;
	assert_non_null(first_data);

	/* The next scrape reuses the same buffer: reset, not reallocated. */
	http_request(port, "GET", "/metrics", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, fake.body);
	http_reply_release(&r);
	assert_ptr_equal(fake.out_seen, first_out);
	assert_ptr_equal(fake.data_at_entry, first_data);
	assert_int_equal(fake.len_at_entry, 0);

	/* HEAD: headers only. */
	http_request(port, "HEAD", "/metrics", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(http_header(&r, "Content-Type", h, sizeof(h)),
			    "text/plain; version=0.0.4; charset=utf-8");
	assert_int_equal(r.body_len, 0);
	assert_int_equal(atoi(http_header(&r, "Content-Length", h, sizeof(h))),
			 (int)strlen(fake.body));
	http_reply_release(&r);

	/* The query string does not change the route. */
	http_request(port, "GET", "/metrics?name[]=x", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);

	/* Landing page. */
	http_request(port, "GET", "/", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(http_header(&r, "Content-Type", h, sizeof(h)),
			    "text/html; charset=utf-8");
	assert_non_null(strstr(r.body, "<title>kvmstats_exporter</title>"));
	assert_non_null(strstr(r.body, "href=\"./metrics\""));
	assert_non_null(strstr(r.body, PROJECT_VERSION));
	http_reply_release(&r);

	/* Health and readiness. */
	http_request(port, "GET", "/-/healthy", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "Healthy\n");
	http_reply_release(&r);
	http_request(port, "GET", "/-/ready", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "Ready\n");
	http_reply_release(&r);
	atomic_store(&fake.ready, false);
	http_request(port, "GET", "/-/ready", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "Not ready\n");
	http_reply_release(&r);
	atomic_store(&fake.ready, true);

	/* Unknown paths. */
	http_request(port, "GET", "/nope", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 404);
	http_reply_release(&r);
	http_request(port, "GET", "/metrics/", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 404);
	http_reply_release(&r);

	/* Other methods: 405 with Allow. */
	http_request(port, "POST", "/metrics", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(http_header(&r, "Allow", h, sizeof(h)), "GET, HEAD");
	http_reply_release(&r);
	http_request(port, "DELETE", "/", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(http_header(&r, "Allow", h, sizeof(h)), "GET, HEAD");
	http_reply_release(&r);
	assert_int_equal(atomic_load(&fake.calls), 4);

	/* collect fails: 500 with one line, and nothing of the partial output. */
	fake.result = -EIO;
	http_request(port, "GET", "/metrics", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 500);
	assert_string_equal(r.body, "error collecting metrics: Input/output error\n");
	http_reply_release(&r);
	fake.result = 0;

	/* The buffer failed (grow-or-fail): 500 rather than a cut exposition. */
	fake.fail_buffer = true;
	http_request(port, "GET", "/metrics", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 500);
	assert_int_equal(count_char(r.body, '\n'), 1);
	assert_null(strstr(r.body, "HELP"));
	http_reply_release(&r);
	fake.fail_buffer = false;

	/* And it recovers. */
	http_request(port, "GET", "/metrics", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, fake.body);
	http_reply_release(&r);

	assert_null(http_server_stop(s));
	assert_null(http_server_stop(NULL));
}

static void test_http_large_body(void **state)
{
	enum { SIZE = 4 << 20 };
	struct http_server *s;
	struct http_reply r;
	char addr[64];
	unsigned port = free_port();
	char *body = malloc(SIZE + 1);

	assert_non_null(body);
	for (size_t i = 0; i < SIZE; i++)
		body[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
	body[SIZE] = '\0';
	fake = (struct fake){ .body = body, .ready = true };
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	s = start_server(addr, NULL);

	for (int i = 0; i < 2; i++) {
		http_request(port, "GET", "/metrics", "Content-Length: 0\r\n", &r);
		assert_int_equal(r.status, 200);
		assert_int_equal(r.body_len, SIZE);
		assert_memory_equal(r.body, body, SIZE);
		http_reply_release(&r);
	}
	http_server_stop(s);
	free(body);
}

/* Port 0: the chosen port is only known from the log line. */
static unsigned port_from_log(const char *log, const char *prefix)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "msg=\"listening\" address=%s", prefix);
	p = strstr(log, key);
	if (!p)
		fail_msg("no '%s' in log: %s", key, log);
	return (unsigned)strtoul(p + strlen(key), NULL, 10);
}

static void test_http_ephemeral_ports(void **state)
{
	struct http_server *s;
	struct http_reply r;
	unsigned port;
	char *log;

	fake = (struct fake){ .body = "x 1\n", .ready = true };

	s = start_server("127.0.0.1:0", &log);
	port = port_from_log(log, "127.0.0.1:");
	assert_true(port > 0);
	http_request(port, "GET", "/metrics", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "x 1\n");
	http_reply_release(&r);
	http_server_stop(s);
	free(log);

	/* ":0": all addresses; dual-stack [::] where IPv6 exists, else 0.0.0.0. */
	s = start_server(":0", &log);
	port = strstr(log, "address=[::]:") ? port_from_log(log, "[::]:")
					    : port_from_log(log, "0.0.0.0:");
	assert_true(port > 0);
	http_request(port, "GET", "/-/healthy", "Content-Length: 0\r\n",
		     &r); /* IPv4 reaches it too */
	assert_int_equal(r.status, 200);
	http_reply_release(&r);
	http_server_stop(s);
	free(log);

	/* A name with several addresses: each bound, all on the same ephemeral port. */
	s = start_server("localhost:0", &log);
	port = port_from_log(log, "127.0.0.1:");
	if (strstr(log, "address=[::1]:"))
		assert_int_equal(port_from_log(log, "[::1]:"), port);
	http_request(port, "GET", "/-/healthy", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 200);
	http_reply_release(&r);
	http_server_stop(s);
	free(log);
}

static void test_http_start_errors(void **state)
{
	char addr[64], err[256], *listen[2];
	struct http_config cfg = {
		.listen = listen,
		.n_listen = 1,
		.telemetry_path = "/metrics",
		.collect = fake_collect,
		.userdata = &fake,
	};
	struct http_server *s, *s2 = NULL;
	struct capture c;
	unsigned port = free_port();
	char *log;
	int r;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	s = start_server(addr, NULL);

	/* Address in use: the error names the address. */
	listen[0] = addr;
	capture_start(&c, STDERR_FILENO);
	r = http_server_start(&cfg, &s2, err, sizeof(err));
	log = capture_stop(&c);
	assert_int_equal(r, -EADDRINUSE);
	assert_null(s2);
	assert_non_null(strstr(err, addr));
	assert_non_null(strstr(err, "Address already in use"));
	free(log);

	/* Garbage. */
	listen[0] = (char *)"abc";
	r = http_server_start(&cfg, &s2, err, sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(err, "\"abc\""));

	/* Nothing serves if one of several addresses fails, and the others are released. */
	listen[0] = (char *)"127.0.0.1:0";
	listen[1] = addr;
	cfg.n_listen = 2;
	capture_start(&c, STDERR_FILENO);
	r = http_server_start(&cfg, &s2, err, sizeof(err));
	log = capture_stop(&c);
	assert_int_equal(r, -EADDRINUSE);
	assert_null(s2);
	free(log);

	/* Missing collect callback, tiny errbuf: still a clean error. */
	cfg.collect = NULL;
	r = http_server_start(&cfg, &s2, err, 4);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(strlen(err), 3);
	r = http_server_start(&cfg, &s2, NULL, 0);
	assert_int_equal(r, -EINVAL);

	http_server_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_addresses),
		cmocka_unit_test(test_http_routes),
		cmocka_unit_test(test_http_large_body),
		cmocka_unit_test(test_http_ephemeral_ports),
		cmocka_unit_test(test_http_start_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
