/* SPDX-License-Identifier: MIT */
/*
 * bench_http: what a scrape costs as Prometheus pays for it, against the
 * pread floor of the same stats fds, measured side by side in one run.
 *
 *   bench_http --port P --exporter-pid PID --pids-file F
 *              [--host 127.0.0.1] [--path /metrics] [--rounds R] [--cpu-scrapes K]
 *
 * The VMM processes listed in F (one pid per line, as tests/tools/kvmfleet
 * writes it) hold the stats fds; this program takes its own copies of them
 * with pidfd_getfd(2) (the same open files the exporter reads, whichever way
 * it got them) and parses their schemas with the project's reader.
 *
 * Each round, in an order that rotates every round, times:
 *   floor        one pread() of every fd's data block (what any reader pays)
 *   om+gzip      GET with Prometheus 3's Accept header and Accept-Encoding: gzip
 *   text+gzip    GET with Accept: text/plain;version=0.0.4 and gzip
 *   plain        GET with the text format, uncompressed
 * each scrape on a new TCP connection (as a client pays when the server says
 * "Connection: close"), and the same on a connection kept open when the server
 * allows it ("keep-alive" rows; absent when it closes every connection). A
 * scrape's time runs from connect() (or the request's first byte, kept alive)
 * to the body's last byte. The body is not decompressed: that is the
 * scraper's cost, not the exporter's.
 *
 * Then the CPU time side by side: this process's for floor reads back to back
 * (getrusage; at least K and 1 s), and per form the exporter's for scrapes
 * back to back on a kept connection (/proc/PID/stat, utime + stime of the
 * whole process, threads that already exited included; at least K and 2 s),
 * each per run, and their ratios; then the exporter's VmRSS and VmHWM.
 *
 * Sanity (exit 1): every answer is a 200 with a body; gzip bodies start with
 * the gzip magic, uncompressed ones hold a kvm_vm_info sample for each VM
 * held here (at least: procfs also finds other VMMs on the host); medians are positive.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kvmstats.h"

#define MAX_ROUNDS 100000

enum form { F_OM_GZIP, F_TEXT_GZIP, F_PLAIN, N_FORMS };

static const struct {
	const char *name, *accept;
	bool gzip;
} forms[N_FORMS] = {
	/* What Prometheus 3 sends by default (scrape_protocols' defaults, with q values). */
	[F_OM_GZIP] = { "om+gzip",
			"application/openmetrics-text;version=1.0.0;q=0.5,"
			"application/openmetrics-text;version=0.0.1;q=0.4,"
			"text/plain;version=1.0.0;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
			true },
	[F_TEXT_GZIP] = { "text+gzip", "text/plain;version=0.0.4", true },
	[F_PLAIN] = { "plain", "text/plain;version=0.0.4", false },
};

struct floor_fd {
	int fd;
	off_t offset;
	size_t size;
	void *buf;
};

struct series {
	double *v;
	size_t n;
};

struct ctx {
	const char *host, *path;
	unsigned port;
	pid_t exporter;
	struct floor_fd *fds;
	size_t n_fds, n_vms;
	char *resp;
	size_t resp_cap;
	int keep_sock[N_FORMS]; /* kept-alive connection per form, -1 when none */
	bool keepalive_ok;      /* the server kept a connection open at least once */
	size_t body_bytes[N_FORMS];
};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_http: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Copies of every stats fd the listed processes hold, with their data block's place. */
static void take_fds(struct ctx *c, const char *pids_file)
{
	FILE *f = fopen(pids_file, "re");
	size_t cap = 0;
	int pid;

	if (!f)
		fail("%s: %s", pids_file, strerror(errno));
	while (fscanf(f, "%d", &pid) == 1) {
		int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		char dir[64];

		if (pidfd < 0)
			fail("pidfd_open %d: %s", pid, strerror(errno));
		snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
		for (int n = 0; n < 4096; n++) {
			char link[128], target[128];
			struct kvmstats_file *file;
			struct kvmstats_error err;
			ssize_t len;
			int fd, r;

			snprintf(link, sizeof(link), "%s/%d", dir, n);
			len = readlink(link, target, sizeof(target) - 1);
			if (len < 0)
				continue;
			target[len] = '\0';
			if (strcmp(target, "anon_inode:kvm-vm-stats") != 0 &&
			    strncmp(target, "anon_inode:kvm-vcpu-stats:", 26) != 0)
				continue;
			fd = (int)syscall(SYS_pidfd_getfd, pidfd, n, 0);
			if (fd < 0)
				fail("pidfd_getfd %d/%d: %s", pid, n, strerror(errno));
			r = kvmstats_file_open_fd(fd, &file, &err);
			if (r < 0)
				fail("stats fd %d/%d: %s", pid, n, strerror(-r));
			if (c->n_fds == cap) {
				cap = cap ? cap * 2 : 1024;
				c->fds = realloc(c->fds, cap * sizeof(*c->fds));
				if (!c->fds)
					fail("out of memory");
			}
			c->fds[c->n_fds++] = (struct floor_fd){
				.fd = fd,
				.offset = (off_t)file->schema->data_offset,
				.size = file->schema->data_size,
				.buf = malloc(file->schema->data_size),
			};
			if (strcmp(target, "anon_inode:kvm-vm-stats") == 0)
				c->n_vms++;
			/* Keep only the fd: the floor is the pread alone. */
			file->fd = -1;
			kvmstats_file_free(file);
		}
		close(pidfd);
	}
	fclose(f);
	if (c->n_fds == 0)
		fail("no stats fds found in the processes of %s", pids_file);
}

