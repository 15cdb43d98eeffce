/* SPDX-License-Identifier: MIT */
/*
 * Mapping vCPUs to their host threads (docs/metrics.md, "vCPU threads").
 *
 * The kernel names a vCPU's stats "kvm-<tid>/vcpu-<n>" after the thread
 * that created it, which runs it in QEMU but not in VMMs that create every
 * vCPU on one thread (Firecracker). What does say which thread runs a vCPU:
 * a thread blocked in KVM_RUN shows "16 <fd> 0xae80 ..." in its syscall file,
 * and that fd's link reads "anon_inode:kvm-vcpu:<n>". A thread on a CPU
 * shows only "running", so a busy vCPU may take a few looks.
 *
 * Two traps: since Linux 6.13 KVM's NX-huge-page recovery worker is a
 * thread of the VMM (PF_USER_WORKER) whose syscall file shows the KVM_RUN
 * of whichever vCPU thread started it, frozen: such threads are skipped by
 * their task flags. And a thread that runs several vCPUs in turn measures
 * none of them alone: such vCPUs stay unmapped ("shared_thread").
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "macro.h"
#include "sources/vcpu_map.h"
#include "util/array.h"
#include "util/taskfiles.h"

#define MAX_TASKS   4096 /* threads looked at per process and pass */
#define PASS_GAP_NS 2000000L

/* What one rescan saw of a thread. */
struct task {
	pid_t tid;
	bool worker;  /* a kernel worker in the VMM's thread group: never a vCPU thread */
	int vcpu_pos; /* position in vm->vcpus it was seen running, -1 if none */
};

/* Reads a small task file; its length, or -errno. */
static ssize_t read_task_file(int task_dir, pid_t tid, const char *name, char *buf, size_t cap)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%d/%s", (int)tid, name);
	fd = openat(task_dir, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, cap);
	if (n < 0)
		n = -errno;
	safe_close(fd);
	return n;
}

static bool is_worker(int task_dir, pid_t tid)
{
	char buf[1024];
	ssize_t n = read_task_file(task_dir, tid, "stat", buf, sizeof(buf));
	uint64_t flags;

	/* Unreadable or unparsable: do not trust anything it shows either. */
	if (n <= 0 || task_stat_flags(buf, (size_t)n, &flags) < 0)
		return true;
	return (flags & (TASK_PF_USER_WORKER | TASK_PF_IO_WORKER | TASK_PF_KTHREAD)) != 0;
}

static ssize_t vcpu_position(const struct vm *vm, int vcpu)
{
	for (size_t j = 0; j < vm->n_vcpus; j++)
		if (vm->vcpus[j].file->vcpu == vcpu)
			return (ssize_t)j;
	return -1;
}

/*
 * The position of the vCPU the thread is blocked in KVM_RUN on, -1 when it
 * is not (or not visibly) so, -EACCES when its files cannot be read.
 */
static int kvm_run_vcpu(int task_dir, const struct task *t, const struct vm *vm)
{
	struct task_syscall sc;
	char buf[256], link[64], path[64];
	ssize_t n = read_task_file(task_dir, t->tid, "syscall", buf, sizeof(buf));

	if (n == -EACCES || n == -EPERM)
		return -EACCES;
	if (n <= 0 || task_syscall_parse(buf, (size_t)n, &sc) < 0)
		return -1;
	if (sc.state != TASK_SYSCALL_IN_CALL || sc.nr != SYS_ioctl || sc.args[1] != KVM_RUN ||
	    sc.args[0] > INT32_MAX)
		return -1;
	snprintf(path, sizeof(path), "%d/fd/%d", (int)t->tid, (int)sc.args[0]);
	n = readlinkat(task_dir, path, link, sizeof(link) - 1);
	if (n <= 0)
		return n < 0 && (errno == EACCES || errno == EPERM) ? -EACCES : -1;
	link[n] = '\0';
	return (int)vcpu_position(vm, kvm_vcpu_link_index(link));
}

/* The threads of the process, skipping kernel workers. Count, or -errno. */
static int list_tasks(int task_dir, struct task **ret)
{
	_cleanup_free_ struct task *tasks = NULL;
	size_t n = 0, cap = 0;
	int dfd = dup(task_dir);
	DIR *d;

	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		safe_close(dfd);
		return -errno;
	}
	for (struct dirent *de; n < MAX_TASKS && (de = readdir(d));) {
		long tid = strtol(de->d_name, NULL, 10);

		if (tid <= 0)
			continue;
		if (array_make_room((void **)&tasks, &cap, n, sizeof(*tasks), 32) < 0) {
			closedir(d);
			return -ENOMEM;
		}
		tasks[n] = (struct task){ .tid = (pid_t)tid, .vcpu_pos = -1 };
		tasks[n].worker = is_worker(task_dir, tasks[n].tid);
		n++;
	}
	closedir(d);
	*ret = TAKE_PTR(tasks);
	return (int)n;
}

static struct task *find_task(struct task *tasks, size_t n, pid_t tid)
{
	for (size_t i = 0; i < n; i++)
		if (tasks[i].tid == tid)
			return &tasks[i];
	return NULL;
}

/*
 * QEMU's hint, for a vCPU not seen in KVM_RUN: its creating thread (from
 * the stats id) is alive, no worker, seen running no other vCPU, and named
 * "CPU <n>/KVM" for this very vCPU. The tid, or 0.
 */
