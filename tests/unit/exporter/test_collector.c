/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the collector (collector.c, vm.c) on its own: unique VM
 * names, the registered metric writers (order, kinds, removal,
 * --web.disable-exporter-metrics), read errors, VMs whose process exited,
 * the after-scrape hook and the rejected-fd counter. VMs are made from the
 * saved blobs of tests/data; what the KVM families look like is
 * test_exposition.c's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector.h"
#include "golden.h"
#include "lines.h"

static struct blob vm_blob, vcpu_blob;

static int group_setup(void **state)
{
	if (load_data_blob("x86_64-6.18-vm.bin", &vm_blob) < 0 ||
	    load_data_blob("x86_64-6.18-vcpu.bin", &vcpu_blob) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	free(vm_blob.data);
	free(vcpu_blob.data);
	return 0;
}

/* A VM file on a memfd (so that it can be broken), prepared by c. */
static struct kvmstats_file *file_on_fd(struct collector *c, const struct blob *b)
{
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	int fd = memfd_create("test-collector", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b->data, b->len), (ssize_t)b->len);
	assert_int_equal(kvmstats_file_open_fd(fd, &f, &err), 0);
	assert_int_equal(collector_prepare_file(c, f), 0);
	return f;
}

/* Adds a VM of one VM file and one vCPU file; returns it (owned by c). */
static struct vm *add_vm(struct collector *c, enum vm_source source, const char *name, pid_t pid)
{
	struct vm *vm = vm_new(source);

	assert_non_null(vm);
	vm->name = strdup(name);
	assert_non_null(vm->name);
	vm->pid = pid;
	vm->vm_file = file_on_fd(c, &vm_blob);
	assert_int_equal(vm_add_vcpu(vm, file_on_fd(c, &vcpu_blob), -1), 0);
	pthread_mutex_lock(&c->lock);
	assert_int_equal(collector_add_vm(c, vm), 0);
	pthread_mutex_unlock(&c->lock);
	return vm;
}

static char *scrape(struct collector *c, enum exposition_format fmt)
{
	struct outbuf out = { 0 };

	assert_int_equal(collector_collect(c, &out, fmt), 0);
	outbuf_putc(&out, '\0');
	assert_false(out.failed);
	return out.data;
}

static void test_names(void **state)
{
	struct collector c;
	struct vm *a, *b, *d, *e, *q;

	assert_int_equal(collector_init(&c, false), 0);
	a = add_vm(&c, VM_SOURCE_FILE, "web", 10);
	b = add_vm(&c, VM_SOURCE_HANDOFF, "web", 11);
	d = add_vm(&c, VM_SOURCE_FILE, "web", 0);
	e = add_vm(&c, VM_SOURCE_FILE, "web", 0);
	q = add_vm(&c, VM_SOURCE_FILE, "a\"b\\c\nd", 0);
	/* Names stay stable: the newcomer yields, with its pid or a number. */
	assert_string_equal(a->name, "web");
	assert_string_equal(b->name, "web-11");
	assert_string_equal(d->name, "web-1");
	assert_string_equal(e->name, "web-2");
	assert_string_equal(q->name_escaped, "a\\\"b\\\\c\\nd");
	assert_int_equal(q->name_escaped_len, strlen(q->name_escaped));
	assert_true(collector_name_taken(&c, "web-2"));
	assert_false(collector_name_taken(&c, "web-3"));
	assert_int_equal(collector_find_vm(&c, d), 2);

	pthread_mutex_lock(&c.lock);
	collector_remove_vm(&c, 2);
	pthread_mutex_unlock(&c.lock);
	assert_int_equal(c.n_vms, 4);
	assert_int_equal(collector_find_vm(&c, d), -1);
	assert_int_equal(collector_find_vm(&c, e), 2);
	assert_false(collector_name_taken(&c, "web-1"));
	assert_int_equal(vm_n_files(e), 2);
	collector_release(&c);
}

static void write_a(void *userdata, struct family_writer *w)
{
	family_write_u64(w, "test_a", FAMILY_COUNTER, "First writer.", *(uint64_t *)userdata);
}

static void write_b(void *userdata, struct family_writer *w)
{
	family_begin(w, "test_b", FAMILY_GAUGE, NULL, "Second writer.");
	family_sample(w, NULL);
	family_label(w, "x", "\"quoted\"");
	family_value_u64(w, 2);
}

static void write_c(void *userdata, struct family_writer *w)
{
	family_write_u64(w, "test_c", FAMILY_GAUGE, "Third writer.", 3);
}

