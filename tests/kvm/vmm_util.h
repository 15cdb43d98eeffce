/* SPDX-License-Identifier: MIT */
/*
 * Pieces the test VMMs share (tests/kvm/kvmtest_vmm.c, tests/tools/kvmfleet.c):
 * a vCPU set up to run real-mode code, and a datagram sent with fds. Only
 * <linux/kvm.h> and libc, as those VMMs are independent of the project's code.
 */
#pragma once

#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define VMM_FDS_PER_MSG 64 /* the hand-off protocol's bound */

/* Real mode at address rip with CX = rcx. 0, or -1 with errno from the failing ioctl. */
static inline int vmm_vcpu_real_mode(int vcpu_fd, uint64_t rip, uint64_t rcx)
{
	struct kvm_regs regs = { .rip = rip, .rflags = 2, .rcx = rcx };
	struct kvm_sregs sregs;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -1;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -1;
	return 0;
}

/* One datagram of len bytes with n_fds fds (at most VMM_FDS_PER_MSG) as SCM_RIGHTS. */
static inline int vmm_send_fds(int sock, const void *msg, size_t len, const int *fds, size_t n_fds)
{
	char control[CMSG_SPACE(VMM_FDS_PER_MSG * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n_fds > VMM_FDS_PER_MSG) {
		errno = E2BIG;
		return -1;
	}
	if (n_fds > 0) {
		struct cmsghdr *cm;

		mh.msg_control = control;
		mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}
