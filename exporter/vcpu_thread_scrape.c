/* SPDX-License-Identifier: MIT */
/* vCPU threads at scrape time: one pread per thread, then their families. */
#include <errno.h>
#include <unistd.h>

#include "collector.h"
#include "expo/family.h"
#include "scale.h"
#include "vcpu_thread.h"
#include "vcpu_thread_scrape.h"

/* One pread from offset 0: procfs regenerates the line on every read at 0. */
static int read_schedstat(int fd, struct schedstat *ret)
{
	char buf[SCHEDSTAT_MAX_LEN + 1];
	ssize_t n;

	do
		n = pread(fd, buf, sizeof(buf), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return schedstat_parse(buf, (size_t)n, ret);
}

void vcpu_threads_read(struct vm *vm)
{
	for (size_t i = 0; i < vm->n_vcpus; i++) {
		struct vcpu_thread *t = &vm->vcpus[i].thread;

		t->read_ok = false;
		if (t->fd < 0 || vm->exited)
			continue;
		/* ESRCH once the thread is gone; its tid may name another thread later. */
		if (read_schedstat(t->fd, &t->stat) < 0)
			vcpu_thread_release(t, VCPU_THREAD_EXITED);
		else
			t->read_ok = true;
	}
}

static void put_seconds(struct outbuf *out, kvmstats_u128 ns)
{
	char buf[KVMSTATS_SCALED_BUFSIZE];
	int r = kvmstats_format_scaled(buf, sizeof(buf), ns, 10, -9);

	if (r < 0) {
		out->failed = true;
		return;
	}
	outbuf_put(out, buf, (size_t)r);
}

static void put_labels(struct outbuf *out, const struct vm *vm, int vcpu)
{
	outbuf_puts(out, "{vm=\"");
	outbuf_puts(out, vm->name_escaped);
	if (vcpu >= 0) {
		outbuf_puts(out, "\",vcpu=\"");
		outbuf_put_u64(out, (uint64_t)vcpu);
	}
	outbuf_puts(out, "\"} ");
}

enum thread_value { VALUE_CPU, VALUE_DELAY, VALUE_SLICES };

static uint64_t value_of(const struct schedstat *s, enum thread_value v)
{
	return v == VALUE_CPU ? s->cpu_ns : v == VALUE_DELAY ? s->run_delay_ns : s->timeslices;
}

static void put_value(struct outbuf *out, kvmstats_u128 v, enum thread_value which)
{
	if (which == VALUE_SLICES) {
		char buf[KVMSTATS_SCALED_BUFSIZE];
		int r = kvmstats_format_u128(buf, sizeof(buf), v);

		if (r < 0)
			out->failed = true;
		else
			outbuf_put(out, buf, (size_t)r);
	} else {
		put_seconds(out, v);
	}
	outbuf_putc(out, '\n');
}

static void write_family(struct outbuf *out, struct vm *const *vms, size_t n_vms, bool per_vcpu,
			 enum exposition_format fmt, enum thread_value which, const char *family,
			 const char *unit, const char *help)
{
	bool header = false;

	for (size_t i = 0; i < n_vms; i++) {
		const struct vm *vm = vms[i];
		kvmstats_u128 sum = 0;
		bool any = false;

		for (size_t j = 0; j < vm->n_vcpus; j++) {
			const struct vcpu_thread *t = &vm->vcpus[j].thread;

			if (!t->read_ok)
				continue;
			if (!header) {
				family_write_header(out, fmt, family, FAMILY_COUNTER, unit, help);
				header = true;
			}
			if (per_vcpu) {
				outbuf_puts(out, family);
				outbuf_puts(out, "_total");
				put_labels(out, vm, vm->vcpus[j].file->vcpu);
				put_value(out, value_of(&t->stat, which), which);
			}
			sum += value_of(&t->stat, which);
			any = true;
		}
		if (!per_vcpu && any) {
			outbuf_puts(out, family);
			outbuf_puts(out, "_total");
			put_labels(out, vm, -1);
			put_value(out, sum, which);
		}
	}
}

int vcpu_thread_families_write(struct outbuf *out, struct vm *const *vms, size_t n_vms,
			       bool per_vcpu, enum exposition_format fmt)
{
	bool header = false;

	write_family(out, vms, n_vms, per_vcpu, fmt, VALUE_CPU, "kvm_vcpu_thread_cpu_seconds",
		     "seconds", "Time the host threads running the vCPUs spent on a CPU "
		     "(/proc/PID/task/TID/schedstat).");
	write_family(out, vms, n_vms, per_vcpu, fmt, VALUE_DELAY,
		     "kvm_vcpu_thread_run_delay_seconds", "seconds",
		     "Time the host threads running the vCPUs were runnable but waited for a CPU "
		     "(/proc/PID/task/TID/schedstat).");
	write_family(out, vms, n_vms, per_vcpu, fmt, VALUE_SLICES, "kvm_vcpu_thread_timeslices",
		     NULL, "Timeslices the host threads running the vCPUs ran "
		     "(/proc/PID/task/TID/schedstat).");

	for (size_t i = 0; i < n_vms; i++) {
		const struct vm *vm = vms[i];
		size_t count[VCPU_THREAD__MAX] = { 0 };

		if (vm->exited)
			continue;
		for (size_t j = 0; j < vm->n_vcpus; j++)
			if (!vm->vcpus[j].thread.read_ok)
				count[vm->vcpus[j].thread.reason == VCPU_THREAD_MAPPED
					      ? VCPU_THREAD_NOT_SEEN
					      : vm->vcpus[j].thread.reason]++;
		/* Saved files and the canary have no VMM thread to miss. */
		for (unsigned r = 1; r < VCPU_THREAD__MAX; r++) {
			if (count[r] == 0 || r == VCPU_THREAD_NO_PROCESS)
				continue;
			if (!header) {
				family_write_header(out, fmt, "kvm_vcpu_thread_unmapped", FAMILY_GAUGE,
						    NULL, "vCPUs whose host thread is not known, so "
						    "that they have no kvm_vcpu_thread_* series, by "
						    "reason.");
				header = true;
			}
			outbuf_puts(out, "kvm_vcpu_thread_unmapped{vm=\"");
			outbuf_puts(out, vm->name_escaped);
			outbuf_printf(out, "\",reason=\"%s\"} %zu\n", vcpu_thread_reason_to_string(r),
				      count[r]);
		}
	}
	return 0;
}
