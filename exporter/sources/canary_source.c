/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "sources/canary_source.h"

void canary_source_burst(struct canary_source *s)
{
	int r = canary_burst(s->canary);

	pthread_mutex_lock(&s->collector->lock);
	s->up = r >= 0;
	s->bursts++;
	pthread_mutex_unlock(&s->collector->lock);
	if (r < 0)
		log_warn("canary burst failed", "err=\"%s\"", strerror(-r));
}

int canary_source_start(struct canary_source *s, struct collector *c)
{
	struct kvmstats_file *vm_file = NULL, *vcpu_file = NULL;
	struct kvmstats_error err;
	struct vm *vm;
	char why[256];
	int vm_fd, vcpu_fd, r;

	s->collector = c;
	r = canary_new(&s->canary, why, sizeof(why));
	if (r < 0) {
		/* A host without KVM is what the canary reports, not a reason to stop. */
		log_error("canary VM not available", "err=\"%s\"", why);
		return 0;
	}
	r = canary_stats_fds(s->canary, &vm_fd, &vcpu_fd);
	if (r < 0)
		return log_error("canary stats fds not available", "err=\"%s\"", strerror(-r)), r;
	r = kvmstats_file_open_fd(vm_fd, &vm_file, &err);
	if (r < 0) {
		close(vm_fd);
		close(vcpu_fd);
		return r;
	}
	r = kvmstats_file_open_fd(vcpu_fd, &vcpu_file, &err);
	if (r < 0) {
		close(vcpu_fd);
		kvmstats_file_free(vm_file);
		return r;
	}
	vm = vm_new(VM_SOURCE_CANARY);
	if (!vm || collector_prepare_file(c, vm_file) < 0 ||
	    collector_prepare_file(c, vcpu_file) < 0 || !(vm->name = strdup("canary")) ||
	    !(vm->vmm = strdup("kvmstats_exporter")) ||
	    !(vm->kvm_id = strndup(vm_file->id, strcspn(vm_file->id, "/")))) {
		vm_free(vm);
		kvmstats_file_free(vm_file);
		kvmstats_file_free(vcpu_file);
		return -ENOMEM;
	}
	vm->pid = getpid();
	vm->vm_file = vm_file;
	r = vm_add_vcpu(vm, vcpu_file, -1);
	if (r < 0) {
		kvmstats_file_free(vcpu_file);
		vm_free(vm);
		return r;
	}
	canary_source_burst(s);
	pthread_mutex_lock(&c->lock);
	r = collector_add_vm(c, vm);
	pthread_mutex_unlock(&c->lock);
	return r;
}

void canary_source_write_metrics(void *userdata, struct family_writer *w)
{
	const struct canary_source *s = userdata;

	family_write_u64(w, "kvmstats_exporter_canary_up", FAMILY_GAUGE,
			 "Whether the canary VM's last burst of guest code ran as expected "
			 "(KVM works on this host).",
			 s->up ? 1 : 0);
	family_write_u64(w, "kvmstats_exporter_canary_bursts", FAMILY_COUNTER,
			 "Bursts of guest code run by the canary VM.", s->bursts);
}

void canary_source_release(struct canary_source *s)
{
	s->canary = canary_free(s->canary);
}
