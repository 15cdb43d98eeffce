/* SPDX-License-Identifier: MIT */
/*
 * bench_scrape: what a scrape costs next to the reads it cannot avoid.
 *
 *   bench_scrape [--vms N] [--vcpus M] [--iterations I] [--per-vcpu | --aggregate]
 *                [--no-run] [--dump PATH]
 *
 * Makes N VMs of M vCPUs in this process (KVM_CREATE_VM, KVM_CREATE_VCPU,
 * KVM_GET_STATS_FD for the VM and each vCPU), hands the stats fds to a
 * collector exactly as the procfs source does, then times, interleaved in one
 * run so that drift (frequency, noisy neighbours) hits every figure alike:
 *
 *   pread floor   one pread() of every fd's data block: what any reader pays;
 *   scrape        collector_collect() into a reused buffer (reads + format);
 *   format only   the exposition writer alone (collector_write()), on the values
 *                 already read;
 *   schedstat floor  one pread() of every vCPU thread's /proc/PID/task/TID/schedstat;
 *   scrape + threads the scrape with every vCPU mapped to a thread of its own
 *                 (idle threads of this process), so that it also reads each
 *                 thread's schedstat file and writes the kvm_vcpu_thread_*
 *                 families: next to the plain scrape, what the thread files add.
 *
 * It also reports the collector's memory and counts allocations per scrape
 * (malloc interposed below): after warm-up a scrape should allocate nothing,
 * whatever the number of series. The figures are checked for sanity (series
 * count as the translations predict, no write failure), so a run with tiny
 * sizes doubles as a smoke test. Exit status 77 when /dev/kvm is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/kvm.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "collector.h"
#include "expo/exposition.h"
#include "kvmstats.h"
#include "macro.h"
#include "expo/outbuf.h"
#include "translate.h"
#include "vcpu_thread.h"

/*
 * Allocation counter. Replacing malloc and friends (glibc supports this by
 * symbol interposition, and its own strdup, asprintf and vsnprintf then
 * come here too) counts every allocation, not only those the project's code
 * makes directly. Sanitizers bring their own allocator: no counting there.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
	__has_feature(memory_sanitizer)
#define COUNT_ALLOCS 0
#endif
#endif
#if !defined(COUNT_ALLOCS) && defined(__GLIBC__)
#define COUNT_ALLOCS 1
#endif
#ifndef COUNT_ALLOCS
#define COUNT_ALLOCS 0
#endif

/*
 * volatile: the compiler knows builtins such as strdup() do not touch our
 * statics, and would otherwise reuse a value read before them.
 */
static volatile unsigned long n_allocs;

#if COUNT_ALLOCS
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *p, size_t size);

void *malloc(size_t size)
{
	n_allocs++;
	return __libc_malloc(size);
}

void *calloc(size_t nmemb, size_t size)
{
	n_allocs++;
	return __libc_calloc(nmemb, size);
}

void *realloc(void *p, size_t size)
{
	n_allocs++;
	return __libc_realloc(p, size);
}

