/* SPDX-License-Identifier: MIT */
/* The set of VMs and the scrape: read every file, then write the exposition. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector.h"
#include "config.h"
#include "expo/escape.h"
#include "expo/family.h"
#include "kvm_families.h"
#include "vcpu_thread_scrape.h"
#include "macro.h"
#include "util/clock.h"

const char *const collector_names[COLLECTOR__MAX] = {
	[COLLECTOR_PROCFS] = "procfs", [COLLECTOR_FILE] = "file",
	[COLLECTOR_CANARY] = "canary", [COLLECTOR_HANDOFF] = "handoff",
	[COLLECTOR_VHOST] = "vhost",   [COLLECTOR_EXPORTER] = "exporter",
};

int collector_init(struct collector *c, bool per_vcpu)
{
	*c = (struct collector){ .per_vcpu = per_vcpu,
				 .collectors = COLLECTORS_ALL,
				 .scrape_collectors = COLLECTORS_ALL };
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
	free(c->writers);
	kvmstats_schema_cache_free(c->schemas);
	pthread_mutex_destroy(&c->lock);
	*c = (struct collector){ 0 };
}

static void translation_destroy(void *p)
{
	kvmstats_translation_free(p);
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
	r = kvmstats_translate_filtered(f->schema, c->family_keep, c->family_keep_userdata, &t);
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
			if ((k == 0 && vm->pid > 0
				     ? asprintf(&alt, "%s-%d", vm->name, (int)vm->pid)
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
	vm->name_escaped_len = strlen(vm->name_escaped);
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
			c->pollfds[n++] =
				(struct pollfd){ .fd = c->vms[i]->pidfd, .events = POLLIN };
		else if (c->vms[i]->conn_fd >= 0)
			c->pollfds[n++] =
				(struct pollfd){ .fd = c->vms[i]->conn_fd, .events = POLLRDHUP };
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

void collector_count_rejected_fd(struct collector *c)
{
	atomic_fetch_add_explicit(&c->rejected_fds, 1, memory_order_relaxed);
}

int collector_add_writer(struct collector *c, enum collector_writer_kind kind, family_writer_fn fn,
			 void *userdata)
{
	struct collector_writer *w;

	pthread_mutex_lock(&c->lock);
	w = reallocarray(c->writers, c->n_writers + 1, sizeof(*w));
	if (w) {
		c->writers = w;
		w[c->n_writers++] = (struct collector_writer){ kind, fn, userdata };
	}
	pthread_mutex_unlock(&c->lock);
	return w ? 0 : -ENOMEM;
}

void collector_remove_writer(struct collector *c, family_writer_fn fn, void *userdata)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = c->n_writers; i-- > 0;)
		if (c->writers[i].write == fn && c->writers[i].userdata == userdata) {
			memmove(&c->writers[i], &c->writers[i + 1],
				(c->n_writers - i - 1) * sizeof(*c->writers));
			c->n_writers--;
		}
	pthread_mutex_unlock(&c->lock);
}

static void call_writers(struct collector *c, struct family_writer *w,
			 enum collector_writer_kind kind)
{
	for (size_t i = 0; i < c->n_writers; i++)
		if (c->writers[i].kind == kind)
			c->writers[i].write(c->writers[i].userdata, w);
}

/* The exporter's own metrics: enabled, and asked for by this scrape. */
static bool self_wanted(const struct collector *c)
{
	return !c->disable_exporter_metrics && (c->scrape_collectors & (1u << COLLECTOR_EXPORTER));
}

/*
 * The collector's own self-metric families (docs/metrics.md). The sources'
 * and the scrape duration follow: see collector_write().
 */
