/* SPDX-License-Identifier: MIT */
/*
 * shim_vmm: a tiny VMM, run under the LD_PRELOAD shim by test_qemu_shim.py
 * --mode lifecycle, doing what QEMU never does: several VMs in one process,
 * one with more vCPUs than fit in one hand-off message, VMs destroyed while
 * the process lives on, fd numbers reused, fork() without exec. It also
 * checks that every ioctl returns exactly what the raw system call returns,
 * errno included. Commands on stdin, one per line; each answers one line.
 *
 *   setup       errno checks; VM A with 2 vCPUs, VM B with 70
 *   close-b     close B's vCPU fds and VM fd (B is destroyed)
 *   close-a-vm  close A's VM fd only (A lives on through its vCPU fds)
 *   create-c    VM C with 1 vCPU (likely on a number A or B had)
 *   fork        fork; the child reports the stats fds and sockets it holds
 *   exit
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define B_VCPUS 70

static int kvm = -1;

static void die(const char *what)
{
	printf("error %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ioctl() through the shim against the raw system call: same result, same errno. */
static void same_as_syscall(int fd, unsigned long request, unsigned long arg, const char *what)
{
	long want;
	int want_errno, got, got_errno;

	errno = EDOM;
	want = syscall(SYS_ioctl, fd, request, arg);
	want_errno = errno;
	errno = EDOM;
	got = ioctl(fd, request, arg);
	got_errno = errno;
	if (got != want || got_errno != want_errno) {
		printf("error %s: ioctl gave %d errno %d, the system call %ld errno %d\n", what,
		       got, got_errno, want, want_errno);
		exit(1);
	}
}

static int create_vm(int vcpus, int *vcpu_fds)
{
	int vm;

	errno = EDOM;
	vm = ioctl(kvm, KVM_CREATE_VM, 0UL);
	if (vm < 0)
		die("KVM_CREATE_VM");
	if (errno != EDOM) {
		printf("error KVM_CREATE_VM: errno changed to %d on success\n", errno);
		exit(1);
	}
	for (int i = 0; i < vcpus; i++) {
		errno = EDOM;
		vcpu_fds[i] = ioctl(vm, KVM_CREATE_VCPU, (unsigned long)i);
		if (vcpu_fds[i] < 0)
			die("KVM_CREATE_VCPU");
		if (errno != EDOM) {
			printf("error KVM_CREATE_VCPU: errno changed to %d on success\n", errno);
			exit(1);
		}
	}
	return vm;
}

static int count_links(const char *prefix)
{
	char path[64], link[128];
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;
		link[len] = '\0';
		n += strncmp(link, prefix, strlen(prefix)) == 0;
	}
	return n;
}

int main(void)
{
	int a_vcpus[2], b_vcpus[B_VCPUS], c_vcpu, a = -1, b = -1, c, p[2];
	char line[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, "setup") == 0) {
			kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
			if (kvm < 0)
				die("/dev/kvm");
			if (pipe2(p, O_CLOEXEC) < 0)
				die("pipe");
			int n = 0;
			same_as_syscall(p[0], FIONREAD, (unsigned long)&n, "FIONREAD on a pipe");
			same_as_syscall(-1, FIONREAD, (unsigned long)&n, "FIONREAD on fd -1");
			same_as_syscall(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY,
					"CHECK_EXTENSION");
			/* Failing creates: the shim must change nothing. */
			same_as_syscall(p[0], KVM_CREATE_VM, 0, "KVM_CREATE_VM on a pipe");
			same_as_syscall(kvm, KVM_CREATE_VM, 0xdead, "KVM_CREATE_VM, bad type");
			same_as_syscall(kvm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU on /dev/kvm");
			a = create_vm(2, a_vcpus);
			same_as_syscall(a, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU, id taken");
			b = create_vm(B_VCPUS, b_vcpus);
			printf("ok A=%d B=%d\n", a, b);
		} else if (strcmp(line, "close-b") == 0) {
			for (int i = 0; i < B_VCPUS; i++)
				close(b_vcpus[i]);
			close(b);
			printf("ok\n");
		} else if (strcmp(line, "close-a-vm") == 0) {
			close(a);
			printf("ok\n");
		} else if (strcmp(line, "create-c") == 0) {
			c = create_vm(1, &c_vcpu);
			printf("ok C=%d vcpu=%d\n", c, c_vcpu);
		} else if (strcmp(line, "fork") == 0) {
			pid_t pid = fork();
			int status;

			if (pid < 0)
				die("fork");
			if (pid == 0) {
				/* What the child holds of the shim's: nothing. */
				usleep(300000);
				printf("ok child_stats_fds=%d child_sockets=%d\n",
				       count_links("anon_inode:kvm-vm-stats") +
					       count_links("anon_inode:kvm-vcpu-stats"),
				       count_links("socket:"));
				_exit(0);
			}
			if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
			    WEXITSTATUS(status) != 0)
				die("child");
		} else if (strcmp(line, "exit") == 0) {
			printf("ok\n");
			return 0;
		} else {
			printf("error unknown command %s\n", line);
			return 1;
		}
	}
	return 0;
}
