/* SPDX-License-Identifier: MIT */
/*
 * procfs discovery: find stats fds that VMMs keep open, by their
 * /proc/PID/fd links, and take copies of them with pidfd_getfd(2).
 *
 * Only the VMM can create a stats fd, but anyone with ptrace-attach rights
 * over it can take one it holds. A copy keeps the VM's kernel state alive,
 * so copies are dropped as soon as the VMM exits (its pidfd becomes
 * readable) or closes its own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "macro.h"
#include "util/array.h"
#include "util/clock.h"
#include "util/samefile.h"
#include "sources/procfs.h"
#include "sources/vcpu_map.h"
#include "util/vmname.h"

#define LINK_VM   "anon_inode:kvm-vm-stats"
#define LINK_VCPU "anon_inode:kvm-vcpu-stats:"

/* Looks per VM at its threads while vCPUs are not seen, and per scan in all. */
#define VCPU_MAP_PASSES_PER_VM   4
#define VCPU_MAP_PASSES_PER_SCAN 32

/* A stats fd seen in a process: its number there and what the link says it is. */
struct candidate {
	int fd;
	int vcpu; /* -1 for the VM stats fd */
};

static int sys_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int sys_pidfd_getfd(int pidfd, int fd)
{
	return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

/* Whether f is held already as `held` (the same VM found twice). */
static bool same_file_held(const struct kvmstats_file *held, const struct kvmstats_file *f)
{
	/* The same open file has the same id: kcmp only those, or a first scan is quadratic. */
	return held && strcmp(held->id, f->id) == 0 && same_file(f->fd, held->fd);
}

static bool held_elsewhere(const struct collector *c, const struct kvmstats_file *f)
{
	for (size_t i = 0; i < c->n_vms; i++) {
		const struct vm *vm = c->vms[i];

		if (same_file_held(vm->vm_file, f))
			return true;
		for (size_t j = 0; j < vm->n_vcpus; j++)
			if (same_file_held(vm->vcpus[j].file, f))
				return true;
	}
	return false;
}

/* The thread group of thread `tid`, from its status file; -ESRCH when it has exited. */
static pid_t tgid_of(const char *proc_root, pid_t tid)
{
	char path[PATH_MAX], line[128];
	pid_t tgid = -ESRCH;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%d/status", proc_root, (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char state = 0;

		if (sscanf(line, "State: %c", &state) == 1 && (state == 'Z' || state == 'X'))
			break; /* a zombie holds no fds: gone */
		if (strncmp(line, "Tgid:", 5) == 0) {
			tgid = (pid_t)atoi(line + 5);
			break;
		}
	}
	fclose(f);
	return tgid;
}

static int list_candidates(int proc_fd, const char *pid_name, struct candidate **ret);

/* Whether the process holds a KVM VM or vCPU fd: whether it runs VMs at all. */
static bool holds_kvm_fds(const char *proc_root, pid_t pid)
{
	char path[PATH_MAX], link[64];
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%d/fd", proc_root, (int)pid);
	d = opendir(path);
	if (!d)
		return false;
	for (struct dirent *de; !found && (de = readdir(d));) {
		ssize_t len = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);

		if (len <= 0)
			continue;
		link[len] = '\0';
		found = strcmp(link, "anon_inode:kvm-vm") == 0 ||
			strncmp(link, "anon_inode:kvm-vcpu:", 20) == 0;
	}
	closedir(d);
	return found;
}

/*
 * Whether `holder` only holds a copy of our file `fd` (another exporter, a
 * debugger, a monitoring agent). The file's id names its creator,
 * "kvm-<tid>". While the creator's process holds the file itself, the file
 * is that process's VM, found when the scan gets there: taking it here would
 * name the VM after the wrong process and leave its VMM without it. When the
 * creator thread is gone, a holder that runs no VM (no KVM VM or vCPU fd)
 * keeps a dead VMM's VM alive by its copy: not a VM to export either.
 */
