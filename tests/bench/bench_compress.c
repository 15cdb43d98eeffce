/* SPDX-License-Identifier: MIT */
/*
 * bench_compress: the gzip encoders available on Debian 12 on a real
 * exposition, side by side in one run: what "Accept-Encoding: gzip" costs.
 *
 *   bench_compress [--rounds R] FILE...
 *
 * For each file (an exposition as the exporter writes it, e.g. its --once
 * output for a fleet of VMs), each round times every encoder once, in an
 * order that rotates every round; each encoder keeps its state across rounds
 * and is reset per run, as the exporter's would be:
 *   zlib 1, zlib 6   deflateReset() + deflate(Z_FINISH), gzip wrapper (zlib 1.2.13)
 *   libdeflate N     libdeflate_gzip_compress(), levels 1, 2, 4, 6 (libdeflate 1.14)
 *   isa-l N          isal_deflate() with the gzip wrapper, levels 0, 1, 3 (isa-l 2.30)
 * Printed per encoder: median and p90 time, MB/s of input, output size and
 * compression ratio. Every output is inflated back with zlib and compared with
 * the input byte for byte (a mismatch exits 1). Encoders whose library was not
 * found at build time are listed as absent.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#define MAX_ENCODERS 16

struct encoder {
	char name[32];
	int level;
	int (*run)(struct encoder *e, const void *in, size_t n, void *out, size_t cap,
		   size_t *ret_len);
	void *state;
	void *level_buf;
	size_t level_buf_size;
	double *t;
	size_t out_len;
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int run_zlib(struct encoder *e, const void *in, size_t n, void *out, size_t cap,
		    size_t *ret_len)
{
	z_stream *z = e->state;

	if (deflateReset(z) != Z_OK)
		return -EIO;
	z->next_in = (Bytef *)(uintptr_t)in;
	z->avail_in = (uInt)n;
	z->next_out = out;
	z->avail_out = (uInt)cap;
	if (deflate(z, Z_FINISH) != Z_STREAM_END)
		return -ENOBUFS;
	*ret_len = cap - z->avail_out;
	return 0;
}

static int init_zlib(struct encoder *e)
{
	z_stream *z = calloc(1, sizeof(*z));

	if (!z || deflateInit2(z, e->level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	e->state = z;
	e->run = run_zlib;
	snprintf(e->name, sizeof(e->name), "zlib %d", e->level);
	return 0;
}

#ifdef HAVE_LIBDEFLATE
static int run_libdeflate(struct encoder *e, const void *in, size_t n, void *out, size_t cap,
			  size_t *ret_len)
{
	size_t r = libdeflate_gzip_compress(e->state, in, n, out, cap);

	if (r == 0)
		return -ENOBUFS;
	*ret_len = r;
	return 0;
}

static int init_libdeflate(struct encoder *e)
{
	e->state = libdeflate_alloc_compressor(e->level);
	if (!e->state)
		return -ENOMEM;
	e->run = run_libdeflate;
	snprintf(e->name, sizeof(e->name), "libdeflate %d", e->level);
	return 0;
}
#endif

#ifdef HAVE_ISAL
static int run_isal(struct encoder *e, const void *in, size_t n, void *out, size_t cap,
		    size_t *ret_len)
{
	struct isal_zstream *s = e->state;

	isal_deflate_reset(s);
	s->level = (uint32_t)e->level;
	s->level_buf = e->level_buf;
	s->level_buf_size = (uint32_t)e->level_buf_size;
	s->gzip_flag = IGZIP_GZIP;
	s->end_of_stream = 1;
	s->flush = NO_FLUSH;
	s->next_in = (uint8_t *)(uintptr_t)in;
	s->avail_in = (uint32_t)n;
	s->next_out = out;
	s->avail_out = (uint32_t)cap;
	if (isal_deflate(s) != COMP_OK || s->internal_state.state != ZSTATE_END)
		return -ENOBUFS;
	*ret_len = s->total_out;
	return 0;
}

static int init_isal(struct encoder *e)
{
	struct isal_zstream *s = calloc(1, sizeof(*s));
	static const size_t bufsize[] = { 0, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT,
					  ISAL_DEF_LVL3_DEFAULT };

	if (!s)
		return -ENOMEM;
	isal_deflate_init(s);
	e->level_buf_size = bufsize[e->level];
	if (e->level_buf_size && !(e->level_buf = malloc(e->level_buf_size)))
		return -ENOMEM;
	e->state = s;
	e->run = run_isal;
	snprintf(e->name, sizeof(e->name), "isa-l %d", e->level);
	return 0;
}
#endif

/* Inflates a gzip member with zlib and compares it with the original. */
static bool round_trips(const void *gz, size_t gz_len, const void *orig, size_t n, void *scratch)
{
	z_stream z = { 0 };
	bool ok;

	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return false;
	z.next_in = (Bytef *)(uintptr_t)gz;
	z.avail_in = (uInt)gz_len;
	z.next_out = scratch;
	z.avail_out = (uInt)n + 1;
	ok = inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == n &&
	     memcmp(scratch, orig, n) == 0;
	inflateEnd(&z);
	return ok;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double q)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(q * (double)(n - 1) + 0.5)];
}

