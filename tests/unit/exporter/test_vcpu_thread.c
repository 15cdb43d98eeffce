/* SPDX-License-Identifier: MIT */
/* vCPU threads at scrape time: reading schedstat files, dropping exited threads, the families. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "vcpu_thread.h"
#include "vcpu_thread_scrape.h"

/* A VM of n vCPUs with no stats fds: only what the thread code looks at. */
static struct vm *fake_vm(const char *name, size_t n)
{
	struct vm *vm = vm_new(VM_SOURCE_PROCFS);

	assert_non_null(vm);
	vm->pid = getpid();
	vm->name = strdup(name);
	vm->name_escaped = strdup(name);
	vm->name_escaped_len = strlen(name);
	vm->vcpus = calloc(n, sizeof(*vm->vcpus));
	vm->n_vcpus = n;
	for (size_t i = 0; i < n; i++) {
		struct kvmstats_file *f = calloc(1, sizeof(*f));

		assert_non_null(f);
		f->fd = -1;
		f->vcpu = (int)i;
		f->kind = KVMSTATS_KIND_VCPU;
		vm->vcpus[i].file = f;
		vcpu_thread_init(&vm->vcpus[i].thread, VCPU_THREAD_NOT_SEEN);
	}
	return vm;
}

static void free_fake_vm(struct vm *vm)
{
	for (size_t i = 0; i < vm->n_vcpus; i++) {
		free(vm->vcpus[i].file);
		vm->vcpus[i].file = NULL;
		vcpu_thread_release(&vm->vcpus[i].thread, VCPU_THREAD_EXITED);
	}
	vm->n_vcpus = 0;
	vm_free(vm);
}

static char *write_families(struct vm *vm, bool per_vcpu, enum exposition_format fmt)
{
	struct outbuf out = { 0 };
	struct family_writer w = family_writer_init(&out, fmt);

	vcpu_thread_families_write(&w, &vm, 1, per_vcpu);
	outbuf_putc(&out, '\0');
	assert_false(out.failed);
	return out.data;
}

static void test_families(void **state)
{
	struct vm *vm = fake_vm("web-1", 3);
	char *text;

	(void)state;
	/* vCPUs 0 and 2 mapped (as a scrape's read leaves them), 1 not seen. */
	vm->vcpus[0].thread = (struct vcpu_thread){
		.tid = 10, .fd = -1, .read_ok = true, .stat = { 1070911114, 63367900, 4646 }
	};
	vm->vcpus[2].thread = (struct vcpu_thread){
		.tid = 12, .fd = -1, .read_ok = true, .stat = { 18446744073709551615u, 1, 1 }
	};

	text = write_families(vm, false, EXPOSITION_TEXT_004);
	/* Sums are exact past 2^64 ns, and written as exact decimals. */
	assert_non_null(strstr(text, "# TYPE kvm_vcpu_thread_cpu_seconds_total counter\n"
				     "kvm_vcpu_thread_cpu_seconds_total{vm=\"web-1\"} "
				     "18446744074.780462729\n"));
	assert_non_null(strstr(text, "kvm_vcpu_thread_run_delay_seconds_total{vm=\"web-1\"} "
				     "0.063367901\n"));
	assert_non_null(strstr(text, "kvm_vcpu_thread_timeslices_total{vm=\"web-1\"} 4647\n"));
	assert_non_null(strstr(text,
			       "# TYPE kvm_vcpu_thread_unmapped gauge\n"
			       "kvm_vcpu_thread_unmapped{vm=\"web-1\",reason=\"not_seen\"} 1\n"));
	assert_null(strstr(text, "vcpu=\""));
	free(text);

	text = write_families(vm, true, EXPOSITION_TEXT_004);
	assert_non_null(strstr(text, "kvm_vcpu_thread_cpu_seconds_total{vm=\"web-1\",vcpu=\"0\"} "
				     "1.070911114\n"
				     "kvm_vcpu_thread_cpu_seconds_total{vm=\"web-1\",vcpu=\"2\"} "
				     "18446744073.709551615\n"));
	assert_null(strstr(text, "vcpu=\"1\""));
	free(text);

	/* OpenMetrics names the counter family without _total and gives the unit. */
	text = write_families(vm, false, EXPOSITION_OPENMETRICS_100);
	assert_non_null(strstr(text, "# TYPE kvm_vcpu_thread_cpu_seconds counter\n"
				     "# UNIT kvm_vcpu_thread_cpu_seconds seconds\n"));
	free(text);

	/* Nothing mapped: no thread families at all, only the count of why. */
	vm->vcpus[0].thread.read_ok = false;
	vm->vcpus[0].thread.reason = VCPU_THREAD_EXITED;
	vm->vcpus[2].thread.read_ok = false;
	vm->vcpus[2].thread.reason = VCPU_THREAD_SHARED;
	text = write_families(vm, false, EXPOSITION_TEXT_004);
	assert_null(strstr(text, "kvm_vcpu_thread_cpu"));
	assert_non_null(strstr(text, "{vm=\"web-1\",reason=\"thread_exited\"} 1\n"));
	assert_non_null(strstr(text, "{vm=\"web-1\",reason=\"shared_thread\"} 1\n"));
	free(text);
	free_fake_vm(vm);
}

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

