/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for procfs discovery (sources/procfs.c) on a fake /proc tree:
 * <root>/<pid>/fd/<n> are symlinks spelled as the kernel spells stats fd
 * links, pointing at fds that a real child process holds (memfds with the
 * saved blobs of tests/data, or garbage). The source takes them with a real
 * pidfd_getfd(), so everything but the directory listing is the real path.
 *
 * test_rejected_race scans and scrapes from two threads at once: a counter
 * bumped outside the collector's lock while a scrape reads it shows up
 * under ThreadSanitizer (run-tests runs this test in a -Db_sanitize=thread
 * build) and, without it, as a wrong total.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "collector.h"
#include "golden.h"
#include "lines.h"
#include "sources/procfs.h"

/* The fd numbers the child holds its files at. */
enum { FD_VM = 40, FD_VCPU0 = 41, FD_GARBAGE = 42 };
#define RACE_SCANS 200u

struct fixture {
	char root[64];    /* the fake /proc */
	char fd_dir[160]; /* <root>/<pid>/fd */
	pid_t child;
	int release_fd; /* closing it lets the child exit */
	int epoll_fd;
	struct collector c;
	struct procfs_source p;
};

static int memfd_with(const void *data, size_t len)
{
	int fd = memfd_create("blob", MFD_CLOEXEC);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		return -1;
	return fd;
}

/* Child: holds the files at fixed numbers, says so, and waits until the pipe closes. */
static _Noreturn void child_hold(int vm_fd, int vcpu_fd, int garbage_fd, int wait_fd, int ready_fd)
{
	char c = 'r';

	if (dup2(vm_fd, FD_VM) < 0 || dup2(vcpu_fd, FD_VCPU0) < 0 ||
	    dup2(garbage_fd, FD_GARBAGE) < 0 || write(ready_fd, &c, 1) != 1)
		_exit(1);
	while (read(wait_fd, &c, 1) > 0)
		;
	_exit(0);
}

static void link_fd(struct fixture *f, int fd, const char *target)
{
	char path[224];

	snprintf(path, sizeof(path), "%s/%d", f->fd_dir, fd);
	assert_int_equal(symlink(target, path), 0);
}