static void write_self(struct collector *c, struct family_writer *w)
{
	size_t per_source[VM_SOURCE__MAX] = { 0 };
	size_t fds = 0, skipped = 0;

	for (size_t i = 0; i < c->n_vms; i++) {
		const struct vm *vm = c->vms[i];

		per_source[vm->source]++;
		fds += vm_n_files(vm);
		if (vm->vm_file)
			skipped += vm_file_translation(vm->vm_file)->n_skipped;
		for (size_t j = 0; j < vm->n_vcpus; j++)
			skipped += vm_file_translation(vm->vcpus[j].file)->n_skipped;
	}

	/* Kept even with --web.disable-exporter-metrics, like node_scrape_collector_*. */
	family_begin(w, "kvmstats_exporter_collector_duration_seconds", FAMILY_GAUGE, "seconds",
		     "Time this scrape spent reading the stats files of each source.");
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++) {
		if (!(c->scrape_collectors & (1u << s)))
			continue;
		family_sample(w, NULL);
		family_label(w, "collector", vm_source_to_string(s));
		family_value_seconds(w, c->source_read_seconds[s]);
	}
	family_begin(w, "kvmstats_exporter_collector_success", FAMILY_GAUGE, NULL,
		     "Whether every stats file of each source read successfully in this scrape.");
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++) {
		if (!(c->scrape_collectors & (1u << s)))
			continue;
		family_sample(w, NULL);
		family_label(w, "collector", vm_source_to_string(s));
		family_value_bool(w, c->source_read_ok[s]);
	}
	if (!self_wanted(c))
		return;

	family_begin(w, "kvmstats_exporter_build_info", FAMILY_GAUGE, NULL,
		     "Version and revision of the exporter; the value is always 1.");
	family_sample(w, NULL);
	family_label(w, "version", PROJECT_VERSION);
	family_label(w, "revision", PROJECT_REVISION);
	family_value_u64(w, 1);

	family_begin(w, "kvmstats_exporter_vms", FAMILY_GAUGE, NULL,
		     "VMs currently observed, by source.");
	for (unsigned s = 0; s < VM_SOURCE__MAX; s++) {
		family_sample(w, NULL);
		family_label(w, "source", vm_source_to_string(s));
		family_value_u64(w, per_source[s]);
	}

	family_write_u64(w, "kvmstats_exporter_stats_fds", FAMILY_GAUGE,
			 "KVM stats files (fds or saved blobs) currently held.", fds);

	family_write_u64(w, "kvmstats_exporter_skipped_stats", FAMILY_GAUGE,
			 "Descriptors in held files not exported: unknown type, unit or base, "
			 "unrepresentable scale, or a name clash.",
			 skipped);

	family_write_u64(w, "kvmstats_exporter_read_errors", FAMILY_COUNTER,
			 "Reads of a stats file that failed; its series are left out of that "
			 "scrape.",
			 c->read_errors);

	family_write_u64(w, "kvmstats_exporter_rejected_fds", FAMILY_COUNTER,
			 "Stats fds found but refused (malformed, or not the kind their link "
			 "said).",
			 atomic_load_explicit(&c->rejected_fds, memory_order_relaxed));
}

static bool vm_wanted(const struct vm *vm, uint32_t mask)
{
	return mask & (1u << vm->source);
}

int collector_write(struct collector *c, struct outbuf *out, enum exposition_format fmt,
		    double started)
{
	const uint32_t sources = (1u << VM_SOURCE__MAX) - 1;
	struct family_writer w = family_writer_init(out, fmt);
	_cleanup_free_ struct vm **some = NULL;
	struct vm *const *vms = c->vms;
	size_t n_vms = c->n_vms;

	/* A scrape limited to some sources writes a list of their VMs; the full one, all. */
	if ((c->scrape_collectors & sources) != sources && c->n_vms > 0) {
		some = malloc(c->n_vms * sizeof(*some));
		if (!some) {
			out->failed = true;
			return 0;
		}
		n_vms = 0;
		for (size_t i = 0; i < c->n_vms; i++)
			if (vm_wanted(c->vms[i], c->scrape_collectors))
				some[n_vms++] = c->vms[i];
		vms = some;
	}

	kvm_families_write(&w, vms, n_vms, c->per_vcpu);
	vcpu_thread_families_write(&w, vms, n_vms, c->per_vcpu);
	write_self(c, &w);
	if (self_wanted(c)) {
		call_writers(c, &w, COLLECTOR_WRITER_SELF);
		family_write_seconds(&w, "kvmstats_exporter_scrape_duration_seconds",
				     "Time this scrape took to read every stats file and format "
				     "the KVM metrics.",
				     monotonic_seconds() - started);
	}
	if (c->scrape_collectors & (1u << COLLECTOR_VHOST))
		call_writers(c, &w, COLLECTOR_WRITER_FAMILIES);
	family_writer_end(&w);
	return 0;
}

int collector_collect(struct collector *c, struct outbuf *out, enum exposition_format fmt)
{
	return collector_collect_only(c, out, fmt, COLLECTORS_ALL);
}

int collector_collect_only(struct collector *c, struct outbuf *out, enum exposition_format fmt,
			   uint32_t mask)
{
	double start;
	int r;

	pthread_mutex_lock(&c->lock);
	c->scrape_collectors = mask & c->collectors;
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

		if (!vm_wanted(vm, c->scrape_collectors))
			continue;
		vm->vm_read_ok = vm->vm_file && !vm->exited && read_file(c, vm->vm_file);
		ok = vm->exited || !vm->vm_file || vm->vm_read_ok;
		for (size_t j = 0; j < vm->n_vcpus; j++) {
			vm->vcpus[j].read_ok = !vm->exited && read_file(c, vm->vcpus[j].file);
			ok = ok && (vm->exited || vm->vcpus[j].read_ok);
		}
		vcpu_threads_read(vm);
		c->source_read_seconds[vm->source] += monotonic_seconds() - t0;
		c->source_read_ok[vm->source] = c->source_read_ok[vm->source] && ok;
	}
	c->scrapes++;

	r = collector_write(c, out, fmt, start);
	pthread_mutex_unlock(&c->lock);
	if (c->after_scrape)
		c->after_scrape(c->after_scrape_userdata);
	if (r >= 0 && out->failed)
		r = -ENOMEM;
	return r;
}