static void floor_read(struct ctx *c)
{
	for (size_t i = 0; i < c->n_fds; i++) {
		struct floor_fd *fl = &c->fds[i];
		if (pread(fl->fd, fl->buf, fl->size, fl->offset) != (ssize_t)fl->size)
			fail("pread: %s", strerror(errno));
	}
}

static int http_connect(const struct ctx *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
	int one = 1;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0 || inet_pton(AF_INET, c->host, &sa.sin_addr) != 1)
		fail("socket or address %s", c->host);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail("connect %s:%u: %s", c->host, c->port, strerror(errno));
	return s;
}

/* Case-insensitive search for a header's value in the head; NULL if absent. */
static const char *header_value(const char *head, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n"))
		if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':')
			return p + 3 + n + strspn(p + 3 + n, " ");
	return NULL;
}

/*
 * One GET in the given form; reuses the form's kept connection when asked and
 * open. Returns the time in µs; checks the answer.
 */
static double scrape(struct ctx *c, enum form fm, bool keep)
{
	char req[1024];
	size_t len = 0, head_len = 0, body_len = SIZE_MAX;
	bool server_closes = false;
	double t0 = now_us();
	int s = keep ? c->keep_sock[fm] : -1;
	int n;

	if (s < 0)
		s = http_connect(c);
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUser-Agent: bench_http\r\nAccept: %s\r\n"
		     "%sX-Prometheus-Scrape-Timeout-Seconds: 10\r\n%s\r\n",
		     c->path, c->host, c->port, forms[fm].accept,
		     forms[fm].gzip ? "Accept-Encoding: gzip\r\n" : "",
		     keep ? "" : "Connection: close\r\n");
	if (send(s, req, (size_t)n, MSG_NOSIGNAL) != n)
		fail("send: %s", strerror(errno));
	for (;;) {
		ssize_t r;

		if (c->resp_cap - len < 65536) {
			c->resp_cap = c->resp_cap ? c->resp_cap * 2 : 1u << 20;
			c->resp = realloc(c->resp, c->resp_cap);
			if (!c->resp)
				fail("out of memory");
		}
		r = recv(s, c->resp + len, c->resp_cap - len - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("recv: %s", strerror(errno));
		if (r == 0) {
			if (head_len && body_len == SIZE_MAX)
				break; /* body delimited by the close */
			if (!head_len || len < head_len + body_len)
				fail("%s: connection closed after %zu bytes", forms[fm].name, len);
			break;
		}
		len += (size_t)r;
		c->resp[len] = '\0';
		if (!head_len) {
			char *end = strstr(c->resp, "\r\n\r\n");
			const char *cl, *conn;

			if (!end)
				continue;
			*end = '\0';
			head_len = (size_t)(end - c->resp) + 4;
			if (strncmp(c->resp, "HTTP/1.1 200 ", 13) != 0)
				fail("%s: answer %.40s", forms[fm].name, c->resp);
			cl = header_value(c->resp, "Content-Length");
			if (cl)
				body_len = strtoull(cl, NULL, 10);
			conn = header_value(c->resp, "Connection");
			server_closes = conn && strncasecmp(conn, "close", 5) == 0;
			*end = '\r';
		}
		if (head_len && body_len != SIZE_MAX && len >= head_len + body_len)
			break;
	}
	double t = now_us() - t0;

	if (body_len == SIZE_MAX)
		body_len = len - head_len;
	if (body_len == 0)
		fail("%s: empty body", forms[fm].name);
	if (forms[fm].gzip) {
		if ((unsigned char)c->resp[head_len] != 0x1f ||
		    (unsigned char)c->resp[head_len + 1] != 0x8b)
			fail("%s: body is not gzip", forms[fm].name);
	} else {
		size_t vms = 0;
		c->resp[head_len + body_len] = '\0';
		for (const char *p = c->resp + head_len; (p = strstr(p, "\nkvm_vm_info{")); p++)
			vms++;
		/* More when other VMMs run on this host (procfs finds them too). */
		if (vms < c->n_vms)
			fail("%s: %zu kvm_vm_info samples, %zu VMs held", forms[fm].name, vms,
			     c->n_vms);
	}
	c->body_bytes[fm] = body_len;
	if (keep && !server_closes) {
		c->keep_sock[fm] = s;
		c->keepalive_ok = true;
	} else {
		close(s);
		if (keep)
			c->keep_sock[fm] = -1;
	}
	return t;
}

