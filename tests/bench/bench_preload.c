/* SPDX-License-Identifier: MIT */
/*
 * bench_preload: what the LD_PRELOAD shim (contrib/preload) adds to a VMM's
 * ioctl calls, measured side by side in one run.
 *
 *   bench_preload SHIM.so [--calls N] [--rounds R] [--vcpus M]
 *
 * The program runs itself R times with the shim preloaded and R times
 * without, interleaved (the order alternates every round, so that neither
 * always runs first on cold caches), and each child times:
 *
 *   ioctl(-1, FIONREAD)               the cheapest ioctl there is (EBADF);
 *   ioctl(pipe, FIONREAD)             a cheap ioctl on a non-KVM fd;
 *   ioctl(/dev/kvm, KVM_CHECK_EXTENSION)  a cheap KVM ioctl;
 *
 * N calls each, in 5 batches (the child reports the median batch), all
 * through the hot path, which for the shim is the path of KVM_RUN too: one
 * compare and an indirect call. A KVM_RUN itself costs microseconds and
 * varies with the guest, so these calls make the wrapper's cost visible.
 * Then the slow path, which runs once per VM and vCPU: KVM_CREATE_VM and M x
 * KVM_CREATE_VCPU (with the shim: plus KVM_GET_STATS_FD, the table and the
 * eventfd poke; KVMSTATS_HANDOFF_SOCKET is empty so nothing is sent).
 *
 * Printed: for each measurement the median over the rounds without and with
 * the shim, the median of the per-round differences, and their range.
 * Sanity checks (exit 1): the shim is loaded exactly in the shim runs, it
 * kept 1 + M stats fds there and none without, every median is positive.
 * Without /dev/kvm the KVM rows say n/a.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <link.h>
#include <linux/kvm.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCHES    5
#define MAX_ROUNDS 101
#define SHIM_NAME  "libkvmstats_preload"

extern char **environ;

enum measure {
	M_EBADF,
	M_PIPE,
	M_KVM,
	M_CREATE_VM,
	M_CREATE_VCPU,
	M__MAX,
};

static const char *const measure_labels[M__MAX] = {
	[M_EBADF] = "ioctl(-1, FIONREAD) [EBADF]",     [M_PIPE] = "ioctl(pipe, FIONREAD)",
	[M_KVM] = "ioctl(kvm, KVM_CHECK_EXTENSION)",   [M_CREATE_VM] = "KVM_CREATE_VM",
	[M_CREATE_VCPU] = "KVM_CREATE_VCPU, per vCPU",
};

/* Child output: ns per call (or per create); negative when not measured. */
struct child_result {
	int shim_loaded;
	int stats_fds;
	double ns[M__MAX];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int shim_seen(struct dl_phdr_info *info, size_t size, void *data)
{
	if (info->dlpi_name && strstr(info->dlpi_name, SHIM_NAME))
		*(int *)data = 1;
	return 0;
}

/* ns per call of ioctl(fd, request, arg): the median of BATCHES batches. */
static double time_ioctl(int fd, unsigned long request, unsigned long arg, long calls)
{
	double batch[BATCHES];
	long per = calls / BATCHES > 0 ? calls / BATCHES : 1;

	for (int b = 0; b < BATCHES; b++) {
		uint64_t t0 = now_ns();

		for (long i = 0; i < per; i++) {
			int n;

			/* The result is used so that no call can be dropped. */
			if (ioctl(fd, request, request == FIONREAD ? (unsigned long)&n : arg) ==
			    INT_MIN)
				abort();
		}
		batch[b] = (double)(now_ns() - t0) / (double)per;
	}
	return median(batch, BATCHES);
}

static int count_stats_fds(void)
{
	char path[64], link[64];
	int n = 0;

	for (int fd = 0; fd < 4096; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;
		link[len] = '\0';
		if (strncmp(link, "anon_inode:kvm-vm-stats", 23) == 0 ||
		    strncmp(link, "anon_inode:kvm-vcpu-stats", 25) == 0)
			n++;
	}
	return n;
}

static int child(long calls, int vcpus)
{
	struct child_result r = { 0 };
	int p[2], kvm;

	dl_iterate_phdr(shim_seen, &r.shim_loaded);
	for (int m = 0; m < M__MAX; m++)
		r.ns[m] = -1;
	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("bench_preload: pipe");
		return 1;
	}
	r.ns[M_EBADF] = time_ioctl(-1, FIONREAD, 0, calls);
	r.ns[M_PIPE] = time_ioctl(p[0], FIONREAD, 0, calls);

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm >= 0) {
		uint64_t t0;
		int vm;

		r.ns[M_KVM] = time_ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY, calls);
		t0 = now_ns();
		vm = ioctl(kvm, KVM_CREATE_VM, 0UL);
		r.ns[M_CREATE_VM] = (double)(now_ns() - t0);
		if (vm >= 0) {
			int made = 0;

			t0 = now_ns();
			for (int i = 0; i < vcpus; i++)
				made += ioctl(vm, KVM_CREATE_VCPU, (unsigned long)i) >= 0;
			if (made == vcpus)
				r.ns[M_CREATE_VCPU] = (double)(now_ns() - t0) / vcpus;
			else
				fprintf(stderr, "bench_preload: made %d of %d vCPUs\n", made,
					vcpus);
		} else {
			r.ns[M_CREATE_VM] = -1;
			perror("bench_preload: KVM_CREATE_VM");
		}
	}
	r.stats_fds = count_stats_fds();
	printf("%d %d", r.shim_loaded, r.stats_fds);
	for (int m = 0; m < M__MAX; m++)
		printf(" %.3f", r.ns[m]);
	printf("\n");
	return 0;
}

