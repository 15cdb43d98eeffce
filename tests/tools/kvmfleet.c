/* SPDX-License-Identifier: MIT */
/*
 * kvmfleet: a fleet of real KVM VMs spread over processes, as a busy host
 * has them, for the exporter's benchmarks and robustness runs.
 *
 *   kvmfleet --vms N --vcpus M [--vms-per-process K] [--guest halt|run]
 *            [--run-interval MS] [--handoff PATH [--name PREFIX]]
 *            [--idle P [--idle-files F]] [--pids-file PATH]
 *            [--churn C [--churn-hz HZ]]
 *
 * Each VMM process (a fork of this one) makes K VMs of M vCPUs and a stats fd
 * (KVM_GET_STATS_FD) for every VM and vCPU, and keeps them open: the procfs
 * source finds them in /proc/PID/fd. With --handoff each VM is also handed to
 * the exporter over its hand-off socket (docs/handoff.md), one connection per
 * VM kept open for the VM's life, with the messages built by the LD_PRELOAD
 * shim's own code (exporter/proto/handoff.c), i.e. what the shim sends.
 *
 * Guest code (real mode at 0x1000):
 *   halt: every vCPU runs `out 0x11, al; hlt` once: one I/O exit and one halt
 *         exit, then is never run again (a halted VM).
 *   run:  every vCPU loops on `out 0x11, al`; each VMM process wakes every
 *         --run-interval ms (default 100) and runs each of its vCPUs to its
 *         next exit, so counters keep moving at a bounded CPU cost.
 *
 * --idle P adds P ordinary processes that each hold F (default 16) open
 * files and sleep: what a procfs rescan has to walk past on a busy host.
 *
 * --churn C: once ready and given a line on stdin, replaces one VMM process
 * after another (SIGKILL: its VMs are destroyed; a new process makes new
 * ones), C times, at HZ replacements per second (default 10), then prints
 * "churned C".
 *
 * The parent prints "ready vmms=N vms=N vcpus=N idle=N" when everything
 * exists (and writes the VMM pids, one per line, to --pids-file, and every
 * VMM pid it ever made, churned ones too, to the same path + ".all"), then
 * waits until SIGTERM, SIGINT or EOF on stdin, and kills every child.
 * Exit status 77 when /dev/kvm is missing or refuses KVM_GET_STATS_FD.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/handoff.h"
#include "vmm_util.h"

#define GUEST_MEM_SIZE 0x10000u
#define GUEST_CODE_GPA 0x1000u
#define MAX_VCPUS      256
#define FDS_PER_MSG    VMM_FDS_PER_MSG
#define EXIT_SKIP      77

static const uint8_t guest_halt[] = { 0xfa, 0xe6, 0x11, 0xf4 };      /* cli; out; hlt */
static const uint8_t guest_run[] = { 0xfa, 0xe6, 0x11, 0xeb, 0xfc }; /* cli; 1: out; jmp 1b */

struct opts {
	unsigned vms, vcpus, per_process, run_interval_ms;
	unsigned idle, idle_files, churn, churn_hz;
	bool run;
	const char *handoff, *name, *pids_file;
};

struct vm {
	int vm_fd, stats_fd;
	int vcpu_fd[MAX_VCPUS], vcpu_stats_fd[MAX_VCPUS];
	struct kvm_run *run[MAX_VCPUS];
	int handoff_sock;
};

static void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int status, const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fprintf(stderr, "kvmfleet[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(e));
	exit(status);
}

/* Ends every child (they die of SIGTERM; the parent ignores it). */
static void kill_children(void)
{
	signal(SIGTERM, SIG_IGN);
	kill(0, SIGTERM);
}

/* Sends one hand-off message with its fds and insists on {"ok":true}. */
static void handoff_send(int sock, const char *msg, size_t len, const int *fds, size_t n_fds)
{
	char answer[4096], why[256];
	ssize_t n;

	if (vmm_send_fds(sock, msg, len, fds, n_fds) < 0)
		die(1, "hand-off sendmsg");
	n = recv(sock, answer, sizeof(answer), 0);
	if (n < 0)
		die(1, "hand-off: no answer");
	if (handoff_parse_answer(answer, (size_t)n, why, sizeof(why)) != 1) {
		errno = EPROTO;
		die(1, "hand-off refused (%s)", why);
	}
}

