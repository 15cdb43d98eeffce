/* SPDX-License-Identifier: MIT */
/*
 * The canary VM: real mode, one 4 KiB page of guest memory holding
 *
 *   0: mov cx, 16       b9 10 00
 *   3: out 0x80, al     e6 80        (a KVM_EXIT_IO each)
 *   5: loop 3           e2 fc
 *   7: hlt              f4           (KVM_EXIT_HLT: no in-kernel irqchip)
 *   8: jmp 0            eb f6
 *
 * A burst re-enters the vCPU until the HLT exit, so each burst is exactly
 * 16 I/O exits and one halt exit, and the next burst starts at the jmp.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sources/canary.h"
#include "macro.h"

#define GUEST_MEM_SIZE 0x1000

static const unsigned char guest_code[] = {
	0xb9, CANARY_IO_EXITS_PER_BURST,
	0x00,       /* mov cx, 16 */
	0xe6, 0x80, /* out 0x80, al */
	0xe2, 0xfc, /* loop 3 */
	0xf4,       /* hlt */
	0xeb, 0xf6, /* jmp 0 */
};

struct canary {
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	void *mem;
	struct kvm_run *run;
	size_t run_size;
};

struct canary *canary_free(struct canary *c)
{
	if (!c)
		return NULL;
	if (c->run)
		munmap(c->run, c->run_size);
	safe_close(c->vcpu_fd);
	safe_close(c->vm_fd);
	safe_close(c->kvm_fd);
	if (c->mem)
		munmap(c->mem, GUEST_MEM_SIZE);
	free(c);
	return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct canary *, canary_free)

static int step_failed(char *errbuf, size_t errlen, const char *step)
{
	int r = -errno;

	snprintf(errbuf, errlen, "canary VM: %s failed: %s", step, strerror(errno));
	return r;
}

int canary_new(struct canary **ret, char *errbuf, size_t errlen)
{
	_cleanup_(canary_freep) struct canary *c = calloc(1, sizeof(*c));
	struct kvm_userspace_memory_region region;
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = 0, .rflags = 0x2 };
	int size;

	if (!c)
		return -ENOMEM;
	c->kvm_fd = c->vm_fd = c->vcpu_fd = -1;

	c->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (c->kvm_fd < 0)
		return step_failed(errbuf, errlen, "opening /dev/kvm");
	c->vm_fd = ioctl(c->kvm_fd, KVM_CREATE_VM, 0);
	if (c->vm_fd < 0)
		return step_failed(errbuf, errlen, "KVM_CREATE_VM");

	c->mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		      0);
	if (c->mem == MAP_FAILED) {
		c->mem = NULL;
		return step_failed(errbuf, errlen, "allocating guest memory");
	}
	memcpy(c->mem, guest_code, sizeof(guest_code));
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = GUEST_MEM_SIZE,
		.userspace_addr = (uintptr_t)c->mem,
	};
	if (ioctl(c->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return step_failed(errbuf, errlen, "KVM_SET_USER_MEMORY_REGION");

	c->vcpu_fd = ioctl(c->vm_fd, KVM_CREATE_VCPU, 0);
	if (c->vcpu_fd < 0)
		return step_failed(errbuf, errlen, "KVM_CREATE_VCPU");
	size = ioctl(c->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size <= 0)
		return step_failed(errbuf, errlen, "KVM_GET_VCPU_MMAP_SIZE");
	c->run_size = (size_t)size;
	c->run = mmap(NULL, c->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->vcpu_fd, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		return step_failed(errbuf, errlen, "mapping kvm_run");
	}

	if (ioctl(c->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return step_failed(errbuf, errlen, "KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(c->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return step_failed(errbuf, errlen, "KVM_SET_SREGS");
	if (ioctl(c->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return step_failed(errbuf, errlen, "KVM_SET_REGS");

	*ret = TAKE_PTR(c);
	return 0;
}

int canary_burst(struct canary *c)
{
	unsigned io_exits = 0;

	/* Bounded: a guest that misbehaves must not keep the exporter busy. */
	for (unsigned i = 0; i < 4 * CANARY_IO_EXITS_PER_BURST; i++) {
		if (ioctl(c->vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		switch (c->run->exit_reason) {
		case KVM_EXIT_IO:
			io_exits++;
			break;
		case KVM_EXIT_HLT:
			return io_exits == CANARY_IO_EXITS_PER_BURST ? 0 : -EPROTO;
		default:
			return -EPROTO;
		}
	}
	return -EPROTO;
}

int canary_stats_fds(struct canary *c, int *ret_vm_fd, int *ret_vcpu_fd)
{
	int vm_fd, vcpu_fd;

	vm_fd = ioctl(c->vm_fd, KVM_GET_STATS_FD, 0);
	if (vm_fd < 0)
		return -errno;
	vcpu_fd = ioctl(c->vcpu_fd, KVM_GET_STATS_FD, 0);
	if (vcpu_fd < 0) {
		int r = -errno;

		close(vm_fd);
		return r;
	}
	*ret_vm_fd = vm_fd;
	*ret_vcpu_fd = vcpu_fd;
	return 0;
}