static void *read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);

	if (!f || !buf) {
		fprintf(stderr, "bench_compress: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	for (size_t r; (r = fread(buf + len, 1, cap - len, f)) > 0;) {
		len += r;
		if (len == cap && !(buf = realloc(buf, cap *= 2))) {
			fprintf(stderr, "bench_compress: out of memory\n");
			exit(1);
		}
	}
	fclose(f);
	*ret_len = len;
	return buf;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rounds", required_argument, NULL, 'r' },
		{ 0 },
	};
	struct encoder enc[MAX_ENCODERS] = { 0 };
	size_t n_enc = 0;
	unsigned rounds = 50;
	int opt, status = 0;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt != 'r' || (rounds = (unsigned)strtoul(optarg, NULL, 10)) == 0) {
			fprintf(stderr, "usage: bench_compress [--rounds R] FILE...\n");
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: bench_compress [--rounds R] FILE...\n");
		return 2;
	}

	enc[n_enc++].level = 1;
	enc[n_enc++].level = 6;
	for (size_t i = 0; i < n_enc; i++)
		if (init_zlib(&enc[i]) < 0)
			return 1;
#ifdef HAVE_LIBDEFLATE
	for (int level = 1; level <= 6; level++) {
		if (level == 3 || level == 5)
			continue;
		enc[n_enc].level = level;
		if (init_libdeflate(&enc[n_enc++]) < 0)
			return 1;
	}
#else
	printf("libdeflate: absent at build time\n");
#endif
#ifdef HAVE_ISAL
	for (int level = 0; level <= 3; level++) {
		if (level == 2)
			continue;
		enc[n_enc].level = level;
		if (init_isal(&enc[n_enc++]) < 0)
			return 1;
	}
#else
	printf("isa-l: absent at build time\n");
#endif

	for (int a = optind; a < argc; a++) {
		size_t n, cap;
		void *in = read_file(argv[a], &n), *out, *scratch;

		cap = n + n / 8 + 65536;
		out = malloc(cap);
		scratch = malloc(n + 1);
		if (!out || !scratch)
			return 1;
		for (size_t i = 0; i < n_enc; i++) {
			free(enc[i].t);
			enc[i].t = calloc(rounds, sizeof(double));
			if (!enc[i].t)
				return 1;
		}
		for (unsigned r = 0; r < rounds + 2; r++) {
			for (size_t k = 0; k < n_enc; k++) {
				struct encoder *e = &enc[(r + k) % n_enc];
				double t0 = now_us();
				size_t len;

				if (e->run(e, in, n, out, cap, &len) < 0) {
					fprintf(stderr, "bench_compress: %s failed\n", e->name);
					return 1;
				}
				double t = now_us() - t0;
				if (r < 2) { /* warm-up; check the output once */
					if (!round_trips(out, len, in, n, scratch)) {
						fprintf(stderr,
							"bench_compress: %s: output does not "
							"inflate back to the input\n",
							e->name);
						status = 1;
					}
					continue;
				}
				e->t[r - 2] = t;
				e->out_len = len;
			}
		}
		printf("%s: %zu bytes, %u rounds\n", argv[a], n, rounds);
		printf("%-14s %10s %10s %8s %10s %7s %9s\n", "encoder", "median us", "p90 us",
		       "MB/s", "out bytes", "ratio", "x zlib 1");
		double zlib1 = pct(enc[0].t, rounds, 0.5);
		for (size_t i = 0; i < n_enc; i++) {
			double med = pct(enc[i].t, rounds, 0.5);
			printf("%-14s %10.1f %10.1f %8.0f %10zu %7.2f %9.2f\n", enc[i].name, med,
			       pct(enc[i].t, rounds, 0.9), (double)n / med, enc[i].out_len,
			       (double)n / (double)enc[i].out_len, med / zlib1);
		}
		free(in);
		free(out);
		free(scratch);
	}
	return status;
}