static void test_writers(void **state)
{
	struct collector c;
	uint64_t counted = 41;
	const char *a, *b, *cc, *dur, *eof;
	char *text;

	assert_int_equal(collector_init(&c, false), 0);
	(void)add_vm(&c, VM_SOURCE_FILE, "web", 0);
	assert_int_equal(collector_add_writer(&c, COLLECTOR_WRITER_SELF, write_a, &counted), 0);
	assert_int_equal(collector_add_writer(&c, COLLECTOR_WRITER_FAMILIES, write_b, NULL), 0);
	assert_int_equal(collector_add_writer(&c, COLLECTOR_WRITER_SELF, write_c, NULL), 0);

	/* Self-metric writers in registration order before the scrape duration, the rest after. */
	counted++;
	text = scrape(&c, EXPOSITION_OPENMETRICS_100);
	a = assert_line(text, "test_a_total 42");
	cc = assert_line(text, "test_c 3");
	dur = strstr(text, "# TYPE kvmstats_exporter_scrape_duration_seconds gauge");
	b = assert_line(text, "test_b{x=\"\\\"quoted\\\"\"} 2");
	eof = assert_line(text, "# EOF");
	assert_non_null(dur);
	assert_true(assert_line(text, "kvmstats_exporter_rejected_fds_total 0") < a);
	assert_true(a < cc && cc < dur && dur < b && b < eof);
	assert_non_null(find_line(text, "# TYPE test_a counter"));
	free(text);

	/* --web.disable-exporter-metrics: the self-metric writers go, the others stay. */
	c.disable_exporter_metrics = true;
	text = scrape(&c, EXPOSITION_TEXT_004);
	assert_null(find_line(text, "test_a_total 42"));
	assert_null(find_line(text, "test_c 3"));
	assert_null(strstr(text, "kvmstats_exporter_scrape_duration_seconds"));
	assert_null(strstr(text, "kvmstats_exporter_build_info"));
	assert_line(text, "kvmstats_exporter_collector_success{collector=\"file\"} 1");
	assert_line(text, "test_b{x=\"\\\"quoted\\\"\"} 2");
	assert_line(text, "# TYPE test_b gauge");
	free(text);

	c.disable_exporter_metrics = false;
	collector_remove_writer(&c, write_a, &counted);
	collector_remove_writer(&c, write_b, NULL);
	text = scrape(&c, EXPOSITION_TEXT_004);
	assert_null(strstr(text, "test_a"));
	assert_null(strstr(text, "test_b"));
	assert_line(text, "test_c 3");
	free(text);
	collector_release(&c);
}

static unsigned after_calls;

static void after_scrape(void *userdata)
{
	struct collector *c = userdata;

	/* Outside the lock: the hook may take it. */
	pthread_mutex_lock(&c->lock);
	after_calls++;
	pthread_mutex_unlock(&c->lock);
}

static void test_read_errors(void **state)
{
	struct collector c;
	struct vm *good, *broken;
	char *text;
	int null_fd;

	assert_int_equal(collector_init(&c, false), 0);
	c.after_scrape = after_scrape;
	c.after_scrape_userdata = &c;
	good = add_vm(&c, VM_SOURCE_FILE, "good", 0);
	broken = add_vm(&c, VM_SOURCE_HANDOFF, "broken", 0);
	/* Its vCPU file now reads nothing: a short read, not a number. */
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(null_fd >= 0);
	assert_true(dup2(null_fd, broken->vcpus[0].file->fd) >= 0);
	close(null_fd);

	text = scrape(&c, EXPOSITION_TEXT_004);
	assert_int_equal(c.read_errors, 1);
	assert_line(text, "kvmstats_exporter_read_errors_total 1");
	assert_line(text, "kvmstats_exporter_collector_success{collector=\"file\"} 1");
	assert_line(text, "kvmstats_exporter_collector_success{collector=\"handoff\"} 0");
	/* The VM file read fine: its families are there; the vCPU sum is left out. */
	assert_non_null(strstr(text, "kvm_vm_pages_4k{vm=\"broken\"}"));
	assert_non_null(strstr(text, "kvm_vcpu_exits_total{vm=\"good\"}"));
	assert_null(strstr(text, "kvm_vcpu_exits_total{vm=\"broken\"}"));
	assert_true(good->vm_read_ok && broken->vm_read_ok && !broken->vcpus[0].read_ok);
	assert_int_equal(after_calls, 1);
	free(text);

	collector_count_rejected_fd(&c);
	collector_count_rejected_fd(&c);
	text = scrape(&c, EXPOSITION_TEXT_004);
	assert_line(text, "kvmstats_exporter_rejected_fds_total 2");
	assert_line(text, "kvmstats_exporter_read_errors_total 2");
	assert_int_equal(after_calls, 2);
	free(text);
	collector_release(&c);
}

/* A VM whose process exited is not reported as current, even before the main thread removes it. */
static void test_exited(void **state)
{
	struct collector c;
	struct vm *vm;
	char *text;
	pid_t child;
	int pidfd;

	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	pidfd = (int)syscall(SYS_pidfd_open, child, 0);
	if (pidfd < 0 && errno == ENOSYS) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		skip();
	}
	assert_true(pidfd >= 0);
	assert_int_equal(collector_init(&c, false), 0);
	vm = add_vm(&c, VM_SOURCE_PROCFS, "vmm", child);
	vm->pidfd = pidfd;

	text = scrape(&c, EXPOSITION_TEXT_004);
	assert_false(vm->exited);
	assert_non_null(strstr(text, "kvm_vm_info{vm=\"vmm\""));
	free(text);

	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	text = scrape(&c, EXPOSITION_TEXT_004);
	assert_true(vm->exited);
	assert_null(strstr(text, "vm=\"vmm\""));
	/* Gone is not failed. */
	assert_line(text, "kvmstats_exporter_collector_success{collector=\"procfs\"} 1");
	assert_line(text, "kvmstats_exporter_read_errors_total 0");
	/* Still held until removed: the main thread's job. */
	assert_line(text, "kvmstats_exporter_vms{source=\"procfs\"} 1");
	free(text);
	collector_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_writers),
		cmocka_unit_test(test_read_errors),
		cmocka_unit_test(test_exited),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
