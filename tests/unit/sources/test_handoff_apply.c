/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for applying hand-off messages (sources/handoff_apply.c) to a
 * collector: messages made by the protocol's own builder and parsed by the
 * exporter's parser, fds of the right and the wrong kind.
 *
 *   test_handoff_apply          refusals that need no KVM (memfds, pipes,
 *                               miscounted fds): every fd consumed, nothing
 *                               changed
 *   test_handoff_apply --kvm    with real stats fds of a VM made here
 *                               (KVM_CREATE_VM, KVM_GET_STATS_FD): register,
 *                               add, remove, refusals, taking over a VM that
 *                               procfs found, forgetting the peer. Exits 77
 *                               without /dev/kvm (the kvm suite then runs in
 *                               the nested host).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector.h"
#include "proto/handoff.h"
#include "sources/handoff_apply.h"

struct fixture {
	struct collector c;
	struct handoff_peer peer;
	int sock_fd; /* stands for the peer's connection */
	int kvm_fd, vm_fd, vcpu_fds[2];
	int vm_stats, vcpu_stats[2]; /* ours; each message gets dups */
};

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || collector_init(&f->c, false) < 0)
		return -1;
	f->sock_fd = memfd_create("peer-connection", MFD_CLOEXEC);
	f->peer = (struct handoff_peer){ .pid = getpid(), .uid = getuid(), .conn_fd = f->sock_fd };
	f->kvm_fd = f->vm_fd = f->vm_stats = -1;
	f->vcpu_fds[0] = f->vcpu_fds[1] = f->vcpu_stats[0] = f->vcpu_stats[1] = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	collector_release(&f->c);
	for (int i = 0; i < 2; i++) {
		close(f->vcpu_stats[i]);
		close(f->vcpu_fds[i]);
	}
	close(f->vm_stats);
	close(f->vm_fd);
	close(f->kvm_fd);
	close(f->sock_fd);
	free(f);
	return 0;
}

/* A VM with two vCPUs and their stats fds, or exit 77 without KVM. */
static void make_vm(struct fixture *f)
{
	f->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (f->kvm_fd < 0) {
		printf("SKIP: /dev/kvm: %s (the kvm suite runs in the nested KVM host)\n",
		       strerror(errno));
		exit(77);
	}
	f->vm_fd = ioctl(f->kvm_fd, KVM_CREATE_VM, 0);
	assert_true(f->vm_fd >= 0);
	f->vm_stats = ioctl(f->vm_fd, KVM_GET_STATS_FD, NULL);
	if (f->vm_stats < 0 && errno == ENOTTY) {
		printf("SKIP: this kernel has no KVM_GET_STATS_FD (Linux 5.14+)\n");
		exit(77);
	}
	assert_true(f->vm_stats >= 0);
	for (int i = 0; i < 2; i++) {
		f->vcpu_fds[i] = ioctl(f->vm_fd, KVM_CREATE_VCPU, i);
		assert_true(f->vcpu_fds[i] >= 0);
		f->vcpu_stats[i] = ioctl(f->vcpu_fds[i], KVM_GET_STATS_FD, NULL);
		assert_true(f->vcpu_stats[i] >= 0);
	}
}

static int dup_fd(int fd)
{
	int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);

	assert_true(r >= 0);
	return r;
}

/* Parses what the shim would send. */
static void parse(const char *json, int n, bool registered, struct handoff_msg *m)
{
	enum handoff_reject reason;
	char why[256];

	assert_true(n > 0);
	if (handoff_msg_parse(json, (size_t)n, registered, m, &reason, why, sizeof(why)) < 0)
		fail_msg("the parser refused %s: %s", json, why);
}

/*
 * Applies a message of the given kind and roles with fds; returns the
 * result, the reason in *ret_reason and the sentence in why.
 */
static int apply(struct fixture *f, enum handoff_msg_kind kind, const char *name, const int *roles,
		 size_t n_roles, int *fds, size_t n_fds, enum handoff_reject *ret_reason, char *why,
		 size_t why_len)
{
	char json[4096];
	struct handoff_msg m;
	int n, r;

	switch (kind) {
	case HANDOFF_MSG_REGISTER:
		n = handoff_build_register(json, sizeof(json), name, NULL, roles, n_roles);
		break;
	case HANDOFF_MSG_ADD:
		n = handoff_build_add(json, sizeof(json), roles, n_roles);
		break;
	default: {
		char role[16];

		handoff_role_format(roles[0], role, sizeof(role));
		n = snprintf(json, sizeof(json), "{\"remove\":[\"%s\"]}", role);
	}
	}
	parse(json, n, kind != HANDOFF_MSG_REGISTER, &m);
	r = handoff_apply(&f->c, &f->peer, &m, fds, n_fds, ret_reason, why, why_len);
	handoff_msg_release(&m);
	return r;
}