struct worker {
	pid_t tid;
	int go[2]; /* the thread exits when this pipe is closed */
};

static void *thread_main(void *p)
{
	struct worker *w = p;
	char c;

	__atomic_store_n(&w->tid, my_tid(), __ATOMIC_SEQ_CST);
	(void)!read(w->go[0], &c, 1);
	return NULL;
}

/* Whether fd is still open in this process. */
static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void test_read_and_exit(void **state)
{
	struct vm *vm = fake_vm("vm", 2);
	struct worker w = { 0 };
	pthread_t th;
	pid_t tid;
	int fd_self, fd_gone;

	(void)state;
	assert_int_equal(pipe(w.go), 0);
	assert_int_equal(pthread_create(&th, NULL, thread_main, &w), 0);
	while ((tid = __atomic_load_n(&w.tid, __ATOMIC_SEQ_CST)) == 0)
		usleep(100);
	fd_gone = vcpu_thread_open("/proc", getpid(), tid);
	assert_true(fd_gone >= 0);
	fd_self = vcpu_thread_open("/proc", getpid(), my_tid());
	assert_true(fd_self >= 0);
	vcpu_thread_assign(&vm->vcpus[0].thread, my_tid(), fd_self);
	vcpu_thread_assign(&vm->vcpus[1].thread, tid, fd_gone);
	close(w.go[1]);
	assert_int_equal(pthread_join(th, NULL), 0);
	close(w.go[0]);

	/* Our own thread reads; the joined one is gone: dropped, its file closed. */
	vcpu_threads_read(vm);
	assert_true(vm->vcpus[0].thread.read_ok);
	assert_true(vm->vcpus[0].thread.stat.cpu_ns > 0);
	assert_true(vm->vcpus[0].thread.stat.timeslices > 0);
	assert_false(vm->vcpus[1].thread.read_ok);
	assert_int_equal(vm->vcpus[1].thread.reason, VCPU_THREAD_EXITED);
	assert_int_equal(vm->vcpus[1].thread.fd, -1);
	assert_int_equal(vm->vcpus[1].thread.tid, 0);
	assert_false(fd_open(fd_gone) && fd_gone != fd_self);

	/* The same file reads again from offset 0, and time only grows. */
	{
		uint64_t before = vm->vcpus[0].thread.stat.cpu_ns;
		volatile uint64_t spin = 0;

		for (unsigned i = 0; i < 10000000; i++)
			spin += i;
		usleep(1000); /* a running thread's total is brought up to date when it sleeps */
		vcpu_threads_read(vm);
		assert_true(vm->vcpus[0].thread.read_ok);
		assert_true(vm->vcpus[0].thread.stat.cpu_ns > before);
	}
	/* A VM whose process exited reads nothing. */
	vm->exited = true;
	vcpu_threads_read(vm);
	assert_false(vm->vcpus[0].thread.read_ok);
	free_fake_vm(vm);
	assert_false(fd_open(fd_self));
}

static void test_open_errors(void **state)
{
	(void)state;
	assert_int_equal(vcpu_thread_open("/proc", getpid(), 0x7ffffff0), -ENOENT);
	assert_int_equal(vcpu_thread_open("/nonexistent", 1, 1), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_families),
		cmocka_unit_test(test_read_and_exit),
		cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
