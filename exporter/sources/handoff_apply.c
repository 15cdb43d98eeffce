/* SPDX-License-Identifier: MIT */
/*
 * Hand-off: checking the fds a peer attached and changing its VM.
 *
 * Everything that can fail (validation, allocation) happens before the
 * collector lock is taken; under the lock only pointers move. So a message
 * either applies whole or leaves every VM as it was.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "expo/escape.h"
#include "sources/handoff_apply.h"
#include "sources/handoff_threads.h"
#include "log/log.h"
#include "macro.h"
#include "util/samefile.h"
#include "util/vmname.h"

#define LINK_VM   "anon_inode:kvm-vm-stats"
#define LINK_VCPU "anon_inode:kvm-vcpu-stats:"

struct apply {
	struct collector *c;
	struct handoff_peer *peer;
	const struct handoff_msg *m;
	struct handoff_refusal refusal;
	struct kvmstats_file *files[HANDOFF_MAX_FDS_PER_MSG]; /* files[i] from fds[i] */
	struct vm *replace[HANDOFF_MAX_FDS_PER_MSG]; /* procfs VMs holding the same files */
	size_t n_replace;
};

/* Refusing the message being applied. */
#define refuse(a, ...) handoff_refuse(&(a)->refusal, __VA_ARGS__)

static const char *role_str(int role, char *buf, size_t len)
{
	handoff_role_format(role, buf, len);
	return buf;
}

static bool vm_has_role(const struct vm *vm, int role)
{
	if (!vm)
		return false;
	if (role == HANDOFF_ROLE_VM)
		return vm->vm_file != NULL;
	for (size_t i = 0; i < vm->n_vcpus; i++)
		if (vm->vcpus[i].file->vcpu == role)
			return true;
	return false;
}

/* Cheap checks on the roles, before any fd is looked at. */
static int check_roles(struct apply *a, size_t n_fds)
{
	const struct handoff_msg *m = a->m;
	const struct vm *vm = a->peer->vm;
	const char *key = m->kind == HANDOFF_MSG_REMOVE ? "remove" : "fds";
	char rs[16];

	if (m->kind == HANDOFF_MSG_REMOVE && n_fds > 0)
		return refuse(a, HANDOFF_REJECT_FD,
			      "%zu fds are attached to a \"remove\" message, which takes none",
			      n_fds);
	if (m->kind != HANDOFF_MSG_REMOVE && n_fds != m->n_roles)
		return refuse(a, HANDOFF_REJECT_FD,
			      "%zu fds are attached for %zu roles in \"fds\": attach exactly one "
			      "fd per role, in order",
			      n_fds, m->n_roles);
	for (size_t i = 0; i < m->n_roles; i++) {
		bool held = vm_has_role(vm, m->roles[i]);

		if (m->kind == HANDOFF_MSG_REMOVE && !held)
			return refuse(a, HANDOFF_REJECT_ROLE,
				      "\"%s[%zu]\": the VM has no role \"%s\"", key, i,
				      role_str(m->roles[i], rs, sizeof(rs)));
		if (m->kind != HANDOFF_MSG_REMOVE && held)
			return refuse(a, HANDOFF_REJECT_ROLE,
				      "\"%s[%zu]\": the VM already has role \"%s\" (remove it "
				      "first)",
				      key, i, role_str(m->roles[i], rs, sizeof(rs)));
	}
	if (m->kind == HANDOFF_MSG_ADD && vm_n_files(vm) + m->n_roles > HANDOFF_MAX_FDS_PER_VM)
		return refuse(a, HANDOFF_REJECT_BOUNDS,
			      "the VM would hold %zu fds, at most %u are allowed",
			      vm_n_files(vm) + m->n_roles, HANDOFF_MAX_FDS_PER_VM);
	return 0;
}

/*
 * What the fd is, from its /proc/self/fd link: the one check that reads
 * nothing from the fd (a FIFO or a FUSE file could block the main thread).
 */
static int check_link(struct apply *a, size_t i, int fd, int role)
{
	char path[64], link[128], want[64], rs[16], other[64];
	const char *what = "is not a KVM stats fd";
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return refuse(a, HANDOFF_REJECT_FD, "fd %zu (role \"%s\") cannot be checked: %s", i,
			      role_str(role, rs, sizeof(rs)), strerror(errno));
	link[n] = '\0';
	if (role == HANDOFF_ROLE_VM)
		snprintf(want, sizeof(want), "%s", LINK_VM);
	else
		snprintf(want, sizeof(want), LINK_VCPU "%d", role);
	if (strcmp(link, want) == 0)
		return 0;

	if (strcmp(link, LINK_VM) == 0)
		what = "is the VM's stats fd";
	else if (strncmp(link, LINK_VCPU, strlen(LINK_VCPU)) == 0)
		/* The kernel's own words ("kvm-vcpu-stats:<index>"): safe to repeat. */
		what = (snprintf(other, sizeof(other), "is the stats fd of vCPU %.16s",
				 link + strlen(LINK_VCPU)),
			other);
	else if (strcmp(link, "anon_inode:kvm-vm") == 0)
		what = "is a KVM VM fd, not its stats fd (KVM_GET_STATS_FD makes one)";
	else if (strncmp(link, "anon_inode:kvm-vcpu:", 20) == 0)
		what = "is a KVM vCPU fd, not its stats fd (KVM_GET_STATS_FD makes one)";
	return refuse(a, HANDOFF_REJECT_FD, "fd %zu (role \"%s\") %s", i,
		      role_str(role, rs, sizeof(rs)), what);
}

