/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD shim for unmodified, dynamically linked VMMs (QEMU): wraps
 * ioctl() so that right after a successful KVM_CREATE_VM or KVM_CREATE_VCPU
 * the new VM's or vCPU's stats fd is made (only the VM's creator can make
 * one), kept open in the VMM (procfs discovery finds it there) and queued for
 * the hand-off thread, which gives it to the exporter (docs/handoff.md).
 *
 * Rules this file keeps:
 * - Every call goes through unchanged, with its result and errno.
 * - The hot path is a compare or two more than a plain call through a
 *   function pointer: KVM_RUN on the fd this thread ran last time, one
 *   thread-local compare; any other request but the two creates, one more.
 *   A thread's first KVM_RUN on a vCPU fd records which thread runs that
 *   vCPU, for the hand-off's "threads" message.
 * - Nothing here blocks: the hook does two short ioctls/syscalls, appends
 *   to the table under a mutex held for bookkeeping only, and pokes an
 *   eventfd. Every failure is swallowed; the hand-off thread reports it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "proto/handoff.h"
#include "preload.h"

#define EXPORT __attribute__((visibility("default")))

/* /dev/kvm is the misc device 10:232 (KVM_MINOR). */
#define KVM_DEV_MAJOR 10
#define KVM_DEV_MINOR 232

/* The two create requests differ in one bit, so one compare finds both. */
#define CREATE_REQUEST_BIT 0x40UL
_Static_assert((KVM_CREATE_VM ^ KVM_CREATE_VCPU) == CREATE_REQUEST_BIT,
	       "KVM_CREATE_VM and KVM_CREATE_VCPU differ in bit 6 only");
_Static_assert((KVM_CREATE_VM | CREATE_REQUEST_BIT) == KVM_CREATE_VCPU, "bit 6 set in VCPU");

typedef int (*ioctl_fn)(int fd, unsigned long request, ...);

struct preload_state preload = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.efd = -1,
};

static int ioctl_bootstrap(int fd, unsigned long request, ...);

/*
 * The next ioctl in the symbol search order (glibc's). Until the constructor
 * ran it points at ioctl_bootstrap, which resolves it once: another library's
 * constructor may call ioctl before ours, and no NULL check is then needed on
 * the hot path.
 */
static _Atomic(ioctl_fn) real_ioctl = ioctl_bootstrap;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Used when dlsym finds no next ioctl (a static libc, an odd loader): the raw system call. */
static int ioctl_syscall(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	return (int)syscall(SYS_ioctl, fd, request, arg);
}

static bool env_flag(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&preload.lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&preload.lock);
}

/*
 * A fork() child (without exec; exec closes everything of ours, all
 * O_CLOEXEC) must not keep the parent's connections, which would keep the
 * parent's VMs registered after the parent exited, nor its stats fds, which
 * would keep the VMs' kernel state alive. It also has no hand-off thread.
 */
static void fork_child(void)
{
	preload.forked_child = true;
	if (preload.efd >= 0)
		close(preload.efd);
	preload.efd = -1;
	for (size_t i = 0; i < PRELOAD_MAX_VMS; i++) {
		struct preload_vm *vm = &preload.vms[i];

		if (!vm->used)
			continue;
		if (vm->sock >= 0)
			close(vm->sock);
		if (vm->stats_fd >= 0)
			close(vm->stats_fd);
		for (size_t k = 0; k < vm->n_vcpus; k++)
			close(vm->vcpus[k].stats_fd);
		free(vm->vcpus);
		*vm = (struct preload_vm){ .vm_fd = -1, .stats_fd = -1, .sock = -1 };
	}
	pthread_mutex_unlock(&preload.lock);
}