static bool is_copy(const struct procfs_source *p, pid_t holder, int fd, const char *id)
{
	_cleanup_free_ struct candidate *cands = NULL;
	char name[16];
	pid_t self = getpid(), creator;
	int proc_fd, n;
	long tid;
	char *end;

	if (strncmp(id, "kvm-", 4) != 0)
		return false;
	tid = strtol(id + 4, &end, 10);
	if (tid <= 0 || tid > INT_MAX || (*end != '\0' && *end != '/'))
		return false;
	creator = tgid_of(p->proc_root, (pid_t)tid);
	if (creator < 0)
		return !holds_kvm_fds(p->proc_root, holder);
	if (creator == holder || creator == self)
		return false;
	proc_fd = open(p->proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (proc_fd < 0)
		return false;
	snprintf(name, sizeof(name), "%d", (int)creator);
	n = list_candidates(proc_fd, name, &cands);
	safe_close(proc_fd);
	for (int i = 0; i < n; i++)
		if (same_file_between(self, fd, creator, cands[i].fd) == 0)
			return true;
	return false;
}

/*
 * Takes fd number `target` from the VMM and validates it as the stats file
 * the link promised. Returns 0 with *ret set, 1 when it is a VM we already
 * hold (or will find) through another process, or -errno.
 */
static int take_file(struct procfs_source *p, const struct vm *vm, const struct candidate *cand,
		     struct kvmstats_file **ret)
{
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	_cleanup_close_ int fd = -1;
	int r;

	fd = sys_pidfd_getfd(vm->pidfd, cand->fd);
	if (fd < 0) {
		r = -errno;
		if ((r == -EPERM || r == -EACCES) && !p->warned_getfd) {
			log_warn("cannot take stats fds from another process; procfs discovery "
				 "needs CAP_SYS_PTRACE (or use the stats-file source)",
				 "pid=%d err=\"%s\"", (int)vm->pid, strerror(-r));
			p->warned_getfd = true;
		}
		return r;
	}
	r = kvmstats_file_open_fd(fd, &f, &err);
	if (r < 0) {
		char why[256];

		if (r == -EBADMSG)
			kvmstats_error_format(&err, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "%s", strerror(-r));
		log_warn("rejected stats fd", "pid=%d fd=%d err=\"%s\"", (int)vm->pid, cand->fd,
			 why);
		collector_count_rejected_fd(p->collector);
		return r;
	}
	TAKE_FD(fd);
	if (held_elsewhere(p->collector, f)) {
		kvmstats_file_free(f);
		return 1;
	}

	/* The link and the id must agree on what this is. */
	if ((cand->vcpu < 0 && f->kind != KVMSTATS_KIND_VM) ||
	    (cand->vcpu >= 0 && (f->kind != KVMSTATS_KIND_VCPU || f->vcpu != cand->vcpu))) {
		log_warn("rejected stats fd: id does not match its link", "pid=%d fd=%d id=%s",
			 (int)vm->pid, cand->fd, f->id);
		collector_count_rejected_fd(p->collector);
		kvmstats_file_free(f);
		return -EBADMSG;
	}
	if (is_copy(p, vm->pid, f->fd, f->id)) {
		kvmstats_file_free(f);
		return 1;
	}
	r = collector_prepare_file(p->collector, f);
	if (r < 0) {
		kvmstats_file_free(f);
		return r;
	}
	*ret = f;
	return 0;
}

/* Reads the stats links of one process. Returns the count, or -errno. */
static int list_candidates(int proc_fd, const char *pid_name, struct candidate **ret)
{
	_cleanup_free_ struct candidate *cands = NULL;
	size_t n = 0, cap = 0;
	char path[PATH_MAX];
	DIR *d;
	int dfd;

	snprintf(path, sizeof(path), "%s/fd", pid_name);
	dfd = openat(proc_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		safe_close(dfd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		char link[64];
		ssize_t len;
		int vcpu;

		if (de->d_name[0] == '.')
			continue;
		len = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (len < 0 && (errno == EACCES || errno == EPERM)) {
			/* Listing is allowed by file mode, reading links needs ptrace rights. */
			closedir(d);
			return -EACCES;
		}
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (strcmp(link, LINK_VM) == 0)
			vcpu = -1;
		else if (strncmp(link, LINK_VCPU, strlen(LINK_VCPU)) == 0)
			vcpu = atoi(link + strlen(LINK_VCPU));
		else
			continue;
		if (array_make_room((void **)&cands, &cap, n, sizeof(*cands), 8) < 0) {
			closedir(d);
			return -ENOMEM;
		}
		cands[n++] = (struct candidate){ .fd = atoi(de->d_name), .vcpu = vcpu };
	}
	closedir(d);
	*ret = TAKE_PTR(cands);
	return (int)n;
}

static struct vm *find_vm(const struct collector *c, pid_t pid, size_t *ret_index)
{
	for (size_t i = 0; i < c->n_vms; i++)
		if (c->vms[i]->source == VM_SOURCE_PROCFS && c->vms[i]->pid == pid) {
			if (ret_index)
				*ret_index = i;
			return c->vms[i];
		}
	return NULL;
}

/*
 * One process may hold the stats fds of several VMs, but nothing in the
 * kernel tells which vCPU belongs to which: then only the first VM fd is
 * used and the vCPUs are left out rather than misattributed.
 */
static bool is_ambiguous(pid_t pid, const struct candidate *cands, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (cands[i].vcpu == cands[j].vcpu &&
			    same_file_between(pid, cands[i].fd, pid, cands[j].fd) != 0)
				return true;
	return false;
}

static struct vm *new_vm(struct procfs_source *p, pid_t pid)
{
	struct vm_identity id = { 0 };
	struct vm *vm = vm_new(VM_SOURCE_PROCFS);

	if (!vm)
		return NULL;
	vm->pid = pid;
	vm->pidfd = sys_pidfd_open(pid);
	if (vm->pidfd < 0)
		return vm_free(vm);
	(void)vmname_from_pid(pid, &id);
	vm->name = TAKE_PTR(id.name);
	vm->uuid = TAKE_PTR(id.uuid);
	vm->vmm = TAKE_PTR(id.vmm);
	vm_identity_release(&id);
	if (!vm->name && asprintf(&vm->name, "pid-%d", (int)pid) < 0)
		vm->name = NULL;
	if (!vm->name)
		return vm_free(vm);
	return vm;
}

static void warn_ambiguous(const struct vm *vm)
{
	log_warn("process holds stats fds of several VMs; their vCPUs cannot be told apart "
		 "and are left out",
		 "pid=%d vm=%s", (int)vm->pid, vm->name);
}

/* Brings the VM of one process in line with the stats links it holds now. */
static void sync_process(struct procfs_source *p, pid_t pid, const struct candidate *cands,
			 size_t n)
{
	struct collector *c = p->collector;
	struct vm *vm = find_vm(c, pid, NULL);
	bool is_new = !vm;
	bool ambiguous = is_ambiguous(pid, cands, n);
	pid_t self = getpid();

	if (!vm) {
		vm = new_vm(p, pid);
		if (!vm)
			return;
	}

	/* A new VM says so once it is added: it may end up with no file of its own. */
	if (ambiguous && !vm->ambiguous && !is_new)
		warn_ambiguous(vm);

	pthread_mutex_lock(&c->lock);
	vm->ambiguous = ambiguous;
	vm->scan_seen = p->generation;

	/* Drop what the VMM no longer holds (or, when ambiguous, every vCPU). */
	for (size_t i = vm->n_vcpus; i-- > 0;) {
		bool keep = false;

		for (size_t k = 0; !ambiguous && k < n; k++)
			if (cands[k].fd == vm->vcpus[i].target_fd && cands[k].vcpu >= 0 &&
			    same_file_between(self, vm->vcpus[i].file->fd, pid, cands[k].fd) == 0)
				keep = true;
		if (!keep)
			vm_remove_vcpu(vm, i);
	}
	if (vm->vm_file) {
		bool keep = false;

		for (size_t k = 0; k < n; k++)
			if (cands[k].fd == vm->vm_target_fd && cands[k].vcpu < 0 &&
			    same_file_between(self, vm->vm_file->fd, pid, cands[k].fd) == 0)
				keep = true;
		if (!keep) {
			vm->vm_file = kvmstats_file_free(vm->vm_file);
			vm->vm_target_fd = -1;
		}
	}
	pthread_mutex_unlock(&c->lock);

	for (size_t k = 0; k < n; k++) {
		const struct candidate *cand = &cands[k];
		struct kvmstats_file *f = NULL;
		bool have = false;

		if (cand->vcpu < 0) {
			have = vm->vm_file != NULL;
		} else {
			if (ambiguous)
				continue;
			for (size_t i = 0; i < vm->n_vcpus; i++)
				if (vm->vcpus[i].file->vcpu == cand->vcpu)
					have = true;
		}
		if (have || take_file(p, vm, cand, &f) != 0)
			continue;

		pthread_mutex_lock(&c->lock);
		if (cand->vcpu < 0) {
			vm->vm_file = f;
			vm->vm_target_fd = cand->fd;
		} else if (vm->n_vcpus > 0 && f->schema != vm->vcpus[0].file->schema) {
			/* One VM, one kernel: a different layout is not a vCPU of this VM. */
			collector_count_rejected_fd(c);
			kvmstats_file_free(f);
		} else if (vm_add_vcpu(vm, f, cand->fd) < 0) {
			kvmstats_file_free(f);
		}
		pthread_mutex_unlock(&c->lock);
	}

	if (!vm->kvm_id) {
		const struct kvmstats_file *f = vm->vm_file   ? vm->vm_file
						: vm->n_vcpus ? vm->vcpus[0].file
							      : NULL;
		char *id = f ? strndup(f->id, strcspn(f->id, "/")) : NULL;

		/* A VM already in the collector is read by scrapes. */
		pthread_mutex_lock(&c->lock);
		vm->kvm_id = id;
		pthread_mutex_unlock(&c->lock);
	}

	if (!is_new)
		return;
	if (vm_n_files(vm) == 0) {
		vm_free(vm);
		return;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = vm->pidfd };
	if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, vm->pidfd, &ev) < 0)
		log_warn("cannot watch VMM process; it is dropped at the next scan instead",
			 "pid=%d err=\"%s\"", (int)pid, strerror(errno));
	pthread_mutex_lock(&c->lock);
	if (collector_add_vm(c, vm) >= 0) {
		log_info("VM found", "vm=%s pid=%d source=procfs fds=%zu", vm->name, (int)pid,
			 vm_n_files(vm));
		if (ambiguous)
			warn_ambiguous(vm);
	}
	pthread_mutex_unlock(&c->lock);
}