void *reallocarray(void *p, size_t nmemb, size_t size)
{
	size_t bytes;

	if (__builtin_mul_overflow(nmemb, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	n_allocs++;
	return __libc_realloc(p, bytes);
}
#endif

/*
 * Real mode, one page: 16 port writes then hlt (the canary's code). Running
 * vCPU 0 once makes exits, halt and I/O counters nonzero, so the scrape
 * formats realistic numbers rather than a page of zeros.
 */
static const uint8_t guest_code[] = {
	0xb9, 0x10, 0x00, /* mov cx, 16 */
	0xe6, 0x80,       /* out 0x80, al */
	0xe2, 0xfc,       /* loop 3 */
	0xf4,             /* hlt */
};
#define GUEST_MEM_SIZE 0x1000

/* Fds besides the VMs': stdio, /dev/kvm, /proc/self/statm, the dump file. */
#define FD_HEADROOM 64

struct opts {
	unsigned vms;
	unsigned vcpus;
	unsigned iterations;
	bool aggregate;
	bool per_vcpu;
	bool run_guest;
	bool threads;
	const char *dump;
};

/* The KVM objects of one VM; its stats fds go to the collector. */
struct bench_vm {
	int vm_fd;
	int *vcpu_fds;
	unsigned n_vcpus;
};

struct host {
	int kvm_fd;
	void *guest_mem;
	size_t run_size;
	bool run_guest;
	bool run_failed;
	struct bench_vm *vms;
	unsigned n_vms;
	unsigned vcpus_per_vm;
	int *stats_fds; /* per VM: the VM's, then each vCPU's; the collector's once built */
};

enum {
	M_FLOOR,
	M_SCRAPE_AGG,
	M_SCRAPE_VCPU,
	M_FORMAT_AGG,
	M_FORMAT_VCPU,
	M_THREAD_FLOOR,
	M_SCRAPE_AGG_THREADS,
	M_SCRAPE_VCPU_THREADS,
	M__MAX,
};

static const char *const measure_labels[M__MAX] = {
	[M_FLOOR] = "pread floor",
	[M_SCRAPE_AGG] = "scrape, aggregate",
	[M_SCRAPE_VCPU] = "scrape, per-vCPU",
	[M_FORMAT_AGG] = "format only, aggregate",
	[M_FORMAT_VCPU] = "format only, per-vCPU",
	[M_THREAD_FLOOR] = "schedstat floor",
	[M_SCRAPE_AGG_THREADS] = "scrape, agg. + threads",
	[M_SCRAPE_VCPU_THREADS] = "scrape, vCPU + threads",
};

/* One timed thing: its samples and what its last run produced. */
struct measure {
	uint64_t *ns;
	unsigned long *allocs;
	unsigned long first_allocs; /* of the cold first run */
	struct outbuf out;
	size_t series;
	size_t kvm_series;
	double median;
	double p90;
};

/* A data block the floor reads: the collector's fds, into buffers of its own. */
struct floor_fd {
	int fd;
	uint32_t offset;
	uint32_t size;
	void *buf;
};

struct bench {
	struct opts o;
	struct host h;
	struct collector c;
	bool have_collector;
	struct floor_fd *fl;
	size_t n_fl;
	struct measure m[M__MAX];
	unsigned enabled[M__MAX];
	unsigned n_enabled;
	unsigned warmup;
	long rss0, rss1, rss2;
	size_t heap0, heap1, heap_run0, heap_run1;
	/* One idle thread per vCPU and its schedstat file (--threads). */
	pthread_t *threads;
	pid_t *tids;
	int *thread_fds;
	size_t n_threads;
	int thread_pipe[2];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_scrape [--vms N] [--vcpus M] [--iterations I]\n"
		   "                    [--per-vcpu | --aggregate] [--no-run] [--no-threads]\n"
		   "                    [--dump PATH]\n"
		   "  --vms N         VMs to create (default 100)\n"
		   "  --vcpus M       vCPUs per VM (default 8)\n"
		   "  --iterations I  timed rounds after warm-up (default 200)\n"
		   "  --per-vcpu      time only the per-vCPU mode (default: both modes)\n"
		   "  --aggregate     time only the aggregate mode\n"
		   "  --no-run        do not run vCPU 0 of each VM (all values stay 0)\n"
		   "  --no-threads    do not time the scrape with vCPU thread files\n"
		   "  --dump PATH     write the last scrape of the headline mode to PATH\n");
}

/* 0, 1 when --help was answered, or -EINVAL. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "vms", required_argument, NULL, 'n' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "iterations", required_argument, NULL, 'i' },
		{ "per-vcpu", no_argument, NULL, 'p' },
		{ "aggregate", no_argument, NULL, 'a' },
		{ "no-run", no_argument, NULL, 'r' },
		{ "no-threads", no_argument, NULL, 't' },
		{ "dump", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c, idx = 0, r = 0;

	*o = (struct opts){
		.vms = 100, .vcpus = 8, .iterations = 200, .run_guest = true, .threads = true
	};
	while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		switch (c) {
		case 'n':
			r = parse_unsigned(optarg, 1, 100000, &o->vms);
			break;
		case 'c':
			r = parse_unsigned(optarg, 1, 4096, &o->vcpus);
			break;
		case 'i':
			r = parse_unsigned(optarg, 1, 10000000, &o->iterations);
			break;
		case 'p':
			o->per_vcpu = true;
			break;
		case 'a':
			o->aggregate = true;
			break;
		case 'r':
			o->run_guest = false;
			break;
		case 't':
			o->threads = false;
			break;
		case 'd':
			o->dump = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "bench_scrape: invalid value \"%s\" for --%s\n", optarg,
				longopts[idx].name);
			return r;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "bench_scrape: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	if (!o->per_vcpu && !o->aggregate)
		o->per_vcpu = o->aggregate = true;
	return 0;
}

/*
 * 100 VMs of 8 vCPUs hold 900 stats fds plus 900 VM and vCPU fds and 100
 * pidfds: more than the usual soft limit of 1024. Returns the limit in force.
 */
static rlim_t raise_nofile(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur >= need)
		return rl.rlim_cur;
	if (rl.rlim_max < need) {
		struct rlimit want = { .rlim_cur = need, .rlim_max = need };

		/* Only with CAP_SYS_RESOURCE; otherwise settle for the hard limit. */
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return need;
		fprintf(stderr, "bench_scrape: cannot raise RLIMIT_NOFILE to %llu: %s\n",
			(unsigned long long)need, strerror(errno));
		need = rl.rlim_max;
	}
	rl.rlim_cur = need;
	return setrlimit(RLIMIT_NOFILE, &rl) == 0 ? need : rl.rlim_cur;
}