static void preload_init(void)
{
	void *sym = dlsym(RTLD_NEXT, "ioctl");
	ioctl_fn next = NULL;
	const char *path, *name;

	/* ISO C has no object-to-function pointer cast; POSIX guarantees the representation. */
	memcpy(&next, &sym, sizeof(next));

	preload.disabled = env_flag("KVMSTATS_PRELOAD_DISABLE");
	path = getenv("KVMSTATS_HANDOFF_SOCKET");
	if (!path)
		path = PRELOAD_DEFAULT_SOCKET;
	if (strlen(path) < sizeof(preload.socket_path) - 1)
		memcpy(preload.socket_path, path, strlen(path) + 1);
	else
		preload.socket_path_too_long = true;
	name = getenv("KVMSTATS_VM_NAME");
	if (name && *name) {
		if (strlen(name) < sizeof(preload.env_name) && handoff_name_valid(name))
			memcpy(preload.env_name, name, strlen(name) + 1);
		else
			preload.env_name_invalid = true;
	}
	for (size_t i = 0; i < PRELOAD_MAX_VMS; i++)
		preload.vms[i] = (struct preload_vm){ .vm_fd = -1, .stats_fd = -1, .sock = -1 };
	if (!preload.disabled)
		pthread_atfork(fork_prepare, fork_parent, fork_child);

	atomic_store_explicit(&real_ioctl, next ? next : ioctl_syscall, memory_order_release);
}

__attribute__((constructor)) static void preload_constructor(void)
{
	int saved_errno = errno;

	pthread_once(&init_once, preload_init);
	errno = saved_errno;
}

static int ioctl_bootstrap(int fd, unsigned long request, ...)
{
	int saved_errno = errno;
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	pthread_once(&init_once, preload_init);
	errno = saved_errno;
	return atomic_load_explicit(&real_ioctl, memory_order_acquire)(fd, request, arg);
}

/*
 * A stats fd for a new VM or vCPU fd, or -1 with the reason in *failures.
 * Stats fds are not kept when the process is close to its fd limit: the
 * VMM's own files come first.
 */
static int stats_fd_make(ioctl_fn real, int fd, unsigned *failures)
{
	struct rlimit rl;
	int sfd = real(fd, KVM_GET_STATS_FD, NULL);

	if (sfd < 0) {
		if (!(preload.hook_failures & PRELOAD_FAIL_STATS_FD))
			preload.stats_fd_errno = errno;
		*failures |= PRELOAD_FAIL_STATS_FD;
		return -1;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		rlim_t headroom = rl.rlim_cur / 8 < 256 ? rl.rlim_cur / 8 : 256;

		if ((rlim_t)sfd + headroom >= rl.rlim_cur) {
			close(sfd);
			*failures |= PRELOAD_FAIL_LIMIT_NOFILE;
			return -1;
		}
	}
	return sfd;
}

/*
 * Called with the lock held after the table changed: starts the hand-off
 * thread on first use. Returns the eventfd to poke after unlocking, or -1.
 */
static int thread_wanted(bool *ret_start)
{
	*ret_start = false;
	if (preload.thread == PRELOAD_THREAD_NONE) {
		preload.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (preload.efd < 0) {
			preload.thread = PRELOAD_THREAD_FAILED;
			return -1;
		}
		preload.thread = PRELOAD_THREAD_RUNNING;
		*ret_start = true;
	}
	return preload.thread == PRELOAD_THREAD_RUNNING ? preload.efd : -1;
}

/* Called without the lock: starts the thread if asked and pokes it. */
static void thread_poke(bool start, int efd)
{
	static const uint64_t one = 1;

	if (start) {
		int r = preload_thread_start();

		if (r < 0) {
			/*
			 * The eventfd stays open: another hook may be about to poke
			 * it, and a closed number could name a VMM file by then.
			 */
			pthread_mutex_lock(&preload.lock);
			preload.thread = PRELOAD_THREAD_FAILED;
			pthread_mutex_unlock(&preload.lock);
			preload_log("cannot start the hand-off thread (%s): stats fds stay in the "
				    "VMM for procfs discovery but are not handed off",
				    strerror(-r));
			return;
		}
	}
	/* Nonblocking; a full counter means the thread is awake anyway. */
	if (efd >= 0 && write(efd, &one, sizeof(one)) < 0) {
		/* nothing to do */
	}
}