/* Validates fds[i] as the stats file of its role; consumes the fd. */
static int open_file(struct apply *a, size_t i, int fd)
{
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	int role = a->m->roles[i], r;
	char rs[16], rule[160];

	r = check_link(a, i, fd, role);
	if (r < 0) {
		safe_close(fd);
		return r;
	}
	r = kvmstats_file_open_fd(fd, &f, &err);
	if (r < 0) {
		safe_close(fd);
		if (r == -EBADMSG)
			kvmstats_error_format(&err, rule, sizeof(rule));
		else
			snprintf(rule, sizeof(rule), "%s", strerror(-r));
		return refuse(a, HANDOFF_REJECT_FD,
			      "fd %zu (role \"%s\") is not a valid stats file: %s", i,
			      role_str(role, rs, sizeof(rs)), rule);
	}
	a->files[i] = f;
	/* The link said so already; the id must agree. */
	if ((role == HANDOFF_ROLE_VM && f->kind != KVMSTATS_KIND_VM) ||
	    (role != HANDOFF_ROLE_VM && (f->kind != KVMSTATS_KIND_VCPU || f->vcpu != role)))
		return refuse(a, HANDOFF_REJECT_FD, "fd %zu (role \"%s\") has id \"%.64s\"", i,
			      role_str(role, rs, sizeof(rs)), f->id);
	r = collector_prepare_file(a->c, f);
	if (r < 0)
		return refuse(a, HANDOFF_REJECT_BOUNDS, "fd %zu: %s", i, strerror(-r));
	return 0;
}

/*
 * One VM, one kernel: all its vCPU stats files share one layout. (Their ids
 * cannot tie them to the VM: a vCPU's id names the thread that created it,
 * "kvm-<tid>/vcpu-N", and the VM's the thread that created the VM.)
 */
static int check_consistent(struct apply *a)
{
	const struct vm *vm = a->peer->vm;
	const struct kvmstats_file *vcpu_ref = vm && vm->n_vcpus > 0 ? vm->vcpus[0].file : NULL;
	char rs[16];

	for (size_t i = 0; i < a->m->n_roles; i++) {
		const struct kvmstats_file *f = a->files[i];

		if (f->kind != KVMSTATS_KIND_VCPU)
			continue;
		if (!vcpu_ref)
			vcpu_ref = f;
		if (f->schema != vcpu_ref->schema)
			return refuse(a, HANDOFF_REJECT_FD,
				      "fd %zu (role \"%s\") has a different layout from the VM's "
				      "other vCPU stats fds",
				      i, role_str(a->m->roles[i], rs, sizeof(rs)));
	}
	return 0;
}

/* The same open file has the same id: kcmp only those. */
static bool held_as(const struct kvmstats_file *held, const struct kvmstats_file *f)
{
	return held && strcmp(held->id, f->id) == 0 && same_file(f->fd, held->fd);
}

static bool vm_holds(const struct vm *vm, const struct kvmstats_file *f)
{
	if (held_as(vm->vm_file, f))
		return true;
	for (size_t j = 0; j < vm->n_vcpus; j++)
		if (held_as(vm->vcpus[j].file, f))
			return true;
	return false;
}

/*
 * The same open files may already be held: through procfs discovery (that
 * VM is replaced, the hand-off's name wins) or by another connection
 * (refused).
 */
static int check_duplicates(struct apply *a)
{
	const struct collector *c = a->c;
	char rs[16];

	for (size_t i = 0; i < a->m->n_roles; i++) {
		const struct kvmstats_file *f = a->files[i];

		for (size_t k = 0; k < c->n_vms; k++) {
			struct vm *vm = c->vms[k];
			bool listed = false;

			if (!vm_holds(vm, f))
				continue;
			if (vm->source != VM_SOURCE_PROCFS)
				return refuse(a, HANDOFF_REJECT_FD,
					      "fd %zu (role \"%s\") is already registered for "
					      "another VM",
					      i, role_str(a->m->roles[i], rs, sizeof(rs)));
			for (size_t j = 0; j < a->n_replace; j++)
				listed = listed || a->replace[j] == vm;
			if (!listed)
				a->replace[a->n_replace++] = vm;
		}
	}
	return 0;
}