/* Whether pid's VM is held with every stats fd the process showed (none refused or ambiguous). */
static bool held_whole(struct procfs_source *p, pid_t pid, size_t n_cands)
{
	struct collector *c = p->collector;
	const struct vm *vm;
	bool ok;

	pthread_mutex_lock(&c->lock);
	vm = find_vm(c, pid, NULL);
	ok = vm && !vm->ambiguous && vm_n_files(vm) == n_cands;
	pthread_mutex_unlock(&c->lock);
	return ok;
}

/* A VMM that has not run keeps its VM as it is: true if we still hold one for pid. */
static bool keep_vm(struct procfs_source *p, pid_t pid)
{
	struct collector *c = p->collector;
	struct vm *vm;

	pthread_mutex_lock(&c->lock);
	vm = find_vm(c, pid, NULL);
	if (vm)
		vm->scan_seen = p->generation;
	pthread_mutex_unlock(&c->lock);
	return vm != NULL;
}

/*
 * Maps the vCPUs of every VM with a known process (hand-off VMs too) to
 * their threads; the retries that catch busy vCPUs share one budget per scan.
 */
static void map_vcpu_threads(struct procfs_source *p)
{
	struct collector *c = p->collector;
	unsigned budget = VCPU_MAP_PASSES_PER_SCAN;

	for (size_t i = 0; i < c->n_vms; i++) {
		struct vm *vm = c->vms[i];
		unsigned max = budget >= VCPU_MAP_PASSES_PER_VM ? VCPU_MAP_PASSES_PER_VM
			       : budget > 0                     ? budget
								: 1;
		unsigned used;

		if (vm->source != VM_SOURCE_PROCFS && vm->source != VM_SOURCE_HANDOFF)
			continue;
		used = vcpu_map_vm(c, p->proc_root, vm, max);
		budget = budget > used ? budget - used : 0;
	}
}