/* Runs vCPU 0 until its hlt; a failure only leaves the counters at zero. */
static void run_vcpu0(struct host *h, const struct bench_vm *bvm)
{
	struct kvm_userspace_memory_region region = {
		.memory_size = GUEST_MEM_SIZE,
		.userspace_addr = (uintptr_t)h->guest_mem,
	};
	struct kvm_regs regs = { .rip = 0, .rflags = 0x2 };
	struct kvm_sregs sregs;
	struct kvm_run *run;
	const char *step = NULL;
	int fd = bvm->vcpu_fds[0];

	run = mmap(NULL, h->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (run == MAP_FAILED) {
		step = "mapping kvm_run";
		goto out;
	}
	if (ioctl(bvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		step = "KVM_SET_USER_MEMORY_REGION";
	} else if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0) {
		step = "KVM_GET_SREGS";
	} else {
		sregs.cs.base = 0;
		sregs.cs.selector = 0;
		if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(fd, KVM_SET_REGS, &regs) < 0)
			step = "KVM_SET_SREGS/KVM_SET_REGS";
	}
	/* Bounded: 16 I/O exits and one halt are expected. */
	for (unsigned i = 0; !step && i < 64; i++) {
		if (ioctl(fd, KVM_RUN, 0) < 0) {
			if (errno != EINTR)
				step = "KVM_RUN";
		} else if (run->exit_reason == KVM_EXIT_HLT) {
			break;
		} else if (run->exit_reason != KVM_EXIT_IO) {
			errno = EPROTO;
			step = "KVM_RUN (unexpected exit)";
		}
	}
	munmap(run, h->run_size);
out:
	if (step && !h->run_failed) {
		fprintf(stderr, "bench_scrape: running vCPU 0 failed at %s: %s; values stay 0\n",
			step, strerror(errno));
		h->run_failed = true;
	}
}

static void bench_vm_release(struct bench_vm *bvm)
{
	for (unsigned j = 0; j < bvm->n_vcpus; j++)
		close(bvm->vcpu_fds[j]);
	free(bvm->vcpu_fds);
	safe_close(bvm->vm_fd);
	*bvm = (struct bench_vm){ .vm_fd = -1 };
}

/*
 * One VM with n vCPUs and its n + 1 stats fds, or nothing (so every VM
 * measured has the same shape): 0, or -errno with *ret_step naming the call.
 */