static bool replaced(const struct apply *a, const struct vm *vm)
{
	for (size_t j = 0; j < a->n_replace; j++)
		if (a->replace[j] == vm)
			return true;
	return false;
}

static int check_name(struct apply *a)
{
	const struct collector *c = a->c;

	for (size_t k = 0; k < c->n_vms; k++)
		if (strcmp(c->vms[k]->name, a->m->name) == 0 && !replaced(a, c->vms[k]))
			return refuse(a, HANDOFF_REJECT_NAME,
				      "\"vm.name\" is taken by another VM: pick another name");
	return 0;
}

static int vcpu_cmp(const void *x, const void *y)
{
	const struct vm_vcpu *a = x, *b = y;

	return (a->file->vcpu > b->file->vcpu) - (a->file->vcpu < b->file->vcpu);
}

/* The VM's vCPUs plus the message's, sorted by index, in a new array (NULL: none or ENOMEM). */
static struct vm_vcpu *merged_vcpus(const struct apply *a, size_t *ret_n)
{
	const struct vm *vm = a->peer->vm;
	size_t n = vm ? vm->n_vcpus : 0;
	struct vm_vcpu *v = calloc(n + a->m->n_roles + 1, sizeof(*v));

	if (!v)
		return NULL;
	if (n > 0)
		memcpy(v, vm->vcpus, n * sizeof(*v));
	for (size_t i = 0; i < a->m->n_roles; i++)
		if (a->files[i]->kind == KVMSTATS_KIND_VCPU) {
			v[n] = (struct vm_vcpu){ .file = a->files[i], .target_fd = -1 };
			vcpu_thread_init(&v[n++].thread, VCPU_THREAD_NOT_SEEN);
		}
	qsort(v, n, sizeof(*v), vcpu_cmp);
	*ret_n = n;
	return v;
}

static char *escaped(const char *s)
{
	struct outbuf b = { 0 };

	escape_puts(&b, s, ESCAPE_LABEL_VALUE);
	outbuf_putc(&b, '\0');
	if (b.failed) {
		outbuf_release(&b);
		return NULL;
	}
	return b.data;
}

/* The VM of a registration, with nothing of the message's files yet. */
static struct vm *new_vm(const struct apply *a)
{
	const struct handoff_msg *m = a->m;
	struct vm_identity id = { 0 };
	struct vm *vm = vm_new(VM_SOURCE_HANDOFF);

	if (!vm)
		return NULL;
	vm->pid = a->peer->pid;
	vm->conn_fd = a->peer->conn_fd;
	/* Best effort: what the VMM's command line says, as procfs discovery would. */
	if (a->peer->pid > 0)
		(void)vmname_from_pid(a->peer->pid, &id);
	vm->vmm = TAKE_PTR(id.vmm);
	vm->uuid = m->uuid ? strdup(m->uuid) : TAKE_PTR(id.uuid);
	vm_identity_release(&id);
	vm->name = strdup(m->name);
	vm->name_escaped = escaped(m->name);
	vm->label_names = calloc(m->n_labels + 1, sizeof(char *));
	vm->label_values_escaped = calloc(m->n_labels + 1, sizeof(char *));
	if (!vm->name || !vm->name_escaped || (m->uuid && !vm->uuid) || !vm->label_names ||
	    !vm->label_values_escaped)
		return vm_free(vm);
	for (; vm->n_labels < m->n_labels; vm->n_labels++) {
		vm->label_names[vm->n_labels] = strdup(m->labels[vm->n_labels].name);
		vm->label_values_escaped[vm->n_labels] = escaped(m->labels[vm->n_labels].value);
		if (!vm->label_names[vm->n_labels] || !vm->label_values_escaped[vm->n_labels]) {
			vm->n_labels++;
			return vm_free(vm);
		}
	}
	return vm;
}

static void remove_replaced(struct apply *a)
{
	for (size_t j = 0; j < a->n_replace; j++) {
		ssize_t k = collector_find_vm(a->c, a->replace[j]);

		if (k < 0)
			continue;
		log_info("VM replaced by its hand-off", "vm=%s pid=%d by=\"%s\"",
			 a->replace[j]->name, (int)a->replace[j]->pid,
			 a->m->kind == HANDOFF_MSG_REGISTER ? a->m->name : a->peer->vm->name);
		collector_remove_vm(a->c, (size_t)k);
	}
}