int procfs_scan(struct procfs_source *p)
{
	struct collector *c = p->collector;
	struct procfs_quiet_list quiet = { 0 };
	double start = monotonic_seconds();
	unsigned denied = 0, unchanged = 0, seen = 0;
	bool real_proc = strcmp(p->proc_root, "/proc") == 0;
	pid_t self = getpid();
	DIR *proc;

	proc = opendir(p->proc_root);
	if (!proc)
		return -errno;
	p->generation++;

	for (struct dirent *de; (de = readdir(proc));) {
		_cleanup_free_ struct candidate *cands = NULL;
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		uint64_t cpu_ns = 0;
		bool have_cpu;
		int n;

		if (*end != '\0' || pid <= 0 || pid == self)
			continue;
		/* A poll per 64 processes: nothing next to a scan's cost. */
		if (++seen % 64 == 0 && p->interrupted && p->interrupted(p->interrupted_userdata)) {
			closedir(proc);
			procfs_quiet_release(&quiet);
			return -EINTR;
		}
		/*
		 * Read before the fds: if the process runs in between, the next scan
		 * sees it. Only for the kernel's own /proc: a CPU clock says nothing
		 * about another tree (the unit tests' fake one).
		 */
		have_cpu = real_proc && procfs_process_cpu_ns((pid_t)pid, &cpu_ns) == 0;
		if (have_cpu) {
			const struct procfs_quiet *q =
				procfs_quiet_find(&p->quiet, (pid_t)pid, cpu_ns);

			if (q && (!q->vmm || keep_vm(p, (pid_t)pid))) {
				(void)procfs_quiet_add(&quiet, (pid_t)pid, q->vmm, cpu_ns);
				unchanged++;
				continue;
			}
		}
		n = list_candidates(dirfd(proc), de->d_name, &cands);
		if (n == -EACCES || n == -EPERM)
			denied++;
		if (n == 0 && have_cpu)
			(void)procfs_quiet_add(&quiet, (pid_t)pid, false, cpu_ns);
		if (n > 0 && p->skip_pid && p->skip_pid(p->skip_userdata, (pid_t)pid))
			continue;
		if (n > 0) {
			sync_process(p, (pid_t)pid, cands, (size_t)n);
			if (have_cpu && held_whole(p, (pid_t)pid, (size_t)n))
				(void)procfs_quiet_add(&quiet, (pid_t)pid, true, cpu_ns);
		}
	}
	closedir(proc);
	procfs_quiet_finish(&quiet);
	procfs_quiet_release(&p->quiet);
	p->quiet = quiet;
	map_vcpu_threads(p);

	pthread_mutex_lock(&c->lock);
	for (size_t i = c->n_vms; i-- > 0;) {
		struct vm *vm = c->vms[i];

		if (vm->source == VM_SOURCE_PROCFS && vm->scan_seen != p->generation) {
			log_info("VM gone", "vm=%s pid=%d reason=\"no stats fds held\"", vm->name,
				 (int)vm->pid);
			collector_remove_vm(c, i);
		}
	}
	p->scans++;
	p->scan_ok = denied == 0;
	p->scan_seconds = monotonic_seconds() - start;
	pthread_mutex_unlock(&c->lock);

	log_debug("procfs scan", "seconds=%.6f unchanged_processes=%u", monotonic_seconds() - start,
		  unchanged);
	if (denied > 0 && !p->warned_denied) {
		log_warn("cannot read the fds of some processes; VMs there are not seen (procfs "
			 "discovery needs CAP_SYS_PTRACE)",
			 "processes=%u", denied);
		p->warned_denied = true;
	}
	return 0;
}