/* Runs this program as a child, with or without the shim; 0 with its figures. */
static int run_child(const char *self, const char *shim, bool with_shim, long calls, int vcpus,
		     struct child_result *ret)
{
	char calls_s[32], vcpus_s[32], preload[PATH_MAX + 16], out[512];
	char *argv[] = { (char *)self, (char *)"--child", calls_s, vcpus_s, NULL };
	char **env;
	size_t n_env = 0, len = 0;
	posix_spawn_file_actions_t fa;
	int p[2], status, r;
	pid_t pid;
	ssize_t k;

	snprintf(calls_s, sizeof(calls_s), "%ld", calls);
	snprintf(vcpus_s, sizeof(vcpus_s), "%d", vcpus);
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", shim);
	for (char **e = environ; *e; e++)
		n_env++;
	env = calloc(n_env + 3, sizeof(char *));
	if (!env)
		return -ENOMEM;
	n_env = 0;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) != 0 && strncmp(*e, "KVMSTATS_", 9) != 0)
			env[n_env++] = *e;
	if (with_shim) {
		env[n_env++] = preload;
		env[n_env++] = (char *)"KVMSTATS_HANDOFF_SOCKET=";
	}

	if (pipe2(p, O_CLOEXEC) < 0) {
		free(env);
		return -errno;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	r = posix_spawn(&pid, self, &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	close(p[1]);
	if (r) {
		close(p[0]);
		return -r;
	}
	while (len < sizeof(out) - 1 && (k = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)k;
	out[len] = '\0';
	close(p[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -ECHILD;
	if (sscanf(out, "%d %d %lf %lf %lf %lf %lf", &ret->shim_loaded, &ret->stats_fds,
		   &ret->ns[0], &ret->ns[1], &ret->ns[2], &ret->ns[3], &ret->ns[4]) != 2 + M__MAX)
		return -EBADMSG;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_preload SHIM.so [--calls N] [--rounds R] [--vcpus M]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "calls", required_argument, NULL, 'c' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "vcpus", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct child_result res[2][MAX_ROUNDS];
	long calls = 1000000;
	int rounds = 7, vcpus = 8, c;
	char self[PATH_MAX];
	const char *shim;
	bool ok = true;
	ssize_t n;

	if (argc == 4 && strcmp(argv[1], "--child") == 0)
		return child(atol(argv[2]), atoi(argv[3]));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			calls = atol(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'v':
			vcpus = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc || calls < BATCHES || rounds < 1 || rounds > MAX_ROUNDS ||
	    vcpus < 1 || vcpus > 256) {
		usage(stderr);
		return 2;
	}
	shim = argv[optind];
	if (access(shim, R_OK) < 0) {
		fprintf(stderr, "bench_preload: %s: %s\n", shim, strerror(errno));
		return 1;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		perror("bench_preload: /proc/self/exe");
		return 1;
	}
	self[n] = '\0';
	char shim_abs[PATH_MAX];
	if (!realpath(shim, shim_abs)) {
		perror("bench_preload: realpath");
		return 1;
	}

	printf("bench_preload: %ld calls per measurement, %d rounds, %d vCPUs; shim %s\n", calls,
	       rounds, vcpus, shim_abs);
	for (int i = 0; i < rounds; i++) {
		for (int j = 0; j < 2; j++) {
			bool with_shim = (i + j) % 2 == 1; /* plain first on even rounds */
			int r = run_child(self, shim_abs, with_shim, calls, vcpus,
					  &res[with_shim][i]);

			if (r < 0) {
				fprintf(stderr, "bench_preload: child (%s shim) failed: %s\n",
					with_shim ? "with" : "without", strerror(-r));
				return 1;
			}
			if (res[with_shim][i].shim_loaded != with_shim) {
				fprintf(stderr,
					"bench_preload: the shim is %sloaded in a run %s it\n",
					with_shim ? "not " : "", with_shim ? "with" : "without");
				return 1;
			}
		}
	}

	printf("\n%-34s %10s %10s %12s %21s\n", "measurement (ns per call)", "plain", "shim",
	       "shim-plain", "range of differences");
	for (int m = 0; m < M__MAX; m++) {
		double plain[MAX_ROUNDS], with[MAX_ROUNDS], diff[MAX_ROUNDS];
		double mp, ms, md;

		if (res[0][0].ns[m] < 0) {
			printf("%-34s %10s %10s %12s\n", measure_labels[m], "n/a", "n/a", "n/a");
			continue;
		}
		for (int i = 0; i < rounds; i++) {
			plain[i] = res[0][i].ns[m];
			with[i] = res[1][i].ns[m];
			diff[i] = with[i] - plain[i];
		}
		mp = median(plain, (size_t)rounds);
		ms = median(with, (size_t)rounds);
		md = median(diff, (size_t)rounds);
		/* median() sorted diff: its ends are the range. */
		printf("%-34s %10.1f %10.1f %+12.1f %+10.1f..%+.1f\n", measure_labels[m], mp, ms,
		       md, diff[0], diff[rounds - 1]);
		if (!(mp > 0) || !(ms > 0)) {
			fprintf(stderr, "bench_preload: %s: non-positive median\n",
				measure_labels[m]);
			ok = false;
		}
	}
	for (int i = 0; i < rounds; i++) {
		int want = res[1][i].ns[M_CREATE_VCPU] >= 0 ? 1 + vcpus : 0;

		if (res[0][i].stats_fds != 0 || res[1][i].stats_fds != want) {
			fprintf(stderr,
				"bench_preload: round %d: %d stats fds without the shim, %d "
				"with (expected 0 and %d)\n",
				i, res[0][i].stats_fds, res[1][i].stats_fds, want);
			ok = false;
		}
	}
	printf("stats fds kept by the shim per run: %d (VM + %d vCPUs)\n", res[1][0].stats_fds,
	       vcpus);
	return ok ? 0 : 1;
}