static struct preload_vm *vm_by_fd(int vm_fd)
{
	for (size_t i = 0; i < PRELOAD_MAX_VMS; i++) {
		struct preload_vm *vm = &preload.vms[i];

		if (vm->used && !vm->stale && vm->vm_fd == vm_fd)
			return vm;
	}
	return NULL;
}

/* A new VM or vCPU fd number that a tracked vCPU had: that vCPU fd is closed. Lock held. */
static void fd_number_reused(int fd)
{
	for (size_t i = 0; i < PRELOAD_MAX_VMS; i++) {
		struct preload_vm *vm = &preload.vms[i];

		for (size_t k = 0; vm->used && k < vm->n_vcpus; k++)
			if (vm->vcpus[k].fd == fd)
				vm->vcpus[k].fd = -1;
	}
}

static void track_vm(ioctl_fn real, int kvm_fd, int vm_fd)
{
	struct preload_vm *old, *vm = NULL;
	unsigned failures = 0;
	struct stat st;
	bool start = false;
	int efd;

	/* Request 0xAE01 on anything but /dev/kvm is none of our business. */
	if (fstat(kvm_fd, &st) < 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != KVM_DEV_MAJOR ||
	    minor(st.st_rdev) != KVM_DEV_MINOR)
		return;

	pthread_mutex_lock(&preload.lock);
	if (preload.forked_child) {
		pthread_mutex_unlock(&preload.lock);
		return;
	}
	/*
	 * The VMM closed the VM fd of a VM we track and the number came back: new
	 * vCPUs on it are the new VM's. The old VM lives on while its vCPU fds
	 * are open; the liveness check decides.
	 */
	old = vm_by_fd(vm_fd);
	if (old)
		old->vm_fd = -1;
	fd_number_reused(vm_fd);
	for (size_t i = 0; i < PRELOAD_MAX_VMS && !vm; i++)
		if (!preload.vms[i].used)
			vm = &preload.vms[i];
	if (vm) {
		*vm = (struct preload_vm){
			.used = true,
			.vm_fd = vm_fd,
			.number = ++preload.vms_created,
			.stats_fd = stats_fd_make(real, vm_fd, &failures),
			.sock = -1,
		};
	} else {
		failures |= PRELOAD_FAIL_LIMIT_VMS;
	}
	preload.hook_failures |= failures;
	efd = thread_wanted(&start);
	pthread_mutex_unlock(&preload.lock);
	thread_poke(start, efd);
}

static void track_vcpu(ioctl_fn real, int vm_fd, int vcpu_id, int vcpu_fd)
{
	unsigned failures = 0;
	struct preload_vm *vm;
	bool start = false;
	int sfd, efd;

	pthread_mutex_lock(&preload.lock);
	vm = preload.forked_child ? NULL : vm_by_fd(vm_fd);
	if (!vm) {
		/* A VM made before the shim was loaded or by a raw syscall: not ours. */
		pthread_mutex_unlock(&preload.lock);
		return;
	}
	fd_number_reused(vcpu_fd);
	if (vm->n_vcpus >= PRELOAD_MAX_VCPUS) {
		failures |= PRELOAD_FAIL_LIMIT_VCPUS;
	} else if ((sfd = stats_fd_make(real, vcpu_fd, &failures)) >= 0) {
		if (vm->n_vcpus == vm->cap_vcpus) {
			size_t cap = vm->cap_vcpus ? vm->cap_vcpus * 2 : 8;
			struct preload_vcpu *v = reallocarray(vm->vcpus, cap, sizeof(*v));

			if (v) {
				vm->vcpus = v;
				vm->cap_vcpus = cap;
			}
		}
		if (vm->n_vcpus < vm->cap_vcpus) {
			vm->vcpus[vm->n_vcpus++] = (struct preload_vcpu){
				.id = vcpu_id,
				.fd = vcpu_fd,
				.stats_fd = sfd,
				.state = PRELOAD_FD_PENDING,
			};
		} else {
			close(sfd);
			failures |= PRELOAD_FAIL_NOMEM;
		}
	}
	preload.hook_failures |= failures;
	efd = thread_wanted(&start);
	pthread_mutex_unlock(&preload.lock);
	thread_poke(start, efd);
}