static pid_t qemu_hint(int task_dir, struct task *tasks, size_t n_tasks, const struct vm *vm,
		       size_t pos)
{
	const struct kvmstats_file *f = vm->vcpus[pos].file;
	long creator = kvm_stats_id_creator(f->id);
	struct task *t = creator > 0 ? find_task(tasks, n_tasks, (pid_t)creator) : NULL;
	char comm[64];
	ssize_t len;

	if (!t || t->worker || (t->vcpu_pos >= 0 && (size_t)t->vcpu_pos != pos))
		return 0;
	len = read_task_file(task_dir, t->tid, "comm", comm, sizeof(comm));
	if (len <= 0 || qemu_vcpu_thread_index(comm, (size_t)len) != f->vcpu)
		return 0;
	return t->tid;
}

/* Whether another vCPU of the VM was seen run by tid: then neither is measured alone. */
static bool seen_on_other(const struct vm *vm, size_t pos, pid_t tid)
{
	for (size_t j = 0; j < vm->n_vcpus; j++)
		if (j != pos && vm->vcpus[j].thread.seen_tid == tid)
			return true;
	return false;
}

/* Brings one vCPU's mapping in line with what this rescan saw (lock held). */
static void apply(const char *proc_root, struct vm *vm, size_t pos, pid_t seen, bool conflict,
		  bool no_access)
{
	struct vcpu_thread *t = &vm->vcpus[pos].thread;
	int fd;

	if (t->shared)
		return;
	if (conflict) {
		vcpu_thread_release(t, VCPU_THREAD_AMBIGUOUS);
		return;
	}
	if (seen > 0 && seen_on_other(vm, pos, seen)) {
		for (size_t j = 0; j < vm->n_vcpus; j++) {
			struct vcpu_thread *o = &vm->vcpus[j].thread;

			if (j == pos || o->seen_tid == seen) {
				vcpu_thread_release(o, VCPU_THREAD_SHARED);
				o->shared = true;
			}
		}
		log_warn("one thread runs several vCPUs; their thread series are left out",
			 "vm=%s tid=%d", vm->name, (int)seen);
		return;
	}
	if (seen > 0) {
		t->seen_tid = seen;
		if (t->tid == seen)
			return;
		fd = vcpu_thread_open(proc_root, vm->pid, seen);
		if (fd < 0) {
			vcpu_thread_release(t, VCPU_THREAD_EXITED);
			return;
		}
		log_debug("vCPU thread found", "vm=%s vcpu=%d tid=%d", vm->name,
			  vm->vcpus[pos].file->vcpu, (int)seen);
		vcpu_thread_assign(t, seen, fd);
		return;
	}
	/* Not seen now: a mapping made earlier stands until its thread exits. */
	if (t->tid == 0 && (no_access || t->reason != VCPU_THREAD_EXITED))
		t->reason = no_access ? VCPU_THREAD_NO_ACCESS : VCPU_THREAD_NOT_SEEN;
}

static bool all_seen(const pid_t *seen, size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (seen[j] == 0)
			return false;
	return true;
}

unsigned vcpu_map_vm(struct collector *c, const char *proc_root, struct vm *vm, unsigned max_passes)
{
	_cleanup_free_ struct task *tasks = NULL;
	_cleanup_free_ pid_t *seen = NULL; /* per vCPU position: tid, 0 unseen, -1 conflicting */
	_cleanup_close_ int task_dir = -1;
	bool no_access = false, unmapped = false;
	unsigned passes = 0;
	char path[64];
	int n_tasks;

	if (vm->pid <= 0 || vm->exited || vm->n_vcpus == 0)
		return 0;
	if (vm->ambiguous) {
		pthread_mutex_lock(&c->lock);
		for (size_t j = 0; j < vm->n_vcpus; j++)
			vcpu_thread_release(&vm->vcpus[j].thread, VCPU_THREAD_AMBIGUOUS);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/%d/task", proc_root, (int)vm->pid);
	task_dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	seen = calloc(vm->n_vcpus, sizeof(*seen));
	if (task_dir < 0 || !seen)
		return 0;
	n_tasks = list_tasks(task_dir, &tasks);
	if (n_tasks <= 0)
		return 0;

	for (size_t j = 0; j < vm->n_vcpus; j++)
		unmapped = unmapped || vm->vcpus[j].thread.tid == 0;
	/* Fully mapped VMs get one look, to notice a vCPU moving to another thread. */
	if (!unmapped)
		max_passes = 1;

	for (; passes < max_passes && !all_seen(seen, vm->n_vcpus); passes++) {
		if (passes > 0)
			nanosleep(&(struct timespec){ .tv_nsec = PASS_GAP_NS }, NULL);
		for (int i = 0; i < n_tasks; i++) {
			struct task *t = &tasks[i];
			int pos;

			if (t->worker)
				continue;
			pos = kvm_run_vcpu(task_dir, t, vm);
			if (pos == -EACCES)
				no_access = true;
			if (pos < 0)
				continue;
			/* One thread on two vCPUs within one rescan: claims conflict. */
			if (t->vcpu_pos >= 0 && t->vcpu_pos != pos) {
				seen[t->vcpu_pos] = -1;
				seen[pos] = -1;
				continue;
			}
			t->vcpu_pos = pos;
			if (seen[pos] == 0)
				seen[pos] = t->tid;
			else if (seen[pos] != t->tid)
				seen[pos] = -1; /* two threads in KVM_RUN on one vCPU */
		}
		if (no_access)
			break;
	}

	for (size_t j = 0; j < vm->n_vcpus; j++)
		if (seen[j] == 0 && vm->vcpus[j].thread.tid == 0)
			seen[j] = qemu_hint(task_dir, tasks, (size_t)n_tasks, vm, j);

	pthread_mutex_lock(&c->lock);
	for (size_t j = 0; j < vm->n_vcpus; j++)
		apply(proc_root, vm, j, seen[j] > 0 ? seen[j] : 0, seen[j] < 0, no_access);
	pthread_mutex_unlock(&c->lock);
	return passes;
}
