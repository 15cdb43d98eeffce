/* SPDX-License-Identifier: MIT */
/* VM bookkeeping and the scrape: read every file, then write the exposition. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector.h"
#include "expo/escape.h"
#include "expo/exposition.h"
#include "kvm_families.h"
#include "macro.h"
#include "self_metrics.h"
#include "util/clock.h"
#include "vhost/tap.h"

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
	for (size_t i = 0; i < vm->n_vcpus; i++)
		kvmstats_file_free(vm->vcpus[i].file);
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
	vm->n_vcpus++;
	return 0;
}

void vm_remove_vcpu(struct vm *vm, size_t i)
{
	kvmstats_file_free(vm->vcpus[i].file);
	memmove(&vm->vcpus[i], &vm->vcpus[i + 1], (vm->n_vcpus - i - 1) * sizeof(*vm->vcpus));
	vm->n_vcpus--;
}

size_t vm_n_files(const struct vm *vm)
{
	return vm->n_vcpus + (vm->vm_file ? 1 : 0);
}

int collector_init(struct collector *c, bool per_vcpu)
{
	*c = (struct collector){ .per_vcpu = per_vcpu };
	c->schemas = kvmstats_schema_cache_new();
	if (!c->schemas)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	return 0;
}

void collector_release(struct collector *c)
{
	for (size_t i = 0; i < c->n_vms; i++)
		vm_free(c->vms[i]);
	free(c->vms);
	free(c->pollfds);
	kvmstats_schema_cache_free(c->schemas);
	pthread_mutex_destroy(&c->lock);
	*c = (struct collector){ 0 };
}

static void translation_destroy(void *p)
{
	kvmstats_translation_free(p);
}

const struct kvmstats_translation *file_translation(const struct kvmstats_file *f)
{
	return f->schema->userdata;
}

int collector_prepare_file(struct collector *c, struct kvmstats_file *f)
{
	struct kvmstats_translation *t;
	int r;

	if (f->kind == KVMSTATS_KIND_UNKNOWN)
		return -EINVAL;
	r = kvmstats_schema_cache_intern(c->schemas, f);
	if (r < 0)
		return r;
	if (f->schema->userdata)
		return 0;
	r = kvmstats_translate(f->schema, &t);
	if (r < 0)
		return r;
	f->schema->userdata = t;
	f->schema->userdata_free = translation_destroy;
	return 0;
}

bool collector_name_taken(const struct collector *c, const char *name)
{
	for (size_t i = 0; i < c->n_vms; i++)
		if (strcmp(c->vms[i]->name, name) == 0)
			return true;
	return false;
}

ssize_t collector_find_vm(const struct collector *c, const struct vm *vm)
{
	for (size_t i = 0; i < c->n_vms; i++)
		if (c->vms[i] == vm)
			return (ssize_t)i;
	return -1;
}

int collector_reserve(struct collector *c, size_t n)
{
	size_t cap = c->cap_vms ? c->cap_vms : 16;
	struct vm **p;

	if (n > SIZE_MAX / 4 - c->n_vms)
		return -ENOMEM;
	while (cap < c->n_vms + n)
		cap *= 2;
	if (cap == c->cap_vms)
		return 0;
	p = reallocarray(c->vms, cap, sizeof(*p));
	if (!p)
		return -ENOMEM;
	c->vms = p;
	c->cap_vms = cap;
	return 0;
}

int collector_add_vm(struct collector *c, struct vm *vm)
{
	struct outbuf b = { 0 };

	/* Names stay stable for a VM's life: the newcomer yields on a clash. */
	if (collector_name_taken(c, vm->name)) {
		char *alt = NULL;

		for (unsigned k = 0; !alt || collector_name_taken(c, alt); k++) {
			free(alt);
			if ((k == 0 && vm->pid > 0 ? asprintf(&alt, "%s-%d", vm->name, (int)vm->pid)
						   : asprintf(&alt, "%s-%u", vm->name, k + 1)) < 0) {
				vm_free(vm);
				return -ENOMEM;
			}
		}
		free(vm->name);
		vm->name = alt;
		free(vm->name_escaped);
		vm->name_escaped = NULL;
	}

	if (!vm->name_escaped) {
		escape_puts(&b, vm->name, ESCAPE_LABEL_VALUE);
		outbuf_putc(&b, '\0');
		if (b.failed) {
			outbuf_release(&b);
			vm_free(vm);
			return -ENOMEM;
		}
		vm->name_escaped = b.data;
	}

	if (collector_reserve(c, 1) < 0) {
		vm_free(vm);
		return -ENOMEM;
	}
	c->vms[c->n_vms++] = vm;
	return 0;
}