void procfs_source_release(struct procfs_source *p)
{
	procfs_quiet_release(&p->quiet);
}

bool procfs_vm_exited(struct procfs_source *p, int pidfd)
{
	struct collector *c = p->collector;
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
	bool found = false;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_vms; i++) {
		if (c->vms[i]->pidfd != pidfd)
			continue;
		/* A stale event (its number was closed and reused in this batch): still ours. */
		if (poll(&pfd, 1, 0) == 0) {
			found = true;
			break;
		}
		log_info("VM gone", "vm=%s pid=%d reason=\"process exited\"", c->vms[i]->name,
			 (int)c->vms[i]->pid);
		collector_remove_vm(c, i);
		found = true;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

void procfs_write_metrics(void *userdata, struct family_writer *w)
{
	const struct procfs_source *p = userdata;

	family_write_seconds(w, "kvmstats_exporter_procfs_scan_duration_seconds",
			     "Duration of the last /proc scan for stats fds.", p->scan_seconds);
	family_write_u64(w, "kvmstats_exporter_procfs_scan_success", FAMILY_GAUGE,
			 "Whether the last /proc scan could read every process it needed "
			 "(0 without CAP_SYS_PTRACE).",
			 p->scan_ok ? 1 : 0);
	family_write_u64(w, "kvmstats_exporter_procfs_scans", FAMILY_COUNTER,
			 "Scans of /proc for stats fds.", p->scans);
}