/* Adds the checked files (REGISTER or ADD). Consumes a->files on success. */
static int commit_files(struct apply *a)
{
	struct collector *c = a->c;
	_cleanup_free_ char *kvm_id = NULL;
	struct vm *vm = a->peer->vm, *fresh = NULL;
	struct kvmstats_file *vm_file = NULL;
	struct vm_vcpu *vcpus, *old;
	size_t n_vcpus = 0;
	int r = 0;

	for (size_t i = 0; i < a->m->n_roles; i++)
		if (a->files[i]->kind == KVMSTATS_KIND_VM)
			vm_file = a->files[i];
	/* kvm_id: the VM file's id, else (until it comes) the first vCPU's "kvm-<tid>". */
	if (vm_file || ((!vm || !vm->kvm_id) && a->m->n_roles > 0)) {
		const char *id = vm_file ? vm_file->id : a->files[0]->id;

		kvm_id = strndup(id, strcspn(id, "/"));
		if (!kvm_id)
			return -ENOMEM;
	}
	vcpus = merged_vcpus(a, &n_vcpus);
	if (!vcpus)
		return -ENOMEM;
	if (!vm && !(vm = fresh = new_vm(a))) {
		free(vcpus);
		return -ENOMEM;
	}

	pthread_mutex_lock(&c->lock);
	if (fresh && collector_reserve(c, 1) < 0) {
		pthread_mutex_unlock(&c->lock);
		free(vcpus);
		vm_free(fresh);
		return -ENOMEM;
	}
	remove_replaced(a);
	old = vm->vcpus;
	vm->vcpus = vcpus;
	vm->n_vcpus = n_vcpus;
	if (vm_file)
		vm->vm_file = vm_file;
	if (kvm_id) {
		free(vm->kvm_id);
		vm->kvm_id = TAKE_PTR(kvm_id);
	}
	memset(a->files, 0, sizeof(a->files));
	if (fresh) {
		/* Cannot fail: room reserved, name escaped and free (checked above). */
		r = collector_add_vm(c, fresh);
		a->peer->vm = r < 0 ? NULL : fresh;
	}
	pthread_mutex_unlock(&c->lock);
	free(old);
	return r;
}

static void commit_remove(struct apply *a)
{
	struct vm *vm = a->peer->vm;

	pthread_mutex_lock(&a->c->lock);
	for (size_t i = 0; i < a->m->n_roles; i++) {
		if (a->m->roles[i] == HANDOFF_ROLE_VM) {
			vm->vm_file = kvmstats_file_free(vm->vm_file);
			continue;
		}
		for (size_t j = 0; j < vm->n_vcpus; j++)
			if (vm->vcpus[j].file->vcpu == a->m->roles[i]) {
				vm_remove_vcpu(vm, j);
				break;
			}
	}
	kvmstats_schema_cache_prune(a->c->schemas);
	pthread_mutex_unlock(&a->c->lock);
}

int handoff_apply(struct collector *c, struct handoff_peer *peer, const struct handoff_msg *m,
		  int *fds, size_t n_fds, enum handoff_reject *ret_reason, char *why,
		  size_t why_len)
{
	struct apply a = {
		.c = c, .peer = peer, .m = m, .refusal = { .why = why, .why_len = why_len }
	};
	size_t i = 0;
	int r;

	if (m->kind == HANDOFF_MSG_THREADS) {
		for (i = 0; i < n_fds; i++)
			safe_close(fds[i]);
		return handoff_apply_threads(c, peer->vm, peer->pid, m, n_fds, ret_reason, why,
					     why_len);
	}
	r = check_roles(&a, n_fds);
	for (; r >= 0 && i < n_fds; i++)
		r = open_file(&a, i, fds[i]);
	/* Whatever was not opened is still ours to close. */
	for (; i < n_fds; i++)
		safe_close(fds[i]);
	if (r >= 0 && m->kind == HANDOFF_MSG_REMOVE) {
		commit_remove(&a);
	} else if (r >= 0) {
		r = check_consistent(&a);
		if (r >= 0)
			r = check_duplicates(&a);
		if (r >= 0 && m->kind == HANDOFF_MSG_REGISTER)
			r = check_name(&a);
		if (r >= 0)
			r = commit_files(&a);
	}
	if (r == -ENOMEM)
		refuse(&a, HANDOFF_REJECT_BOUNDS, "the exporter is out of memory");
	for (i = 0; i < ELEMENTSOF(a.files); i++)
		kvmstats_file_free(a.files[i]);
	if (r < 0)
		*ret_reason = a.refusal.reason;
	return r;
}

void handoff_peer_forget_locked(struct collector *c, struct handoff_peer *peer)
{
	ssize_t k;

	if (!peer->vm)
		return;
	k = collector_find_vm(c, peer->vm);
	if (k >= 0)
		collector_remove_vm(c, (size_t)k);
	peer->vm = NULL;
}

void handoff_peer_forget(struct collector *c, struct handoff_peer *peer)
{
	pthread_mutex_lock(&c->lock);
	handoff_peer_forget_locked(c, peer);
	pthread_mutex_unlock(&c->lock);
}