void collector_remove_vm(struct collector *c, size_t i)
{
	vm_free(c->vms[i]);
	memmove(&c->vms[i], &c->vms[i + 1], (c->n_vms - i - 1) * sizeof(*c->vms));
	c->n_vms--;
	kvmstats_schema_cache_prune(c->schemas);
}

static bool read_file(struct collector *c, struct kvmstats_file *f)
{
	if (kvmstats_file_read(f) < 0) {
		c->read_errors++;
		return false;
	}
	return true;
}

/*
 * Marks VMs whose process has exited or whose hand-off connection hung up,
 * with one poll() over every pidfd and connection: the main thread removes
 * them as soon as it wakes, but a scrape racing with it must not report a
 * dead VM's last values as current.
 */
static void check_liveness(struct collector *c)
{
	size_t n = 0;

	if (c->n_pollfds < c->n_vms) {
		struct pollfd *p = reallocarray(c->pollfds, c->n_vms, sizeof(*p));

		if (!p)
			return; /* the main thread's pidfd watch still removes them */
		c->pollfds = p;
		c->n_pollfds = c->n_vms;
	}
	for (size_t i = 0; i < c->n_vms; i++)
		if (c->vms[i]->pidfd >= 0)
			c->pollfds[n++] = (struct pollfd){ .fd = c->vms[i]->pidfd, .events = POLLIN };
		else if (c->vms[i]->conn_fd >= 0)
			c->pollfds[n++] = (struct pollfd){ .fd = c->vms[i]->conn_fd,
							   .events = POLLRDHUP };
	if (n == 0 || poll(c->pollfds, n, 0) <= 0)
		return;
	n = 0;
	for (size_t i = 0; i < c->n_vms; i++) {
		short gone = c->vms[i]->pidfd >= 0 ? POLLIN | POLLHUP : POLLRDHUP | POLLHUP;

		if ((c->vms[i]->pidfd >= 0 || c->vms[i]->conn_fd >= 0) &&
		    (c->pollfds[n++].revents & gone))
			c->vms[i]->exited = true;
	}
}

int collector_collect(struct collector *c, struct outbuf *out, enum exposition_format fmt)
{
	double start;
	int r;

	pthread_mutex_lock(&c->lock);
	start = monotonic_seconds();
	check_liveness(c);

	/* All reads first, then formatting: one consistent snapshot per scrape. */
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++) {
		c->source_read_seconds[s] = 0;
		c->source_read_ok[s] = true;
	}
	for (size_t i = 0; i < c->n_vms; i++) {
		struct vm *vm = c->vms[i];
		double t0 = monotonic_seconds();
		bool ok;

		vm->vm_read_ok = vm->vm_file && !vm->exited && read_file(c, vm->vm_file);
		ok = vm->exited || !vm->vm_file || vm->vm_read_ok;
		for (size_t j = 0; j < vm->n_vcpus; j++) {
			vm->vcpus[j].read_ok = !vm->exited && read_file(c, vm->vcpus[j].file);
			ok = ok && (vm->exited || vm->vcpus[j].read_ok);
		}
		c->source_read_seconds[vm->source] += monotonic_seconds() - t0;
		c->source_read_ok[vm->source] = c->source_read_ok[vm->source] && ok;
	}
	c->scrapes++;

	r = kvm_families_write(out, c->vms, c->n_vms, c->per_vcpu, fmt);
	if (r >= 0)
		r = self_metrics_write(out, c, monotonic_seconds() - start, fmt);
	if (r >= 0)
		r = vhost_taps_write_metrics(c->vhost_taps, out, fmt);
	if (r >= 0)
		exposition_write_end(out, fmt);
	pthread_mutex_unlock(&c->lock);
	if (c->after_scrape)
		c->after_scrape(c->after_scrape_userdata);
	if (r >= 0 && out->failed)
		r = -ENOMEM;
	return r;
}