/* reason is a pointer: read after the call that fills it (argument order is unspecified). */
static void assert_refused(int r, const enum handoff_reject *reason, enum handoff_reject want,
			   const char *why, const char *words)
{
	assert_int_equal(r, -EINVAL);
	assert_int_equal(*reason, want);
	if (!strstr(why, words))
		fail_msg("\"%s\" does not say \"%s\"", why, words);
}

/* ---- without KVM ------------------------------------------------------------------------ */

static void test_refused_without_kvm(void **state)
{
	struct fixture *f = *state;
	const int roles[] = { HANDOFF_ROLE_VM, 0 };
	enum handoff_reject reason;
	int fds[2], pipe_fds[2];
	char why[256];

	/* One fd for two roles: refused, the fd closed. */
	fds[0] = memfd_create("x", MFD_CLOEXEC);
	assert_refused(apply(f, HANDOFF_MSG_REGISTER, "web", roles, 2, fds, 1, &reason, why,
			     sizeof(why)),
		       &reason, HANDOFF_REJECT_FD, why, "1 fds are attached for 2 roles");
	assert_false(fd_open(fds[0]));

	/* A memfd and the read end of a pipe that nobody writes: refused without reading. */
	fds[0] = memfd_create("x", MFD_CLOEXEC);
	assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
	fds[1] = pipe_fds[0];
	assert_refused(apply(f, HANDOFF_MSG_REGISTER, "web", roles, 2, fds, 2, &reason, why,
			     sizeof(why)),
		       &reason, HANDOFF_REJECT_FD, why, "fd 0 (role \"vm\") is not a KVM stats fd");
	assert_false(fd_open(fds[0]));
	assert_false(fd_open(fds[1]));
	close(pipe_fds[1]);

	assert_int_equal(f->c.n_vms, 0);
	assert_null(f->peer.vm);
}

/* ---- with KVM --------------------------------------------------------------------------- */

static void test_register_add_remove(void **state)
{
	struct fixture *f = *state;
	const int vm_and_0[] = { HANDOFF_ROLE_VM, 0 }, just_1[] = { 1 }, just_0[] = { 0 };
	enum handoff_reject reason;
	char why[256], id[32];
	int fds[2];
	struct vm *vm;

	make_vm(f);
	fds[0] = dup_fd(f->vm_stats);
	fds[1] = dup_fd(f->vcpu_stats[0]);
	assert_int_equal(apply(f, HANDOFF_MSG_REGISTER, "web \"1\"", vm_and_0, 2, fds, 2, &reason,
			       why, sizeof(why)),
			 0);
	vm = f->peer.vm;
	assert_non_null(vm);
	assert_int_equal(f->c.n_vms, 1);
	assert_ptr_equal(f->c.vms[0], vm);
	assert_string_equal(vm->name, "web \"1\"");
	assert_string_equal(vm->name_escaped, "web \\\"1\\\"");
	assert_int_equal(vm->source, VM_SOURCE_HANDOFF);
	assert_int_equal(vm->conn_fd, f->sock_fd);
	assert_int_equal(vm_n_files(vm), 2);
	snprintf(id, sizeof(id), "kvm-%d", (int)getpid());
	assert_string_equal(vm->kvm_id, id);

	/* A role the VM has: refused, the fd closed, nothing changed. */
	fds[0] = dup_fd(f->vcpu_stats[0]);
	assert_refused(apply(f, HANDOFF_MSG_ADD, NULL, just_0, 1, fds, 1, &reason, why,
			     sizeof(why)),
		       &reason, HANDOFF_REJECT_ROLE, why, "already has role \"vcpu:0\"");
	assert_false(fd_open(fds[0]));

	/* vCPU 0's stats fd sent as vCPU 1: the link says which it is. */
	fds[0] = dup_fd(f->vcpu_stats[0]);
	assert_refused(apply(f, HANDOFF_MSG_ADD, NULL, just_1, 1, fds, 1, &reason, why,
			     sizeof(why)),
		       &reason, HANDOFF_REJECT_FD, why, "is the stats fd of vCPU 0");
	assert_int_equal(vm_n_files(vm), 2);

	/* The VM fd itself instead of its stats fd. */
	fds[0] = dup_fd(f->vcpu_fds[1]);
	assert_refused(apply(f, HANDOFF_MSG_ADD, NULL, just_1, 1, fds, 1, &reason, why,
			     sizeof(why)),
		       &reason, HANDOFF_REJECT_FD, why, "is a KVM vCPU fd, not its stats fd");

	fds[0] = dup_fd(f->vcpu_stats[1]);
	assert_int_equal(apply(f, HANDOFF_MSG_ADD, NULL, just_1, 1, fds, 1, &reason, why,
			       sizeof(why)),
			 0);
	assert_int_equal(vm->n_vcpus, 2);

	assert_int_equal(apply(f, HANDOFF_MSG_REMOVE, NULL, just_0, 1, NULL, 0, &reason, why,
			       sizeof(why)),
			 0);
	assert_int_equal(vm->n_vcpus, 1);
	assert_int_equal(vm->vcpus[0].file->vcpu, 1);
	assert_refused(apply(f, HANDOFF_MSG_REMOVE, NULL, just_0, 1, NULL, 0, &reason, why,
			     sizeof(why)),
		       &reason, HANDOFF_REJECT_ROLE, why, "has no role \"vcpu:0\"");

	handoff_peer_forget(&f->c, &f->peer);
	assert_int_equal(f->c.n_vms, 0);
	assert_null(f->peer.vm);
}