/* utime + stime of the whole process, in seconds; and its VmRSS/VmHWM in KiB. */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[4096];
	unsigned long long ut, st;
	FILE *f;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		fail("%s: %s", path, strerror(errno));
	fclose(f);
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		fail("%s: unexpected format", path);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		fail("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(struct series *s, double q)
{
	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	return s->v[(size_t)(q * (double)(s->n - 1) + 0.5)];
}

static unsigned parse_uint(const char *s, const char *flag)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (end == s || *end || v == 0 || v > MAX_ROUNDS * 10ul)
		fail("%s wants a positive integer, not '%s'", flag, s);
	return (unsigned)v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'h' },
		{ "path", required_argument, NULL, 'P' },
		{ "exporter-pid", required_argument, NULL, 'e' },
		{ "pids-file", required_argument, NULL, 'f' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "cpu-scrapes", required_argument, NULL, 'k' },
		{ 0 },
	};
	/* rows: floor, then each form on a new connection, then each form kept alive */
	enum { ROW_FLOOR = 0, ROW_NEW = 1, ROW_KEEP = 1 + N_FORMS, N_ROWS = 1 + 2 * N_FORMS };
	struct ctx c = { .host = "127.0.0.1", .path = "/metrics" };
	struct series rows[N_ROWS];
	const char *pids_file = NULL;
	unsigned rounds = 50, cpu_scrapes = 50;
	struct rlimit rl;
	int opt;

	for (int i = 0; i < N_FORMS; i++)
		c.keep_sock[i] = -1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			c.port = parse_uint(optarg, "--port");
			break;
		case 'h':
			c.host = optarg;
			break;
		case 'P':
			c.path = optarg;
			break;
		case 'e':
			c.exporter = (pid_t)parse_uint(optarg, "--exporter-pid");
			break;
		case 'f':
			pids_file = optarg;
			break;
		case 'r':
			rounds = parse_uint(optarg, "--rounds");
			break;
		case 'k':
			cpu_scrapes = parse_uint(optarg, "--cpu-scrapes");
			break;
		default:
			fail("see the comment at the top of bench_http.c");
		}
	}
	if (!c.port || !c.exporter || !pids_file || rounds > MAX_ROUNDS)
		fail("--port, --exporter-pid and --pids-file are required");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	take_fds(&c, pids_file);

	for (int i = 0; i < N_ROWS; i++) {
		rows[i].v = calloc(rounds, sizeof(double));
		rows[i].n = 0;
		if (!rows[i].v)
			fail("out of memory");
	}
	/* Warm-up: a tenth of the rounds, at least 3, of everything. */
	for (unsigned w = 0; w < (rounds / 10 > 3 ? rounds / 10 : 3); w++) {
		floor_read(&c);
		for (int f = 0; f < N_FORMS; f++) {
			scrape(&c, (enum form)f, false);
			scrape(&c, (enum form)f, true);
		}
	}
	for (unsigned r = 0; r < rounds; r++) {
		for (int k = 0; k < N_ROWS; k++) {
			int row = (int)((r + (unsigned)k) % N_ROWS);
			double t;

			if (row == ROW_FLOOR) {
				t = now_us();
				floor_read(&c);
				t = now_us() - t;
			} else if (row < ROW_KEEP) {
				t = scrape(&c, (enum form)(row - ROW_NEW), false);
			} else {
				t = scrape(&c, (enum form)(row - ROW_KEEP), true);
			}
			rows[row].v[rows[row].n++] = t;
		}
	}

	double floor_med = pct(&rows[ROW_FLOOR], 0.5);
	if (floor_med <= 0)
		fail("floor median is not positive");
	printf("fds %zu (VMs %zu), %u rounds, times in microseconds\n", c.n_fds, c.n_vms, rounds);
	printf("%-22s %10s %10s %8s %10s\n", "measurement", "median", "p90", "x floor", "bytes");
	printf("%-22s %10.1f %10.1f %8.2f %10s\n", "pread floor", floor_med,
	       pct(&rows[ROW_FLOOR], 0.9), 1.0, "-");
	for (int row = ROW_NEW; row < N_ROWS; row++) {
		enum form f = (enum form)((row - ROW_NEW) % N_FORMS);
		char label[64];
		double med = pct(&rows[row], 0.5);

		if (row >= ROW_KEEP && !c.keepalive_ok)
			continue;
		snprintf(label, sizeof(label), "%s, %s", forms[f].name,
			 row < ROW_KEEP ? "new conn" : "keep-alive");
		printf("%-22s %10.1f %10.1f %8.2f %10zu\n", label, med, pct(&rows[row], 0.9),
		       med / floor_med, c.body_bytes[f]);
	}
	if (!c.keepalive_ok)
		printf("keep-alive: the server closed every connection\n");

	/*
	 * CPU rather than wall time: on a busy machine waits for a CPU inflate
	 * the wall times of both sides, CPU time is what the exporter spends.
	 * The floor's own CPU first, the same way (this process, K reads).
	 */
	struct rusage ru0, ru1;
	double cpu_form[N_FORMS];

	/* At least K runs and 1 s (the exporter's side 2 s: /proc counts in clock ticks). */
	unsigned n_floor = 0;
	double t_end = now_us() + 1e6;

	getrusage(RUSAGE_SELF, &ru0);
	for (; n_floor < cpu_scrapes || now_us() < t_end; n_floor++)
		floor_read(&c);
	getrusage(RUSAGE_SELF, &ru1);
	double floor_cpu = ((double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
			    (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
			    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
			    (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6) /
			   n_floor;
	printf("floor cpu per read of every fd %8.3f ms  (%u reads)\n", floor_cpu * 1e3, n_floor);
	/* Exporter CPU per scrape, per form, back to back (kept alive when possible). */
	for (int f = 0; f < N_FORMS; f++) {
		double cpu0 = proc_cpu_s(c.exporter), t0 = now_us();
		unsigned k = 0;

		for (; k < cpu_scrapes || now_us() < t0 + 2e6; k++)
			scrape(&c, (enum form)f, true);
		double cpu = proc_cpu_s(c.exporter) - cpu0, wall = now_us() - t0;
		cpu_form[f] = cpu / k;
		printf("exporter cpu per scrape, %-10s %8.3f ms  (wall %.3f ms, %u scrapes)\n",
		       forms[f].name, cpu * 1e3 / k, wall / 1e3 / k, k);
	}
	printf("exporter rss %ld KiB, hwm %ld KiB\n", proc_status_kib(c.exporter, "VmRSS"),
	       proc_status_kib(c.exporter, "VmHWM"));
	if (floor_cpu > 0)
		printf("cpu ratio om+gzip/pread = %.2f, text+gzip/pread = %.2f, plain/pread = "
		       "%.2f\n",
		       cpu_form[F_OM_GZIP] / floor_cpu, cpu_form[F_TEXT_GZIP] / floor_cpu,
		       cpu_form[F_PLAIN] / floor_cpu);
	printf("ratio om+gzip/pread = %.2f\n", pct(&rows[ROW_NEW + F_OM_GZIP], 0.5) / floor_med);
	printf("ratio plain/pread = %.2f\n", pct(&rows[ROW_NEW + F_PLAIN], 0.5) / floor_med);
	return 0;
}