/* One connection per VM, as the shim does: register with the VM fd, then vCPU fds by 64. */
static void handoff_vm(struct vm *vm, const struct opts *o, unsigned global_index)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int roles[FDS_PER_MSG], fds[FDS_PER_MSG];
	char name[256], msg[8192];
	bool registered = false;
	size_t n = 0;
	int len;

	vm->handoff_sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (vm->handoff_sock < 0)
		die(1, "socket");
	if (strlen(o->handoff) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		die(2, "--handoff %s", o->handoff);
	}
	strcpy(sa.sun_path, o->handoff);
	if (connect(vm->handoff_sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die(1, "connect %s", o->handoff);
	snprintf(name, sizeof(name), "%s-%u", o->name, global_index);

	roles[n] = HANDOFF_ROLE_VM;
	fds[n++] = vm->stats_fd;
	for (unsigned i = 0; i <= o->vcpus; i++) {
		if (n == FDS_PER_MSG || (i == o->vcpus && n > 0)) {
			if (!registered)
				len = handoff_build_register(msg, sizeof(msg), name, NULL, roles,
							     n);
			else
				len = handoff_build_add(msg, sizeof(msg), roles, n);
			if (len < 0) {
				errno = -len;
				die(1, "hand-off message");
			}
			handoff_send(vm->handoff_sock, msg, (size_t)len, fds, n);
			registered = true;
			n = 0;
		}
		if (i < o->vcpus) {
			roles[n] = (int)i;
			fds[n++] = vm->vcpu_stats_fd[i];
		}
	}
}

static void setup_vm(struct vm *vm, const struct opts *o, int kvm_fd, size_t run_size)
{
	const uint8_t *code = o->run ? guest_run : guest_halt;
	size_t code_len = o->run ? sizeof(guest_run) : sizeof(guest_halt);
	struct kvm_userspace_memory_region region;
	uint8_t *mem;

	vm->handoff_sock = -1;
	vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		die(1, "KVM_CREATE_VM");
	(void)ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die(1, "mmap guest memory");
	memcpy(mem + GUEST_CODE_GPA, code, code_len);
	region = (struct kvm_userspace_memory_region){
		.memory_size = GUEST_MEM_SIZE,
		.userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die(1, "KVM_SET_USER_MEMORY_REGION");
	vm->stats_fd = ioctl(vm->vm_fd, KVM_GET_STATS_FD, NULL);
	if (vm->stats_fd < 0)
		die(errno == EINVAL || errno == ENOTTY ? EXIT_SKIP : 1, "KVM_GET_STATS_FD (VM)");

	for (unsigned i = 0; i < o->vcpus; i++) {
		vm->vcpu_fd[i] = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (vm->vcpu_fd[i] < 0)
			die(1, "KVM_CREATE_VCPU %u", i);
		vm->run[i] =
			mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd[i], 0);
		if (vm->run[i] == MAP_FAILED)
			die(1, "mmap kvm_run");
		if (vmm_vcpu_real_mode(vm->vcpu_fd[i], GUEST_CODE_GPA, 0) < 0)
			die(1, "KVM_GET/SET_SREGS/REGS");
		vm->vcpu_stats_fd[i] = ioctl(vm->vcpu_fd[i], KVM_GET_STATS_FD, NULL);
		if (vm->vcpu_stats_fd[i] < 0)
			die(1, "KVM_GET_STATS_FD (vCPU %u)", i);
	}
}

/* Runs a vCPU to its next exit, which must be the guest's own (I/O or halt). */
static void run_vcpu(struct vm *vm, unsigned i)
{
	while (ioctl(vm->vcpu_fd[i], KVM_RUN, 0) < 0) {
		if (errno != EINTR && errno != EAGAIN)
			die(1, "KVM_RUN");
	}
	if (vm->run[i]->exit_reason != KVM_EXIT_IO && vm->run[i]->exit_reason != KVM_EXIT_HLT) {
		errno = EPROTO;
		die(1, "unexpected exit reason %u", vm->run[i]->exit_reason);
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A VMM process: makes its VMs, reports ready on ready_fd, then runs or idles until killed. */
static void __attribute__((noreturn))
vmm_main(const struct opts *o, unsigned first_vm, unsigned n_vms, int ready_fd)
{
	struct vm *vms = calloc(n_vms, sizeof(*vms));
	int kvm_fd, run_size;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (!vms)
		die(1, "calloc");
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		die(EXIT_SKIP, "open /dev/kvm");
	run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		die(1, "KVM_GET_VCPU_MMAP_SIZE");
	for (unsigned v = 0; v < n_vms; v++) {
		setup_vm(&vms[v], o, kvm_fd, (size_t)run_size);
		/* Halted guests exit twice (out, hlt) and are never run again. */
		if (!o->run)
			for (unsigned i = 0; i < o->vcpus; i++) {
				run_vcpu(&vms[v], i);
				run_vcpu(&vms[v], i);
			}
		if (o->handoff)
			handoff_vm(&vms[v], o, first_vm + v);
	}
	if (write(ready_fd, "r", 1) != 1)
		die(1, "write ready");
	close(ready_fd);

	for (;;) {
		if (!o->run) {
			pause();
			continue;
		}
		uint64_t next = now_ms() + o->run_interval_ms;
		for (unsigned v = 0; v < n_vms; v++)
			for (unsigned i = 0; i < o->vcpus; i++)
				run_vcpu(&vms[v], i);
		uint64_t t = now_ms();
		if (t < next)
			usleep((useconds_t)((next - t) * 1000u));
	}
}

/* An ordinary process with open files, asleep: what a rescan walks past. */
static void __attribute__((noreturn)) idle_main(unsigned n_files, int ready_fd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (unsigned i = 0; i < n_files; i++)
		if (open(i % 2 ? "/dev/null" : "/proc/self/stat", O_RDONLY | O_CLOEXEC) < 0)
			die(1, "open");
	if (write(ready_fd, "r", 1) != 1)
		die(1, "write ready");
	close(ready_fd);
	for (;;)
		pause();
}

static FILE *all_pids; /* --pids-file + ".all", or NULL */

static pid_t spawn(const struct opts *o, bool vmm, unsigned first_vm, unsigned n_vms, int ready_fd,
		   int ready_rd)
{
	pid_t pid;

	if (all_pids)
		fflush(all_pids); /* nothing buffered for the child to write again */
	pid = fork();

	if (pid < 0)
		die(1, "fork");
	if (pid == 0) {
		sigset_t all;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		close(ready_rd);
		if (vmm)
			vmm_main(o, first_vm, n_vms, ready_fd);
		idle_main(o->idle_files, ready_fd);
	}
	if (vmm && all_pids && (fprintf(all_pids, "%d\n", (int)pid) < 0 || fflush(all_pids) != 0))
		die(1, "write %s.all", o->pids_file);
	return pid;
}

/* Waits for n readiness bytes; a child that exits first fails the fleet with its status. */
static void wait_ready(int ready_rd, unsigned n)
{
	while (n > 0) {
		char buf[256];
		struct pollfd pfd = { .fd = ready_rd, .events = POLLIN };
		int st;
		pid_t dead;

		if (poll(&pfd, 1, 200) > 0) {
			ssize_t r = read(ready_rd, buf, n < sizeof(buf) ? n : sizeof(buf));
			if (r > 0)
				n -= (unsigned)r;
		}
		dead = waitpid(-1, &st, WNOHANG);
		if (dead > 0) {
			int code = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
			fprintf(stderr, "kvmfleet: process %d failed before it was ready\n",
				(int)dead);
			kill_children();
			exit(code ? code : 1);
		}
	}
}

static unsigned parse_uint(const char *s, const char *flag, unsigned min, unsigned max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "kvmfleet: %s wants an integer in [%u, %u], not '%s'\n", flag, min,
			max, s);
		exit(2);
	}
	return (unsigned)v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "vms", required_argument, NULL, 'n' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "vms-per-process", required_argument, NULL, 'k' },
		{ "guest", required_argument, NULL, 'g' },
		{ "run-interval", required_argument, NULL, 'r' },
		{ "handoff", required_argument, NULL, 'H' },
		{ "name", required_argument, NULL, 'N' },
		{ "idle", required_argument, NULL, 'i' },
		{ "idle-files", required_argument, NULL, 'f' },
		{ "pids-file", required_argument, NULL, 'p' },
		{ "churn", required_argument, NULL, 'C' },
		{ "churn-hz", required_argument, NULL, 'z' },
		{ 0 },
	};
	int c;

	*o = (struct opts){ .vms = 1,
			    .vcpus = 1,
			    .per_process = 1,
			    .run_interval_ms = 100,
			    .idle_files = 16,
			    .churn_hz = 10,
			    .name = "fleet" };
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->vms = parse_uint(optarg, "--vms", 0, 100000);
			break;
		case 'c':
			o->vcpus = parse_uint(optarg, "--vcpus", 1, MAX_VCPUS);
			break;
		case 'k':
			o->per_process = parse_uint(optarg, "--vms-per-process", 1, 1000);
			break;
		case 'g':
			if (strcmp(optarg, "halt") && strcmp(optarg, "run")) {
				fprintf(stderr, "kvmfleet: --guest is halt or run, not '%s'\n",
					optarg);
				exit(2);
			}
			o->run = strcmp(optarg, "run") == 0;
			break;
		case 'r':
			o->run_interval_ms = parse_uint(optarg, "--run-interval", 1, 60000);
			break;
		case 'H':
			o->handoff = optarg;
			break;
		case 'N':
			o->name = optarg;
			break;
		case 'i':
			o->idle = parse_uint(optarg, "--idle", 0, 100000);
			break;
		case 'f':
			o->idle_files = parse_uint(optarg, "--idle-files", 0, 1000);
			break;
		case 'p':
			o->pids_file = optarg;
			break;
		case 'C':
			o->churn = parse_uint(optarg, "--churn", 0, 10000000);
			break;
		case 'z':
			o->churn_hz = parse_uint(optarg, "--churn-hz", 1, 1000);
			break;
		default:
			fprintf(stderr, "kvmfleet: see the comment at the top of kvmfleet.c\n");
			exit(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "kvmfleet: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
}