static int vm_create(struct host *h, unsigned n, struct bench_vm *bvm, int *stats_fds,
		     const char **ret_step)
{
	unsigned n_stats = 0;
	int r;

	*bvm = (struct bench_vm){ .vm_fd = -1 };
	bvm->vcpu_fds = calloc(n, sizeof(int));
	if (!bvm->vcpu_fds) {
		*ret_step = "allocating";
		return -ENOMEM;
	}
	bvm->vm_fd = ioctl(h->kvm_fd, KVM_CREATE_VM, 0);
	if (bvm->vm_fd < 0) {
		*ret_step = "KVM_CREATE_VM";
		goto fail;
	}
	/* Intel without unrestricted guest needs a TSS for real mode; harmless elsewhere. */
	(void)ioctl(bvm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	for (unsigned j = 0; j < n; j++) {
		int fd = ioctl(bvm->vm_fd, KVM_CREATE_VCPU, (unsigned long)j);

		if (fd < 0) {
			*ret_step = "KVM_CREATE_VCPU";
			goto fail;
		}
		bvm->vcpu_fds[bvm->n_vcpus++] = fd;
	}
	if (h->run_guest)
		run_vcpu0(h, bvm);
	for (unsigned j = 0; j <= n; j++) {
		int fd = ioctl(j == 0 ? bvm->vm_fd : bvm->vcpu_fds[j - 1], KVM_GET_STATS_FD, 0);

		if (fd < 0) {
			*ret_step = "KVM_GET_STATS_FD";
			goto fail;
		}
		stats_fds[n_stats++] = fd;
	}
	return 0;

fail:
	r = -errno;
	while (n_stats > 0)
		close(stats_fds[--n_stats]);
	bench_vm_release(bvm);
	return r;
}

/*
 * Makes up to vms VMs of vcpus vCPUs. Nested KVM, memory or fd limits may
 * stop it early: it says why and the run goes on with the VMs made.
 */
static int create_vms(struct host *h, unsigned vms, unsigned vcpus)
{
	h->vcpus_per_vm = vcpus;
	h->vms = calloc(vms, sizeof(*h->vms));
	h->stats_fds = calloc((size_t)vms * (vcpus + 1), sizeof(int));
	if (!h->vms || !h->stats_fds)
		return -ENOMEM;
	for (unsigned i = 0; i < vms; i++) {
		const char *step = "";
		int r = vm_create(h, vcpus, &h->vms[i], &h->stats_fds[(size_t)i * (vcpus + 1)],
				  &step);

		if (r < 0) {
			fprintf(stderr,
				"bench_scrape: VM %u: %s failed: %s; going on with the %u "
				"VMs made\n",
				i, step, strerror(-r), i);
			return i > 0 ? 0 : r;
		}
		h->n_vms++;
	}
	return 0;
}

/* 0, or 77 (skip) when there is no KVM with binary stats, or -errno. */
static int host_open(struct host *h, const struct opts *o)
{
	unsigned vms = o->vms, vcpus = o->vcpus, per_vm, fit;
	rlim_t limit;
	int r;

	*h = (struct host){ .kvm_fd = -1, .run_guest = o->run_guest };
	if (access("/dev/kvm", F_OK) < 0) {
		fprintf(stderr, "bench_scrape: SKIP: /dev/kvm is missing: cannot make VMs\n");
		return 77;
	}
	h->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (h->kvm_fd < 0) {
		r = -errno;
		fprintf(stderr, "bench_scrape: cannot open /dev/kvm: %s\n", strerror(errno));
		return r;
	}
	if (ioctl(h->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) <= 0) {
		fprintf(stderr,
			"bench_scrape: SKIP: this kernel has no KVM_GET_STATS_FD (5.14+)\n");
		return 77;
	}
	r = ioctl(h->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (r > 0 && vcpus > (unsigned)r) {
		fprintf(stderr, "bench_scrape: KVM allows %d vCPUs per VM: using %d, not %u\n", r,
			r, vcpus);
		vcpus = (unsigned)r;
	}

	per_vm = 2 * (vcpus + 1) + 1; /* VM and vCPU fds, their stats fds, a pidfd */
	limit = raise_nofile((rlim_t)vms * per_vm + FD_HEADROOM);
	fit = limit > FD_HEADROOM ? (unsigned)((limit - FD_HEADROOM) / per_vm) : 0;
	if (fit < vms) {
		fprintf(stderr, "bench_scrape: %llu fds allow only %u VMs of %u vCPUs\n",
			(unsigned long long)limit, fit, vcpus);
		vms = fit;
		if (fit == 0)
			return -EMFILE;
	}

	r = ioctl(h->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	h->run_size = r > 0 ? (size_t)r : 0;
	h->guest_mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (h->guest_mem == MAP_FAILED)
		h->guest_mem = NULL;
	if (!h->guest_mem || h->run_size == 0)
		h->run_guest = false;
	else
		memcpy(h->guest_mem, guest_code, sizeof(guest_code));

	return create_vms(h, vms, vcpus);
}

static void host_release(struct host *h)
{
	for (unsigned i = 0; i < h->n_vms; i++)
		bench_vm_release(&h->vms[i]);
	free(h->vms);
	free(h->stats_fds);
	if (h->guest_mem)
		munmap(h->guest_mem, GUEST_MEM_SIZE);
	safe_close(h->kvm_fd);
}

static long rss_bytes(void)
{
	unsigned long size, resident;
	FILE *f = fopen("/proc/self/statm", "re");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	return n == 2 ? (long)resident * sysconf(_SC_PAGESIZE) : -1;
}

static size_t heap_in_use(void)
{
#ifdef __GLIBC__
	return mallinfo2().uordblks;
#else
	return 0;
#endif
}

/* Consumes fd: it belongs to *ret on success, and is closed otherwise. */
static int open_stats_file(struct collector *c, int fd, struct kvmstats_file **ret)
{
	struct kvmstats_error err;
	char msg[256];
	int r;

	r = kvmstats_file_open_fd(fd, ret, &err);
	if (r < 0) {
		if (r == -EBADMSG)
			kvmstats_error_format(&err, msg, sizeof(msg));
		else
			snprintf(msg, sizeof(msg), "%s", strerror(-r));
		fprintf(stderr, "bench_scrape: stats fd %d rejected: %s\n", fd, msg);
		close(fd);
		return r;
	}
	r = collector_prepare_file(c, *ret);
	if (r < 0) {
		fprintf(stderr, "bench_scrape: stats fd %d: %s\n", fd, strerror(-r));
		*ret = kvmstats_file_free(*ret);
	}
	return r;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct vm *, vm_free)

/*
 * Wraps one VM's stats fds as the procfs source does: a pidfd watched by
 * every scrape's liveness poll, the fd numbers as target fds, a name, uuid
 * and VMM for kvm_vm_info. Consumes fds[0] (the VM's) to fds[n_vcpus].
 */
static int add_vm(struct collector *c, unsigned index, const int *fds, unsigned n_vcpus)
{
	_cleanup_(vm_freep) struct vm *vm = vm_new(VM_SOURCE_PROCFS);
	unsigned i = 0;
	int r = -ENOMEM;

	if (!vm)
		goto fail;
	vm->pid = getpid();
	vm->pidfd = (int)syscall(SYS_pidfd_open, vm->pid, 0);
	if (asprintf(&vm->name, "bench-%04u", index) < 0 ||
	    asprintf(&vm->uuid, "00000000-0000-4000-8000-%012x", index) < 0 ||
	    !(vm->vmm = strdup("bench_scrape")))
		goto fail;

	for (; i <= n_vcpus; i++) {
		struct kvmstats_file *f;

		r = open_stats_file(c, fds[i], &f);
		if (r < 0)
			goto fail_next;
		if (i == 0) {
			vm->vm_file = f;
			vm->vm_target_fd = fds[0];
			vm->kvm_id = strndup(f->id, strcspn(f->id, "/"));
			r = vm->kvm_id ? 0 : -ENOMEM;
		} else {
			r = vm_add_vcpu(vm, f, fds[i]);
			if (r < 0)
				kvmstats_file_free(f);
		}
		if (r < 0)
			goto fail_next;
	}
	return collector_add_vm(c, TAKE_PTR(vm));

fail_next:
	i++; /* fds[i] is already closed */
fail:
	for (; i <= n_vcpus; i++)
		close(fds[i]);
	return r;
}

/* Hands every stats fd to a new collector, measuring the memory that takes. */
static int build_collector(struct bench *b)
{
	struct host *h = &b->h;
	unsigned stride = h->vcpus_per_vm + 1;
	int r;

	/* Everything until here is KVM's or the benchmark's, not the collector's. */
	b->heap0 = heap_in_use();
	b->rss0 = rss_bytes();
	r = collector_init(&b->c, false);
	if (r < 0)
		return r;
	b->have_collector = true;
	for (unsigned i = 0; i < h->n_vms; i++) {
		pthread_mutex_lock(&b->c.lock);
		r = add_vm(&b->c, i, &h->stats_fds[(size_t)i * stride], h->vcpus_per_vm);
		pthread_mutex_unlock(&b->c.lock);
		if (r < 0) {
			fprintf(stderr, "bench_scrape: cannot add VM %u: %s\n", i, strerror(-r));
			/* The later VMs' stats fds are not the collector's yet. */
			for (size_t k = (size_t)(i + 1) * stride; k < (size_t)h->n_vms * stride;
			     k++)
				close(h->stats_fds[k]);
			return r;
		}
	}
	b->heap1 = heap_in_use();
	b->rss1 = rss_bytes();

	b->fl = calloc((size_t)h->n_vms * stride, sizeof(*b->fl));
	if (!b->fl)
		return -ENOMEM;
	for (size_t i = 0; i < b->c.n_vms; i++) {
		const struct vm *vm = b->c.vms[i];

		for (size_t j = 0; j <= vm->n_vcpus; j++) {
			const struct kvmstats_file *f =
				j == 0 ? vm->vm_file : vm->vcpus[j - 1].file;
			struct floor_fd *fl = &b->fl[b->n_fl++];

			*fl = (struct floor_fd){ .fd = f->fd,
						 .offset = f->schema->data_offset,
						 .size = f->schema->data_size,
						 .buf = malloc(f->schema->data_size) };
			if (!fl->buf)
				return -ENOMEM;
		}
	}
	return 0;
}

/* Samples in an exposition: lines not starting with '#'; and those of KVM families. */
static void count_series(const struct outbuf *out, size_t *ret_all, size_t *ret_kvm)
{
	const char *p = out->data, *end = out->data + out->len;
	size_t all = 0, kvm = 0;

	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (*p != '#') {
			all++;
			if (end - p >= 4 && memcmp(p, "kvm_", 4) == 0)
				kvm++;
		}
		p = nl ? nl + 1 : end;
	}
	*ret_all = all;
	*ret_kvm = kvm;
}

static size_t file_series(const struct kvmstats_file *f)
{
	const struct kvmstats_translation *t = vm_file_translation(f);
	size_t n = 0;

	for (size_t i = 0; i < t->n_families; i++) {
		const struct kvmstats_family *fam = &t->families[i];

		if (fam->type != KVMSTATS_METRIC_HISTOGRAM)
			n++;
		else /* buckets, _sum when there is a companion, _count */
			n += fam->n_buckets + (fam->sum_desc >= 0 ? 1 : 0) + 1;
	}
	return n;
}

/* KVM samples the translations predict: kvm_vm_info, VM families, vCPU families. */
static size_t expected_kvm_series(const struct collector *c, bool per_vcpu, bool threads)
{
	size_t n = 0;

	for (size_t i = 0; i < c->n_vms; i++) {
		const struct vm *vm = c->vms[i];

		n += 1 + (vm->vm_file ? file_series(vm->vm_file) : 0);
		if (vm->n_vcpus > 0)
			n += file_series(vm->vcpus[0].file) * (per_vcpu ? vm->n_vcpus : 1);
		/* kvm_vcpu_thread_{cpu,run_delay}_seconds_total, _timeslices_total */
		if (threads && vm->n_vcpus > 0)
			n += 3 * (per_vcpu ? vm->n_vcpus : 1);
	}
	return n;
}

static int read_floor(const struct floor_fd *fl, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ssize_t r = pread(fl[i].fd, fl[i].buf, fl[i].size, fl[i].offset);

		if (r != (ssize_t)fl[i].size)
			return r < 0 ? -errno : -EIO;
	}
	return 0;
}

static bool measure_is_per_vcpu(unsigned k)
{
	return k == M_SCRAPE_VCPU || k == M_FORMAT_VCPU || k == M_SCRAPE_VCPU_THREADS;
}

static bool measure_is_threads(unsigned k)
{
	return k == M_THREAD_FLOOR || k == M_SCRAPE_AGG_THREADS || k == M_SCRAPE_VCPU_THREADS;
}

/* An idle thread standing in for a vCPU thread: it waits until the pipe closes. */
struct idle_arg {
	pid_t *tid;
	int fd;
};

static void *idle_thread(void *p)
{
	struct idle_arg a = *(struct idle_arg *)p;
	char c;

	free(p);
	__atomic_store_n(a.tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	(void)!read(a.fd, &c, 1);
	return NULL;
}

/* One idle thread per vCPU, and its schedstat file opened as the mapping does. */
static int start_threads(struct bench *b)
{
	pthread_attr_t attr;
	size_t n = 0;
	int r = 0;

	for (size_t i = 0; i < b->c.n_vms; i++)
		n += b->c.vms[i]->n_vcpus;
	b->threads = calloc(n, sizeof(*b->threads));
	b->tids = calloc(n, sizeof(*b->tids));
	b->thread_fds = calloc(n, sizeof(*b->thread_fds));
	if (!b->threads || !b->tids || !b->thread_fds || pipe2(b->thread_pipe, O_CLOEXEC) < 0)
		return -ENOMEM;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (; b->n_threads < n; b->n_threads++) {
		struct idle_arg *a = malloc(sizeof(*a));

		if (!a)
			return -ENOMEM;
		*a = (struct idle_arg){ &b->tids[b->n_threads], b->thread_pipe[0] };
		r = -pthread_create(&b->threads[b->n_threads], &attr, idle_thread, a);
		if (r < 0) {
			free(a);
			break;
		}
	}
	pthread_attr_destroy(&attr);
	for (size_t i = 0; i < b->n_threads; i++) {
		pid_t tid;

		while ((tid = __atomic_load_n(&b->tids[i], __ATOMIC_SEQ_CST)) == 0)
			usleep(100);
		b->thread_fds[i] = vcpu_thread_open("/proc", getpid(), tid);
		if (b->thread_fds[i] < 0 && r == 0)
			r = b->thread_fds[i];
	}
	return r;
}

static void stop_threads(struct bench *b)
{
	if (b->thread_pipe[1] > 0)
		close(b->thread_pipe[1]);
	for (size_t i = 0; i < b->n_threads; i++) {
		pthread_join(b->threads[i], NULL);
		if (b->thread_fds[i] >= 0)
			close(b->thread_fds[i]);
	}
	if (b->thread_pipe[0] > 0)
		close(b->thread_pipe[0]);
	free(b->threads);
	free(b->tids);
	free(b->thread_fds);
}

/*
 * Maps every vCPU to its thread, or unmaps them all as if the VMM had no
 * process to look in (no kvm_vcpu_thread_* series at all: the plain scrape).
 * The files stay the benchmark's: they are lent, never closed by the collector.
 */
static void map_threads(struct bench *b, bool on)
{
	size_t k = 0;

	pthread_mutex_lock(&b->c.lock);
	for (size_t i = 0; i < b->c.n_vms; i++)
		for (size_t j = 0; j < b->c.vms[i]->n_vcpus && k < b->n_threads; j++, k++) {
			struct vcpu_thread *t = &b->c.vms[i]->vcpus[j].thread;

			*t = (struct vcpu_thread){ .fd = on ? b->thread_fds[k] : -1,
						   .tid = on ? b->tids[k] : 0,
						   .reason = on ? VCPU_THREAD_MAPPED
								: VCPU_THREAD_NO_PROCESS };
		}
	pthread_mutex_unlock(&b->c.lock);
}

static int read_thread_floor(struct bench *b)
{
	char buf[SCHEDSTAT_MAX_LEN + 1];

	for (size_t i = 0; i < b->n_threads; i++)
		if (pread(b->thread_fds[i], buf, sizeof(buf), 0) <= 0)
			return -errno;
	return 0;
}

/* Slots of run_one() that are not timed. */
#define SLOT_COLD   (-1L) /* the first run: its allocations are reported apart */
#define SLOT_WARMUP (-2L)

/* Runs measurement k once; records its time and allocations in slot if >= 0. */
static int run_one(struct bench *b, unsigned k, long slot)
{
	struct measure *m = &b->m[k];
	unsigned long a0 = n_allocs;
	uint64_t t0, t1;
	int r = 0;

	if (b->o.threads)
		map_threads(b, k == M_SCRAPE_AGG_THREADS || k == M_SCRAPE_VCPU_THREADS);
	t0 = now_ns();
	switch (k) {
	case M_FLOOR:
		r = read_floor(b->fl, b->n_fl);
		break;
	case M_THREAD_FLOOR:
		r = read_thread_floor(b);
		break;
	case M_SCRAPE_AGG:
	case M_SCRAPE_VCPU:
	case M_SCRAPE_AGG_THREADS:
	case M_SCRAPE_VCPU_THREADS:
		b->c.per_vcpu = measure_is_per_vcpu(k);
		outbuf_reset(&m->out);
		r = collector_collect(&b->c, &m->out, EXPOSITION_TEXT_004);
		break;
	case M_FORMAT_AGG:
	case M_FORMAT_VCPU:
		b->c.per_vcpu = k == M_FORMAT_VCPU;
		outbuf_reset(&m->out);
		pthread_mutex_lock(&b->c.lock);
		r = collector_write(&b->c, &m->out, EXPOSITION_TEXT_004, 0.0);
		pthread_mutex_unlock(&b->c.lock);
		if (r >= 0 && m->out.failed)
			r = -ENOMEM;
		break;
	}
	t1 = now_ns();
	if (slot >= 0) {
		m->ns[slot] = t1 - t0;
		m->allocs[slot] = n_allocs - a0;
	} else if (slot == SLOT_COLD) {
		m->first_allocs = n_allocs - a0;
	}
	if (r < 0)
		fprintf(stderr, "bench_scrape: %s failed: %s\n", measure_labels[k], strerror(-r));
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median and p90 (nearest rank) of the samples, in ns. */
static void percentiles(struct measure *m, size_t n)
{
	_cleanup_free_ uint64_t *s = malloc(n * sizeof(*s));
	size_t k90 = (n * 9 + 9) / 10;

	if (!s)
		return;
	memcpy(s, m->ns, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_u64);
	m->median = n % 2 ? (double)s[n / 2] : ((double)s[n / 2 - 1] + (double)s[n / 2]) / 2;
	m->p90 = (double)s[k90 - 1];
}

/*
 * Every measurement once cold, then warm-up and timed rounds, rotating the
 * order each round so that none always runs first (cold caches) or last.
 */
static int measure_all(struct bench *b)
{
	int r = 0;

	for (unsigned k = 0; k < M__MAX; k++) {
		if (k != M_FLOOR && k != M_THREAD_FLOOR &&
		    !(measure_is_per_vcpu(k) ? b->o.per_vcpu : b->o.aggregate))
			continue;
		if (measure_is_threads(k) && !b->o.threads)
			continue;
		b->enabled[b->n_enabled++] = k;
		b->m[k].ns = calloc(b->o.iterations, sizeof(*b->m[k].ns));
		b->m[k].allocs = calloc(b->o.iterations, sizeof(*b->m[k].allocs));
		if (!b->m[k].ns || !b->m[k].allocs)
			return -ENOMEM;
	}
	for (unsigned e = 0; e < b->n_enabled; e++)
		if (run_one(b, b->enabled[e], SLOT_COLD) < 0)
			r = -EIO;
	b->rss2 = rss_bytes();

	b->warmup = b->o.iterations / 10 < 3 ? 3 : b->o.iterations / 10;
	b->heap_run0 = heap_in_use();
	for (unsigned it = 0; it < b->warmup + b->o.iterations; it++) {
		long slot = it < b->warmup ? SLOT_WARMUP : (long)(it - b->warmup);

		for (unsigned e = 0; e < b->n_enabled; e++)
			if (run_one(b, b->enabled[(e + it) % b->n_enabled], slot) < 0)
				r = -EIO;
	}
	b->heap_run1 = heap_in_use();
	return r;
}

/* False when a figure cannot be right: then the run measured nothing useful. */
static bool check_sane(struct bench *b)
{
	bool sane = true;

	for (unsigned e = 0; e < b->n_enabled; e++) {
		unsigned k = b->enabled[e];
		struct measure *m = &b->m[k];
		size_t want;

		percentiles(m, b->o.iterations);
		if (!(m->median > 0) || m->p90 < m->median) {
			fprintf(stderr, "bench_scrape: %s: median %.0f ns, p90 %.0f ns\n",
				measure_labels[k], m->median, m->p90);
			sane = false;
		}
		if (k == M_FLOOR || k == M_THREAD_FLOOR)
			continue;
		count_series(&m->out, &m->series, &m->kvm_series);
		want = expected_kvm_series(&b->c, measure_is_per_vcpu(k),
					   k == M_SCRAPE_AGG_THREADS || k == M_SCRAPE_VCPU_THREADS);
		if (m->out.failed || m->kvm_series != want) {
			fprintf(stderr, "bench_scrape: %s wrote %zu KVM samples, expected %zu\n",
				measure_labels[k], m->kvm_series, want);
			sane = false;
		}
	}
	if (b->c.read_errors != 0) {
		fprintf(stderr, "bench_scrape: %llu reads failed\n",
			(unsigned long long)b->c.read_errors);
		sane = false;
	}
	return sane;
}

static void report(const struct bench *b)
{
	const struct measure *floor = &b->m[M_FLOOR];
	const struct vm *vm0 = b->c.vms[0];
	unsigned headline = b->o.aggregate ? M_SCRAPE_AGG : M_SCRAPE_VCPU;

	/* What was made, which nested KVM or fd limits may have cut short. */
	printf("bench_scrape: %u VMs x %u vCPUs (requested %u x %u): %zu stats fds; "
	       "%u timed iterations after %u warm-up\n",
	       b->h.n_vms, b->h.vcpus_per_vm, b->o.vms, b->o.vcpus, b->n_fl, b->o.iterations,
	       b->warmup);
	printf("schemas: VM %u stats, %u-byte data block; vCPU %u stats, %u-byte data block; "
	       "guest code %s\n",
	       vm0->vm_file->schema->num_desc, vm0->vm_file->schema->data_size,
	       vm0->vcpus[0].file->schema->num_desc, vm0->vcpus[0].file->schema->data_size,
	       !b->h.run_guest   ? "not run"
	       : b->h.run_failed ? "failed"
				 : "run on vCPU 0");

	printf("\n%-24s %10s %10s %7s %10s %8s %9s %7s %5s\n", "measurement", "median us", "p90 us",
	       "x floor", "bytes", "series", "ns/series", "allocs", "1st");
	for (unsigned e = 0; e < b->n_enabled; e++) {
		unsigned k = b->enabled[e];
		const struct measure *m = &b->m[k];
		unsigned long amin = ULONG_MAX, amax = 0;
		char allocs[32] = "n/a", first[16] = "n/a";

		for (unsigned i = 0; i < b->o.iterations; i++) {
			amin = m->allocs[i] < amin ? m->allocs[i] : amin;
			amax = m->allocs[i] > amax ? m->allocs[i] : amax;
		}
		if (COUNT_ALLOCS && amin == amax)
			snprintf(allocs, sizeof(allocs), "%lu", amin);
		else if (COUNT_ALLOCS)
			snprintf(allocs, sizeof(allocs), "%lu-%lu", amin, amax);
		if (COUNT_ALLOCS)
			snprintf(first, sizeof(first), "%lu", m->first_allocs);
		printf("%-24s %10.1f %10.1f %7.2f ", measure_labels[k], m->median / 1e3,
		       m->p90 / 1e3, m->median / floor->median);
		if (k == M_FLOOR || k == M_THREAD_FLOOR)
			printf("%10s %8s %9s", "-", "-", "-");
		else
			printf("%10zu %8zu %9.1f", m->out.len, m->series,
			       m->series ? m->median / (double)m->series : 0.0);
		printf(" %7s %5s\n", allocs, first);
	}
	printf("(series: all samples incl. self-metrics; allocs: per timed run, min-max; "
	       "1st: the cold first run)\n\n");

	printf("memory: collector RSS +%ld KiB (%.0f B per fd); output buffers RSS +%ld KiB "
	       "after the first runs\n",
	       (b->rss1 - b->rss0) / 1024, (double)(b->rss1 - b->rss0) / (double)b->n_fl,
	       (b->rss2 - b->rss1) / 1024);
	/* Under a sanitizer mallinfo2() does not see its allocator. */
	if (COUNT_ALLOCS)
		printf("heap: collector +%zu KiB (%.0f B per fd); change across the timed "
		       "iterations %+ld bytes\n",
		       (b->heap1 - b->heap0) / 1024,
		       (double)(b->heap1 - b->heap0) / (double)b->n_fl,
		       (long)b->heap_run1 - (long)b->heap_run0);
	for (unsigned e = 0; e < b->n_enabled; e++)
		if (b->enabled[e] == M_SCRAPE_AGG || b->enabled[e] == M_SCRAPE_VCPU)
			printf("output buffer, %-17s %zu bytes capacity\n",
			       measure_labels[b->enabled[e]], b->m[b->enabled[e]].out.cap);

	if (b->o.aggregate && b->o.per_vcpu)
		printf("ratio scrape/pread (per-vCPU) = %.2f\n",
		       b->m[M_SCRAPE_VCPU].median / floor->median);
	printf("ratio scrape/pread = %.2f\n", b->m[headline].median / floor->median);
	if (b->o.threads) {
		unsigned with = b->o.aggregate ? M_SCRAPE_AGG_THREADS : M_SCRAPE_VCPU_THREADS;
		double added = b->m[with].median - b->m[headline].median;

		printf("vCPU threads: %zu schedstat files; schedstat floor = %.2f x pread floor; "
		       "the thread files add %.1f us per scrape (%.0f ns per thread) = %.2f x "
		       "the schedstat floor\n",
		       b->n_threads, b->m[M_THREAD_FLOOR].median / floor->median, added / 1e3,
		       added / (double)b->n_threads, added / b->m[M_THREAD_FLOOR].median);
		printf("ratio scrape+threads/pread = %.2f\n", b->m[with].median / floor->median);
	}
}

static int write_dump(const char *path, const struct outbuf *out)
{
	FILE *f = fopen(path, "we");
	bool ok;

	if (!f) {
		fprintf(stderr, "bench_scrape: cannot write %s: %s\n", path, strerror(errno));
		return -errno;
	}
	ok = fwrite(out->data, 1, out->len, f) == out->len;
	ok = fclose(f) == 0 && ok;
	if (!ok)
		fprintf(stderr, "bench_scrape: writing %s failed\n", path);
	return ok ? 0 : -EIO;
}

static void bench_release(struct bench *b)
{
	for (unsigned k = 0; k < M__MAX; k++) {
		outbuf_release(&b->m[k].out);
		free(b->m[k].ns);
		free(b->m[k].allocs);
	}
	for (size_t i = 0; i < b->n_fl; i++)
		free(b->fl[i].buf);
	free(b->fl);
	if (b->have_collector && b->n_threads > 0)
		map_threads(b, false); /* the thread files are ours to close */
	stop_threads(b);
	if (b->have_collector)
		collector_release(&b->c); /* closes the stats fds */
	host_release(&b->h);
}

int main(int argc, char **argv)
{
	struct bench b = { 0 };
	bool sane;
	int r;

	r = parse_opts(argc, argv, &b.o);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
	b.thread_pipe[0] = b.thread_pipe[1] = -1;
	r = host_open(&b.h, &b.o);
	if (r == 0)
		r = build_collector(&b);
	if (r == 0 && b.o.threads) {
		r = start_threads(&b);
		if (r < 0)
			fprintf(stderr, "bench_scrape: cannot start the vCPU threads: %s\n",
				strerror(-r));
	}
	if (r == 0)
		map_threads(&b, false);
	if (r != 0) {
		if (r < 0)
			fprintf(stderr, "bench_scrape: no VM to measure: %s\n", strerror(-r));
		bench_release(&b);
		return r > 0 ? r : EXIT_FAILURE;
	}

	r = measure_all(&b);
	sane = check_sane(&b) && r >= 0;
	report(&b);
	if (b.o.dump &&
	    write_dump(b.o.dump, &b.m[b.o.aggregate ? M_SCRAPE_AGG : M_SCRAPE_VCPU].out) < 0)
		sane = false;
	bench_release(&b);
	if (!sane) {
		fprintf(stderr, "bench_scrape: FAILED: the figures above are not sane\n");
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