/*
 * The vCPU fd this thread last called KVM_RUN on. initial-exec: the shim is
 * loaded at start-up, so its TLS is static and reading it is one load.
 */
static __thread int run_fd_seen __attribute__((tls_model("initial-exec"))) = -1;

/* Records that the calling thread runs the vCPU of vcpu_fd (lock taken here). */
static void note_run_thread(int vcpu_fd)
{
	int tid = (int)syscall(SYS_gettid);
	bool changed = false, start = false;
	int efd = -1;

	pthread_mutex_lock(&preload.lock);
	for (size_t i = 0; !preload.forked_child && i < PRELOAD_MAX_VMS; i++) {
		struct preload_vm *vm = &preload.vms[i];

		for (size_t k = 0; vm->used && k < vm->n_vcpus; k++)
			if (vm->vcpus[k].fd == vcpu_fd && vm->vcpus[k].run_tid != tid) {
				vm->vcpus[k].run_tid = tid;
				vm->vcpus[k].tid_state = PRELOAD_FD_PENDING;
				changed = true;
			}
	}
	if (changed)
		efd = thread_wanted(&start);
	pthread_mutex_unlock(&preload.lock);
	if (changed)
		thread_poke(start, efd);
}

/* The slow path of KVM_RUN: this thread's first call on this vCPU fd. */
__attribute__((noinline)) static int ioctl_first_run(ioctl_fn real, int fd, void *arg)
{
	int saved_errno = errno;

	run_fd_seen = fd;
	if (!preload.disabled)
		note_run_thread(fd);
	errno = saved_errno;
	return real(fd, KVM_RUN, arg);
}

/* The slow path: a create request. The VMM gets exactly what the kernel said. */
__attribute__((noinline)) static int ioctl_create(ioctl_fn real, int fd, unsigned long request,
						  void *arg)
{
	int ret = real(fd, request, arg);
	int saved_errno;

	if (ret < 0 || preload.disabled)
		return ret;
	saved_errno = errno;
	if (request == KVM_CREATE_VM)
		track_vm(real, fd, ret);
	else if (request == KVM_CREATE_VCPU)
		track_vcpu(real, fd, (int)(uintptr_t)arg, ret);
	errno = saved_errno;
	return ret;
}

/*
 * The wrapper proper. Where the ABI passes a variadic argument exactly like a
 * named one (every 64-bit Linux ABI below, and i386), the exported ioctl is
 * this three-argument function under the variadic prototype, as glibc's own
 * system call stubs are: no va_list, no stack frame, and the hot path is a
 * load, an OR, a compare and a tail call.
 */
static int preload_ioctl(int fd, unsigned long request, void *arg)
{
	ioctl_fn real = atomic_load_explicit(&real_ioctl, memory_order_acquire);

	if (__builtin_expect(request == KVM_RUN, 1)) {
		if (__builtin_expect(fd == run_fd_seen, 1))
			return real(fd, request, arg);
		return ioctl_first_run(real, fd, arg);
	}
	if (__builtin_expect((request | CREATE_REQUEST_BIT) != KVM_CREATE_VCPU, 1))
		return real(fd, request, arg);
	return ioctl_create(real, fd, request, arg);
}

#if defined(__x86_64__) || defined(__aarch64__) || defined(__i386__) || defined(__powerpc64__) ||  \
	defined(__s390x__) || (defined(__riscv) && __riscv_xlen == 64)
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wattribute-alias"
#endif
EXPORT int ioctl(int fd, unsigned long request, ...) __attribute__((alias("preload_ioctl")));
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#else
EXPORT int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;

	/* Like glibc, take the third argument whether or not the caller passed one. */
	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	return preload_ioctl(fd, request, arg);
}
#endif
