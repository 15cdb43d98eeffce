/* SPDX-License-Identifier: MIT */
/* vCPU threads at scrape time: one pread per thread, then their families. */
#include <errno.h>
#include <unistd.h>

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

enum thread_value { VALUE_CPU, VALUE_DELAY, VALUE_SLICES };

static uint64_t value_of(const struct schedstat *s, enum thread_value v)
{
	return v == VALUE_CPU ? s->cpu_ns : v == VALUE_DELAY ? s->run_delay_ns : s->timeslices;
}

/* Ends a sample: nanoseconds as exact decimal seconds, or a plain count. */
static void put_value(struct family_writer *w, kvmstats_u128 v, enum thread_value which)
{
	char buf[KVMSTATS_SCALED_BUFSIZE];
	int r;

	if (which == VALUE_SLICES) {
		family_value_u128(w, v);
		return;
	}
	r = kvmstats_format_scaled(buf, sizeof(buf), v, 10, -9);
	if (r < 0) {
		w->out->failed = true;
		return;
	}
	family_value_text(w, buf, (size_t)r);
}

static void write_family(struct family_writer *w, struct vm *const *vms, size_t n_vms,
			 bool per_vcpu, enum thread_value which, const char *family,
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
				family_begin(w, family, FAMILY_COUNTER, unit, help);
				header = true;
			}
			if (per_vcpu) {
				family_sample(w, NULL);
				family_label_escaped_n(w, "vm", vm->name_escaped,
						       vm->name_escaped_len);
				family_label_u64(w, "vcpu", (uint64_t)vm->vcpus[j].file->vcpu);
				put_value(w, value_of(&t->stat, which), which);
			}
			sum += value_of(&t->stat, which);
			any = true;
		}
		if (!per_vcpu && any) {
			family_sample(w, NULL);
			family_label_escaped_n(w, "vm", vm->name_escaped, vm->name_escaped_len);
			put_value(w, sum, which);
		}
	}
}

void vcpu_thread_families_write(struct family_writer *w, struct vm *const *vms, size_t n_vms,
				bool per_vcpu)
{
	bool header = false;

	write_family(w, vms, n_vms, per_vcpu, VALUE_CPU, "kvm_vcpu_thread_cpu_seconds", "seconds",
		     "Time the host threads running the vCPUs spent on a CPU "
		     "(/proc/PID/task/TID/schedstat).");
	write_family(w, vms, n_vms, per_vcpu, VALUE_DELAY, "kvm_vcpu_thread_run_delay_seconds",
		     "seconds",
		     "Time the host threads running the vCPUs were runnable but waited "
		     "for a CPU (/proc/PID/task/TID/schedstat).");
	write_family(w, vms, n_vms, per_vcpu, VALUE_SLICES, "kvm_vcpu_thread_timeslices", NULL,
		     "Timeslices the host threads running the vCPUs ran "
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
				family_begin(w, "kvm_vcpu_thread_unmapped", FAMILY_GAUGE, NULL,
					     "vCPUs whose host thread is not known, so that they "
					     "have no kvm_vcpu_thread_* series, by reason.");
				header = true;
			}
			family_sample(w, NULL);
			family_label_escaped_n(w, "vm", vm->name_escaped, vm->name_escaped_len);
			family_label(w, "reason", vcpu_thread_reason_to_string(r));
			family_value_u64(w, count[r]);
		}
	}
}