static void unlink_fd(struct fixture *f, int fd)
{
	char path[224];

	snprintf(path, sizeof(path), "%s/%d", f->fd_dir, fd);
	assert_int_equal(unlink(path), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct blob vm = { 0 }, vcpu = { 0 };
	static const char garbage[] = "not a KVM stats file, whatever its link says";
	int vm_fd, vcpu_fd, garbage_fd, pipe_fds[2], ready[2];
	char path[96], c;

	if (!f || load_data_blob("x86_64-6.18-vm.bin", &vm) < 0 ||
	    load_data_blob("x86_64-6.18-vcpu.bin", &vcpu) < 0)
		return -1;
	vm_fd = memfd_with(vm.data, vm.len);
	vcpu_fd = memfd_with(vcpu.data, vcpu.len);
	garbage_fd = memfd_with(garbage, sizeof(garbage));
	free(vm.data);
	free(vcpu.data);
	if (vm_fd < 0 || vcpu_fd < 0 || garbage_fd < 0 || pipe2(pipe_fds, O_CLOEXEC) < 0 ||
	    pipe2(ready, O_CLOEXEC) < 0)
		return -1;

	f->child = fork();
	if (f->child < 0)
		return -1;
	if (f->child == 0) {
		close(pipe_fds[1]);
		child_hold(vm_fd, vcpu_fd, garbage_fd, pipe_fds[0], ready[1]);
	}
	close(pipe_fds[0]);
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1)
		return -1;
	close(ready[0]);
	close(vm_fd);
	close(vcpu_fd);
	close(garbage_fd);
	f->release_fd = pipe_fds[1];

	snprintf(f->root, sizeof(f->root), "/tmp/test_procfs.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(path, sizeof(path), "%s/%d", f->root, (int)f->child);
	snprintf(f->fd_dir, sizeof(f->fd_dir), "%s/fd", path);
	if (mkdir(path, 0755) < 0 || mkdir(f->fd_dir, 0755) < 0)
		return -1;

	f->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (f->epoll_fd < 0 || collector_init(&f->c, false) < 0)
		return -1;
	f->p = (struct procfs_source){ .collector = &f->c,
				       .proc_root = f->root,
				       .epoll_fd = f->epoll_fd };
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	collector_release(&f->c);
	close(f->epoll_fd);
	close(f->release_fd);
	waitpid(f->child, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Exits 77 (skip) when this kernel cannot take another process's fds. */
static void require_pidfd_getfd(pid_t pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int fd = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, FD_VM, 0);

	if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
		printf("SKIP: pidfd_getfd() on a child: %s\n", strerror(errno));
		exit(77);
	}
	assert_true(fd >= 0);
	close(fd);
	close(pidfd);
}

static char *scrape(struct collector *c)
{
	struct outbuf out = { 0 };

	assert_int_equal(collector_collect(c, &out, EXPOSITION_TEXT_004), 0);
	outbuf_putc(&out, '\0');
	assert_false(out.failed);
	return out.data;
}

static void test_discovery(void **state)
{
	struct fixture *f = *state;
	char name[32], *text;
	struct vm *vm;

	require_pidfd_getfd(f->child);
	link_fd(f, FD_VM, "anon_inode:kvm-vm-stats");
	link_fd(f, FD_VCPU0, "anon_inode:kvm-vcpu-stats:0");
	link_fd(f, FD_GARBAGE, "anon_inode:kvm-vcpu-stats:1");
	link_fd(f, 3, "anon_inode:kvm-vm"); /* not a stats fd: ignored */
	assert_int_equal(collector_add_writer(&f->c, COLLECTOR_WRITER_SELF, procfs_write_metrics,
					      &f->p),
			 0);

	assert_int_equal(procfs_scan(&f->p), 0);
	assert_int_equal(f->c.n_vms, 1);
	vm = f->c.vms[0];
	snprintf(name, sizeof(name), "pid-%d", (int)f->child);
	assert_string_equal(vm->name, name);
	assert_int_equal(vm->pid, f->child);
	assert_int_equal(vm->source, VM_SOURCE_PROCFS);
	assert_non_null(vm->vm_file);
	assert_int_equal(vm->vm_target_fd, FD_VM);
	assert_int_equal(vm->n_vcpus, 1);
	assert_int_equal(vm->vcpus[0].target_fd, FD_VCPU0);
	assert_string_equal(vm->kvm_id, "kvm-5702");
	/* The garbage behind a vCPU link is refused, counted, and retried at the next scan. */
	assert_int_equal(atomic_load(&f->c.rejected_fds), 1);
	assert_int_equal(f->p.scans, 1);
	assert_true(f->p.scan_ok);

	text = scrape(&f->c);
	assert_line(text, "kvmstats_exporter_rejected_fds_total 1");
	assert_line(text, "kvmstats_exporter_procfs_scans_total 1");
	assert_line(text, "kvmstats_exporter_procfs_scan_success 1");
	assert_line(text, "kvmstats_exporter_vms{source=\"procfs\"} 1");
	assert_line(text, "kvmstats_exporter_stats_fds 2");
	assert_non_null(strstr(text, "kvm_vm_info{vm=\"pid-"));
	free(text);

	/* The VMM closed its vCPU stats fd: the vCPU goes, the VM stays. */
	unlink_fd(f, FD_VCPU0);
	unlink_fd(f, FD_GARBAGE);
	assert_int_equal(procfs_scan(&f->p), 0);
	assert_int_equal(f->c.n_vms, 1);
	assert_int_equal(f->c.vms[0]->n_vcpus, 0);
	assert_int_equal(atomic_load(&f->c.rejected_fds), 1);

	/* No stats fds held any more: the VM is gone. */
	unlink_fd(f, FD_VM);
	assert_int_equal(procfs_scan(&f->p), 0);
	assert_int_equal(f->c.n_vms, 0);
	assert_int_equal(f->p.scans, 3);
}

static bool always(void *userdata)
{
	unsigned *asked = userdata;

	(*asked)++;
	return true;
}

/* A shutdown during a scan stops it and leaves the VMs it did not finish as they were. */
static void test_interrupted(void **state)
{
	struct fixture *f = *state;
	unsigned asked = 0;
	char path[224];

	require_pidfd_getfd(f->child);
	link_fd(f, FD_VM, "anon_inode:kvm-vm-stats");
	link_fd(f, 3, "anon_inode:kvm-vm"); /* a VMM: it holds the VM itself */
	assert_int_equal(procfs_scan(&f->p), 0);
	assert_int_equal(f->c.n_vms, 1);

	/* Enough other processes to be asked in between, none with stats fds. */
	for (int pid = 4000000; pid < 4000200; pid++) {
		snprintf(path, sizeof(path), "%s/%d", f->root, pid);
		assert_int_equal(mkdir(path, 0755), 0);
	}
	/* A finished scan would now drop the VM. */
	unlink_fd(f, FD_VM);
	f->p.interrupted = always;
	f->p.interrupted_userdata = &asked;
	assert_int_equal(procfs_scan(&f->p), -EINTR);
	assert_int_equal(asked, 1);
	assert_int_equal(f->c.n_vms, 1);
	assert_int_equal(f->p.scans, 1);

	f->p.interrupted = NULL;
	assert_int_equal(procfs_scan(&f->p), 0);
	assert_int_equal(f->c.n_vms, 0);
	assert_int_equal(f->p.scans, 2);
}

static void *scan_thread(void *arg)
{
	struct fixture *f = arg;

	for (unsigned i = 0; i < RACE_SCANS; i++)
		if (procfs_scan(&f->p) < 0)
			return (void *)1;
	return NULL;
}

static void test_rejected_race(void **state)
{
	struct fixture *f = *state;
	char want[64], *text;
	unsigned scrapes = 0;
	pthread_t t;
	void *ret;

	require_pidfd_getfd(f->child);
	/* Every scan takes the garbage fd again and refuses it, off the main lock. */
	link_fd(f, FD_GARBAGE, "anon_inode:kvm-vm-stats");
	assert_int_equal(pthread_create(&t, NULL, scan_thread, f), 0);
	for (;;) {
		struct outbuf out = { 0 };
		int done;

		assert_int_equal(collector_collect(&f->c, &out, EXPOSITION_TEXT_004), 0);
		outbuf_release(&out);
		scrapes++;
		pthread_mutex_lock(&f->c.lock);
		done = f->p.scans == RACE_SCANS;
		pthread_mutex_unlock(&f->c.lock);
		if (done)
			break;
	}
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_null(ret);
	assert_true(scrapes > 0);

	assert_int_equal(f->c.n_vms, 0); /* nothing valid to keep */
	text = scrape(&f->c);
	snprintf(want, sizeof(want), "kvmstats_exporter_rejected_fds_total %u", RACE_SCANS);
	assert_line(text, want);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejected_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