static void test_name_taken(void **state)
{
	struct fixture *f = *state;
	const int vm_role[] = { HANDOFF_ROLE_VM }, vcpu_role[] = { 0 };
	struct handoff_peer first;
	enum handoff_reject reason;
	char why[256];
	int fd;

	make_vm(f);
	fd = dup_fd(f->vm_stats);
	assert_int_equal(apply(f, HANDOFF_MSG_REGISTER, "web", vm_role, 1, &fd, 1, &reason, why,
			       sizeof(why)),
			 0);
	first = f->peer;
	/* Another connection wants the same name: hand-off names are the peer's word, not ours. */
	f->peer = (struct handoff_peer){ .pid = getpid(), .uid = getuid(), .conn_fd = -1 };
	fd = dup_fd(f->vcpu_stats[0]);
	assert_refused(apply(f, HANDOFF_MSG_REGISTER, "web", vcpu_role, 1, &fd, 1, &reason, why,
			     sizeof(why)),
		       &reason, HANDOFF_REJECT_NAME, why, "is taken by another VM");
	assert_false(fd_open(fd));
	assert_int_equal(f->c.n_vms, 1);
	handoff_peer_forget(&f->c, &first);
	assert_int_equal(f->c.n_vms, 0);
}

/* A VM that procfs found is the same VM when its VMM hands it off: it moves over. */
static void test_takes_over_procfs(void **state)
{
	struct fixture *f = *state;
	const int vm_role[] = { HANDOFF_ROLE_VM };
	struct kvmstats_file *file = NULL;
	struct kvmstats_error err;
	enum handoff_reject reason;
	struct vm *found;
	char why[256];
	int fd;

	make_vm(f);
	found = vm_new(VM_SOURCE_PROCFS);
	assert_non_null(found);
	found->name = strdup("pid-found");
	assert_int_equal(kvmstats_file_open_fd(dup_fd(f->vm_stats), &file, &err), 0);
	assert_int_equal(collector_prepare_file(&f->c, file), 0);
	found->vm_file = file;
	pthread_mutex_lock(&f->c.lock);
	assert_int_equal(collector_add_vm(&f->c, found), 0);
	pthread_mutex_unlock(&f->c.lock);

	fd = dup_fd(f->vm_stats);
	assert_int_equal(apply(f, HANDOFF_MSG_REGISTER, "web", vm_role, 1, &fd, 1, &reason, why,
			       sizeof(why)),
			 0);
	assert_int_equal(f->c.n_vms, 1);
	assert_string_equal(f->c.vms[0]->name, "web");
	assert_int_equal(f->c.vms[0]->source, VM_SOURCE_HANDOFF);
	handoff_peer_forget(&f->c, &f->peer);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest plain[] = {
		cmocka_unit_test_setup_teardown(test_refused_without_kvm, setup, teardown),
	};
	const struct CMUnitTest kvm[] = {
		cmocka_unit_test_setup_teardown(test_register_add_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_takes_over_procfs, setup, teardown),
	};

	if (argc > 1 && strcmp(argv[1], "--kvm") == 0)
		return cmocka_run_group_tests(kvm, NULL, NULL);
	return cmocka_run_group_tests(plain, NULL, NULL);
}