static void write_pids(const char *path, const pid_t *pids, unsigned n)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		die(1, "open %s", tmp);
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%d\n", (int)pids[i]);
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		die(1, "write %s", path);
}

int main(int argc, char **argv)
{
	struct opts o;
	unsigned n_vmms, next_vm = 0;
	pid_t *vmm_pids;
	int ready[2], sfd;
	sigset_t mask;
	struct rlimit rl;

	parse_opts(argc, argv, &o);
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		fprintf(stderr, "kvmfleet: /dev/kvm: %s\n", strerror(errno));
		return EXIT_SKIP;
	}
	/* Children inherit it: K VMs x (M+1) x 2 fds per VMM process, plus sockets. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	n_vmms = (o.vms + o.per_process - 1) / o.per_process;
	vmm_pids = calloc(n_vmms ? n_vmms : 1, sizeof(*vmm_pids));
	if (!vmm_pids)
		die(1, "calloc");
	if (pipe2(ready, O_CLOEXEC) < 0)
		die(1, "pipe");
	if (o.pids_file) {
		char path[4096];

		snprintf(path, sizeof(path), "%s.all", o.pids_file);
		all_pids = fopen(path, "we");
		if (!all_pids)
			die(1, "open %s", path);
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die(1, "signalfd");
	setpgid(0, 0);

	/* In batches, so that a failure shows early and readiness pipes do not fill. */
	for (unsigned i = 0; i < n_vmms;) {
		unsigned batch = 0;
		for (; i < n_vmms && batch < 64; i++, batch++) {
			unsigned n =
				o.vms - next_vm < o.per_process ? o.vms - next_vm : o.per_process;
			vmm_pids[i] = spawn(&o, true, next_vm, n, ready[1], ready[0]);
			next_vm += n;
		}
		wait_ready(ready[0], batch);
	}
	for (unsigned i = 0; i < o.idle;) {
		unsigned batch = 0;
		for (; i < o.idle && batch < 256; i++, batch++)
			spawn(&o, false, 0, 0, ready[1], ready[0]);
		wait_ready(ready[0], batch);
	}
	if (o.pids_file)
		write_pids(o.pids_file, vmm_pids, n_vmms);
	printf("ready vmms=%u vms=%u vcpus=%u idle=%u\n", n_vmms, o.vms, o.vms * o.vcpus, o.idle);
	fflush(stdout);

	/* Churn: on a line from stdin, kill the oldest VMM process and make a new one, at churn_hz.
	 */
	if (o.churn) {
		char go[64];
		if (!fgets(go, sizeof(go), stdin))
			o.churn = 0; /* EOF: stop without churning */
	}
	for (unsigned c = 0; c < o.churn && n_vmms > 0; c++) {
		unsigned slot = c % n_vmms;
		unsigned n = o.per_process < o.vms ? o.per_process : o.vms;
		int st;

		kill(vmm_pids[slot], SIGKILL);
		waitpid(vmm_pids[slot], &st, 0);
		vmm_pids[slot] = spawn(&o, true, next_vm, n, ready[1], ready[0]);
		next_vm += n;
		wait_ready(ready[0], 1);
		usleep(1000000u / o.churn_hz);
	}
	if (o.churn) {
		if (o.pids_file)
			write_pids(o.pids_file, vmm_pids, n_vmms);
		printf("churned %u\n", o.churn);
		fflush(stdout);
	}

	/* Until told to stop (signal or EOF on stdin); a child dying unasked is fatal. */
	for (;;) {
		struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN },
					 { .fd = STDIN_FILENO, .events = POLLIN } };
		struct signalfd_siginfo si;
		char buf[64];

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			die(1, "poll");
		if (pfd[1].revents && read(STDIN_FILENO, buf, sizeof(buf)) <= 0)
			break;
		if (pfd[0].revents && read(sfd, &si, sizeof(si)) == sizeof(si)) {
			int st;
			if (si.ssi_signo != SIGCHLD)
				break;
			if (waitpid(-1, &st, WNOHANG) > 0) {
				fprintf(stderr, "kvmfleet: a child process died\n");
				kill_children();
				return 1;
			}
		}
	}
	kill_children();
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}
