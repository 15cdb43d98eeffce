/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "vm.h"

static const char *const source_names[VM_SOURCE__MAX] = {
	[VM_SOURCE_PROCFS] = "procfs",
	[VM_SOURCE_FILE] = "file",
	[VM_SOURCE_CANARY] = "canary",
	[VM_SOURCE_HANDOFF] = "handoff",
};

const char *vm_source_to_string(enum vm_source s)
{
	return (unsigned)s < VM_SOURCE__MAX ? source_names[s] : "unknown";
}

struct vm *vm_new(enum vm_source source)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->source = source;
	vm->pidfd = -1;
	vm->conn_fd = -1;
	vm->vm_target_fd = -1;
	return vm;
}

struct vm *vm_free(struct vm *vm)
{
	if (!vm)
		return NULL;
	for (size_t i = 0; i < vm->n_vcpus; i++) {
		kvmstats_file_free(vm->vcpus[i].file);
		vcpu_thread_release(&vm->vcpus[i].thread, VCPU_THREAD_EXITED);
	}
	free(vm->vcpus);
	kvmstats_file_free(vm->vm_file);
	safe_close(vm->pidfd);
	free(vm->name);
	free(vm->name_escaped);
	free(vm->uuid);
	free(vm->vmm);
	free(vm->kvm_id);
	for (size_t i = 0; i < vm->n_labels; i++) {
		free(vm->label_names[i]);
		free(vm->label_values_escaped[i]);
	}
	free(vm->label_names);
	free(vm->label_values_escaped);
	free(vm);
	return NULL;
}

int vm_add_vcpu(struct vm *vm, struct kvmstats_file *f, int target_fd)
{
	struct vm_vcpu *v;
	size_t pos = vm->n_vcpus;

	for (size_t i = 0; i < vm->n_vcpus; i++) {
		if (vm->vcpus[i].file->vcpu == f->vcpu)
			return -EEXIST;
		if (vm->vcpus[i].file->vcpu > f->vcpu && pos == vm->n_vcpus)
			pos = i;
	}
	v = reallocarray(vm->vcpus, vm->n_vcpus + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	vm->vcpus = v;
	memmove(&v[pos + 1], &v[pos], (vm->n_vcpus - pos) * sizeof(*v));
	v[pos] = (struct vm_vcpu){ .file = f, .target_fd = target_fd };
	vcpu_thread_init(&v[pos].thread,
			 vm->pid > 0 ? VCPU_THREAD_NOT_SEEN : VCPU_THREAD_NO_PROCESS);
	vm->n_vcpus++;
	return 0;
}

void vm_remove_vcpu(struct vm *vm, size_t i)
{
	kvmstats_file_free(vm->vcpus[i].file);
	vcpu_thread_release(&vm->vcpus[i].thread, VCPU_THREAD_EXITED);
	memmove(&vm->vcpus[i], &vm->vcpus[i + 1], (vm->n_vcpus - i - 1) * sizeof(*vm->vcpus));
	vm->n_vcpus--;
}

size_t vm_n_files(const struct vm *vm)
{
	return vm->n_vcpus + (vm->vm_file ? 1 : 0);
}

const struct kvmstats_translation *vm_file_translation(const struct kvmstats_file *f)
{
	return f->schema->userdata;
}
