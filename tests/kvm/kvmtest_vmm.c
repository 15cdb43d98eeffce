/* SPDX-License-Identifier: MIT */
/*
 * kvmtest_vmm: a tiny VMM that makes real KVM VMs whose statistics are known,
 * for the exporter's real-kernel tests.
 *
 *   kvmtest_vmm --vms N --vcpus M --hlt H [--irqchip] [--pause]
 *               [--dump-dir DIR] [--save-blobs DIR] [--ready-file PATH]
 *               [--handoff PATH [--name NAME] [--label KEY=VALUE]...]
 *               [--vcpu-threads per-vcpu|creator]
 *
 * One child process per VM, because the exporter's procfs source groups VMs
 * by process. Every vCPU runs the same real-mode code at 0x1000 with CX set
 * to H+i (vCPU i):
 *
 *     cli
 *   1: hlt              ; one halt exit each
 *     out 0x11, al      ; one KVM_EXIT_IO to this VMM each
 *     loop 1b           ; CX times
 *     out 0x10, al      ; "done": the VMM never runs this vCPU again
 *
 * so vCPU i makes exactly H+i halt exits (the halt_exits stat) and H+i+1
 * port writes, then stops. (Whether those writes count in io_exits depends on
 * the host: not where real mode is emulated, as under PVM.)
 * Without --irqchip each hlt exits to userspace (KVM_EXIT_HLT). With
 * --irqchip the halt blocks in the kernel (filling the halt_wait/halt_poll
 * histograms); a periodic timer signal interrupts KVM_RUN and the VMM sets
 * the vCPU runnable again, which resumes the guest after its hlt.
 *
 * Stats fds (KVM_GET_STATS_FD) for the VM and every vCPU are made right after
 * the vCPUs and kept open, which is what the exporter discovers in
 * /proc/PID/fd. Once every vCPU has stopped all values are frozen.
 *
 * Each child is also an independent reader of its own stats files: when
 * ready, on SIGUSR1 and after a --pause'd run, it writes DIR/vm-<pid>.json
 * with every file's id, descriptors and raw values (as decimal strings:
 * JSON numbers lose precision above 2^53). The parser here is deliberately
 * separate from the project's kvmstats/ library.
 *
 * --save-blobs DIR: VM 0 also saves its stats files, offset 0 to the end of
 * the data block, as DIR/vm.bin and DIR/vcpu<i>.bin (see tests/data/).
 *
 * --pause: children report ready before running any guest code; SIGUSR2
 * runs it (values change once, then freeze). The parent forwards SIGUSR1 and
 * SIGUSR2 to all children, prints "ready" when all are ready and exits on
 * SIGTERM, SIGINT or EOF on a stdin pipe, killing its children.
 *
 * --handoff PATH: each child, once its stats fds exist, also hands them to
 * the exporter over its hand-off socket (docs/handoff.md), as
 * vm.name NAME-<vm index> (--name) or vm-<pid>, with the --label pairs as
 * vm.labels, and keeps the connection open for its whole life: the VM is
 * registered while the child lives. An answer other than {"ok":true} is
 * fatal. The fixture does not reconnect if the exporter restarts.
 *
 * --vcpu-threads MODE: instead of running the guest code above once on the
 * child's main thread, every vCPU runs on a thread of its own for the
 * child's whole life, as real VMMs do, in one of the two styles they use:
 *   per-vcpu  each thread creates its vCPU and then runs it (QEMU: the
 *             stats id kvm-<tid>/vcpu-<n> names the running thread), and is
 *             named "CPU <n>/KVM" as QEMU names its vCPU threads;
 *   creator   the main thread creates every vCPU, then starts the threads
 *             that run them, in reverse order, named "vcpu-run <n>"
 *             (Firecracker: the stats id names the creating thread).
 * The guest (in-kernel irqchip implied) loops: spin 4096 "loop"s, hlt. The
 * hlt blocks inside KVM_RUN until the thread's 10 ms timer signal, so each
 * thread alternates between guest work and waiting in KVM_RUN. The dump then
 * also lists "threads": each vCPU's running tid and its creating tid. SIGUSR2
 * makes the thread of the highest-numbered running vCPU exit (its vCPU and
 * stats fds stay open, as after a failed or parked vCPU thread); the dump
 * marks it "exited". --hlt and --pause do not apply. With --handoff the
 * child also sends a "threads" message naming each vCPU's thread.
 *
 * Exit status 77 when /dev/kvm is missing (meson's "skip").
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
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
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm_util.h"

#define GUEST_MEM_SIZE      0x10000u
#define GUEST_CODE_GPA      0x1000u
#define PORT_DONE           0x10
#define PORT_TICK           0x11
#define MAX_VCPUS           64
#define MAX_VMS             64
#define MAX_LABELS          16
#define HANDOFF_FDS_PER_MSG VMM_FDS_PER_MSG
#ifndef sigev_notify_thread_id /* glibc < 2.35 names only the union member */
#define sigev_notify_thread_id _sigev_un._tid
#endif

static const uint8_t guest_code[] = {
	0xfa,            /* 0: cli */
	0xf4,            /* 1: hlt */
	0xe6, PORT_TICK, /* 2: out PORT_TICK, al */
	0xe2, 0xfb,      /* 4: loop 1 */
	0xe6, PORT_DONE, /* 6: out PORT_DONE, al */
	0xf4,            /* 8: hlt (never reached: the VMM stops first) */
};

/* --vcpu-threads: forever spin a while, then wait in KVM_RUN until kicked. */
static const uint8_t guest_code_threads[] = {
	0xfa,             /* 0: cli */
	0xb9, 0x00, 0x10, /* 1: mov cx, 0x1000 */
	0xe2, 0xfe,       /* 4: loop 4 */
	0xf4,             /* 6: hlt */
	0xeb, 0xf8,       /* 7: jmp 1 */
};

enum thread_mode {
	THREADS_NONE,     /* every vCPU created and run on the child's main thread */
	THREADS_PER_VCPU, /* QEMU-style */
	THREADS_CREATOR,  /* Firecracker-style */
};

struct opts {
	unsigned vms, vcpus, hlt;
	bool pause, irqchip;
	const char *dump_dir, *blob_dir, *ready_file;
	const char *handoff, *name;
	const char *labels[MAX_LABELS]; /* "KEY=VALUE" */
	unsigned n_labels;
	enum thread_mode threads;
};

struct vm {
	unsigned index;
	int kvm_fd, vm_fd, vm_stats_fd;
	int vcpu_fd[MAX_VCPUS], vcpu_stats_fd[MAX_VCPUS];
	struct kvm_run *run[MAX_VCPUS];
	size_t run_size;
	bool ran;
	unsigned generation; /* dumps written, so tests can wait for a fresh one */
	/* --vcpu-threads: who created and who runs each vCPU. */
	pthread_t thread[MAX_VCPUS];
	pid_t creator_tid[MAX_VCPUS];
	pid_t run_tid[MAX_VCPUS]; /* 0 until the thread has started */
	bool stop[MAX_VCPUS];     /* set before kicking the thread to make it exit */
	bool exited[MAX_VCPUS];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const struct opts *o;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fprintf(stderr, "kvmtest_vmm[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(e));
	exit(1);
}

/* Reads exactly len bytes at off; a short read of a stats fd is a bug we want to see. */
static void pread_all(int fd, void *buf, size_t len, off_t off, const char *what)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENODATA;
			die("pread %s (%zu of %zu bytes at %jd)", what, done, len, (intmax_t)off);
		}
		done += (size_t)n;
	}
}

static void write_all(int fd, const void *buf, size_t len, const char *what)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write %s", what);
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
}

/* Sends one hand-off message with its fds and insists on {"ok":true}. */
static void handoff_send(int sock, const char *msg, const int *fds, unsigned n_fds)
{
	char answer[4096];
	ssize_t n;

	if (vmm_send_fds(sock, msg, strlen(msg), fds, n_fds) < 0)
		die("hand-off sendmsg");
	n = recv(sock, answer, sizeof(answer) - 1, 0);
	if (n < 0)
		die("hand-off: no answer");
	answer[n] = '\0';
	if (strcmp(answer, "{\"ok\":true}") != 0) {
		errno = EPROTO;
		die("hand-off refused (%s)", answer);
	}
}

/* Readers must never see a half-written file: write a temp file, then rename. */
static void write_file_atomic(const char *path, const void *buf, size_t len)
{
	char tmp[4096];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("open %s", tmp);
	write_all(fd, buf, len, tmp);
	if (close(fd) < 0)
		die("close %s", tmp);
	if (rename(tmp, path) < 0)
		die("rename %s", path);
}

/* A growing string for the JSON dump. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		int n;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			die("vsnprintf");
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		b->cap = (b->cap + (size_t)n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			die("realloc");
	}
}

/* Kernel names are [a-z0-9_], but a dump must stay valid JSON whatever they hold. */
static void sb_json_string(struct sbuf *b, const char *s)
{
	sb_printf(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			sb_printf(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			sb_printf(b, "\\u%04x", c);
		else
			sb_printf(b, "%c", c);
	}
	sb_printf(b, "\"");
}

/*
 * Our own parse of one stats file: header, id, descriptors and values,
 * appended to the dump as one JSON object.
 */
static void dump_stats_fd(struct sbuf *b, int fd, const char *kind, int vcpu)
{
	struct kvm_stats_header h;
	size_t stride, data_size = 0;
	char *id, *descs;
	uint64_t *data;

	pread_all(fd, &h, sizeof(h), 0, "stats header");
	if (h.name_size == 0 || h.name_size > 4096 || h.num_desc > 65536)
		die("implausible stats header (name_size %u, num_desc %u)", h.name_size,
		    h.num_desc);
	id = calloc(1, h.name_size + 1);
	stride = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = calloc(h.num_desc ? h.num_desc : 1, stride);
	if (!id || !descs)
		die("calloc");
	pread_all(fd, id, h.name_size, h.id_offset, "stats id");
	pread_all(fd, descs, h.num_desc * stride, h.desc_offset, "stats descriptors");
	for (uint32_t i = 0; i < h.num_desc; i++) {
		const struct kvm_stats_desc *d = (const void *)(descs + i * stride);
		size_t end = (size_t)d->offset + (size_t)d->size * 8;
		if (end > data_size)
			data_size = end;
	}
	data = calloc(data_size / 8 + 1, 8);
	if (!data)
		die("calloc");
	pread_all(fd, data, data_size, h.data_offset, "stats data");

	sb_printf(b, "    {\"kind\": \"%s\", \"vcpu\": %d, \"id\": ", kind, vcpu);
	sb_json_string(b, id);
	sb_printf(b,
		  ", \"flags\": %" PRIu32 ", \"name_size\": %" PRIu32 ", \"num_desc\": %" PRIu32
		  ", \"id_offset\": %" PRIu32 ", \"desc_offset\": %" PRIu32
		  ", \"data_offset\": %" PRIu32 ", \"data_size\": %zu,\n     \"stats\": [",
		  h.flags, h.name_size, h.num_desc, h.id_offset, h.desc_offset, h.data_offset,
		  data_size);
	for (uint32_t i = 0; i < h.num_desc; i++) {
		const struct kvm_stats_desc *d = (const void *)(descs + i * stride);
		char name[4097];

		/* The name is not guaranteed NUL-terminated; never read past name_size. */
		memcpy(name, d->name, h.name_size);
		name[h.name_size] = '\0';
		sb_printf(b, "%s\n      {\"name\": ", i ? "," : "");
		sb_json_string(b, name);
		sb_printf(b,
			  ", \"flags\": %" PRIu32 ", \"exponent\": %d, \"size\": %u"
			  ", \"offset\": %" PRIu32 ", \"bucket_size\": %" PRIu32 ", \"values\": [",
			  d->flags, d->exponent, d->size, d->offset, d->bucket_size);
		for (unsigned k = 0; k < d->size; k++)
			sb_printf(b, "%s\"%" PRIu64 "\"", k ? ", " : "", data[d->offset / 8 + k]);
		sb_printf(b, "]}");
	}
	sb_printf(b, "]}");
	free(data);
	free(descs);
	free(id);
}

static void write_dump(struct vm *vm, const struct opts *o)
{
	struct sbuf b = { 0 };
	char path[4096];

	if (!o->dump_dir)
		return;
	vm->generation++;
	sb_printf(&b,
		  "{\"pid\": %d, \"index\": %u, \"generation\": %u, \"vcpus\": %u, \"hlt\": %u,"
		  " \"irqchip\": %s, \"ran\": %s,\n \"expected\": [",
		  (int)getpid(), vm->index, vm->generation, o->vcpus, o->hlt,
		  o->irqchip ? "true" : "false", vm->ran ? "true" : "false");
	/*
	 * What the guest code guarantees (zero before it ran): the kernel's
	 * halt_exits, and the guest's out instructions. The latter are not
	 * the io_exits stat: that one counts only hardware I/O exits, and is 0
	 * where the instruction emulator runs real mode (e.g. PVM).
	 */
	for (unsigned i = 0; i < o->vcpus; i++)
		sb_printf(&b, "%s{\"vcpu\": %u, \"halt_exits\": %u, \"guest_out\": %u}",
			  i ? ", " : "", i, vm->ran ? o->hlt + i : 0, vm->ran ? o->hlt + i + 1 : 0);
	sb_printf(&b, "]");
	if (o->threads != THREADS_NONE) {
		sb_printf(&b, ",\n \"vcpu_threads\": \"%s\", \"threads\": [",
			  o->threads == THREADS_PER_VCPU ? "per-vcpu" : "creator");
		pthread_mutex_lock(&vm->lock);
		for (unsigned i = 0; i < o->vcpus; i++)
			sb_printf(&b,
				  "%s{\"vcpu\": %u, \"tid\": %d, \"creator_tid\": %d,"
				  " \"exited\": %s}",
				  i ? ", " : "", i, (int)vm->run_tid[i], (int)vm->creator_tid[i],
				  vm->exited[i] ? "true" : "false");
		pthread_mutex_unlock(&vm->lock);
		sb_printf(&b, "]");
	}
	sb_printf(&b, ",\n \"files\": [\n");
	dump_stats_fd(&b, vm->vm_stats_fd, "vm", -1);
	for (unsigned i = 0; i < o->vcpus; i++) {
		sb_printf(&b, ",\n");
		dump_stats_fd(&b, vm->vcpu_stats_fd[i], "vcpu", (int)i);
	}
	sb_printf(&b, "\n]}\n");
	snprintf(path, sizeof(path), "%s/vm-%d.json", o->dump_dir, (int)getpid());
	write_file_atomic(path, b.p, b.len);
	free(b.p);
}

/* The whole file, offset 0 to EOF (the end of the data block), as a saved blob. */
static void save_blob(int fd, const char *dir, const char *name)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap), path[4096];

	if (!buf)
		die("malloc");
	for (;;) {
		ssize_t n = pread(fd, buf + len, cap - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("pread blob %s", name);
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap && !(buf = realloc(buf, cap *= 2)))
			die("realloc");
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	write_file_atomic(path, buf, len);
	free(buf);
}

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Creates vCPU i on the calling thread, with its registers and its stats fd. */
static void create_vcpu(struct vm *vm, unsigned i, const struct opts *o)
{
	vm->vcpu_fd[i] = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
	if (vm->vcpu_fd[i] < 0)
		die("KVM_CREATE_VCPU %u", i);
	vm->creator_tid[i] = my_tid();
	vm->run[i] =
		mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd[i], 0);
	if (vm->run[i] == MAP_FAILED)
		die("mmap kvm_run");
	if (vmm_vcpu_real_mode(vm->vcpu_fd[i], GUEST_CODE_GPA, o->hlt + i) < 0)
		die("KVM_GET/SET_SREGS/REGS");
}

static void open_vcpu_stats(struct vm *vm, unsigned i)
{
	vm->vcpu_stats_fd[i] = ioctl(vm->vcpu_fd[i], KVM_GET_STATS_FD, 0);
	if (vm->vcpu_stats_fd[i] < 0)
		die("KVM_GET_STATS_FD (vCPU %u)", i);
}

static void setup_vm(struct vm *vm, const struct opts *o)
{
	struct kvm_userspace_memory_region region;
	uint8_t *mem;
	int mmap_size;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		die("open /dev/kvm");
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		die("KVM_CREATE_VM");
	/* Intel without unrestricted guest needs a TSS for real mode; harmless elsewhere. */
	(void)ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	if (o->irqchip && ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP");

	mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap guest memory");
	if (o->threads == THREADS_NONE)
		memcpy(mem + GUEST_CODE_GPA, guest_code, sizeof(guest_code));
	else
		memcpy(mem + GUEST_CODE_GPA, guest_code_threads, sizeof(guest_code_threads));
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = GUEST_MEM_SIZE,
		.userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");

	mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size <= 0)
		die("KVM_GET_VCPU_MMAP_SIZE");
	vm->run_size = (size_t)mmap_size;

	/* QEMU-style threads create their own vCPUs. */
	if (o->threads != THREADS_PER_VCPU)
		for (unsigned i = 0; i < o->vcpus; i++)
			create_vcpu(vm, i, o);

	/* Stats fds now, so that a --pause'd VM is visible before it runs. */
	vm->vm_stats_fd = ioctl(vm->vm_fd, KVM_GET_STATS_FD, 0);
	if (vm->vm_stats_fd < 0)
		die("KVM_GET_STATS_FD (VM)");
	if (o->threads != THREADS_PER_VCPU)
		for (unsigned i = 0; i < o->vcpus; i++)
			open_vcpu_stats(vm, i);
}

/* Registers the VM on the exporter's hand-off socket; the connection stays open. */
static void handoff_register(const struct vm *vm, const struct opts *o)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval timeout = { .tv_sec = 10 };
	int fds[MAX_VCPUS + 1];
	unsigned n = 0, sent = 0;
	struct sbuf b = { 0 };
	char name[300];
	int sock;

	fds[n++] = vm->vm_stats_fd;
	for (unsigned i = 0; i < o->vcpus; i++)
		fds[n++] = vm->vcpu_stats_fd[i];
	if (o->name)
		snprintf(name, sizeof(name), "%s-%u", o->name, vm->index);
	else
		snprintf(name, sizeof(name), "vm-%d", (int)getpid());

	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		die("socket");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", o->handoff);
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect %s", o->handoff);
	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0)
		die("SO_RCVTIMEO");

	/* More fds than one message may carry go in later "fds" messages. */
	for (bool first = true; first || sent < n; first = false) {
		unsigned k = n - sent < HANDOFF_FDS_PER_MSG ? n - sent : HANDOFF_FDS_PER_MSG;

		b.len = 0;
		if (first) {
			sb_printf(&b, "{\"version\": 1, \"vm\": {\"name\": ");
			sb_json_string(&b, name);
			sb_printf(&b, ", \"labels\": {");
			for (unsigned i = 0; i < o->n_labels; i++) {
				const char *eq = strchr(o->labels[i], '=');
				char key[128];

				snprintf(key, sizeof(key), "%.*s", (int)(eq - o->labels[i]),
					 o->labels[i]);
				sb_printf(&b, "%s", i ? ", " : "");
				sb_json_string(&b, key);
				sb_printf(&b, ": ");
				sb_json_string(&b, eq + 1);
			}
			sb_printf(&b, "}}, \"fds\": [");
		} else {
			sb_printf(&b, "{\"fds\": [");
		}
		for (unsigned i = sent; i < sent + k; i++)
			if (i == 0)
				sb_printf(&b, "\"vm\"");
			else
				sb_printf(&b, "%s\"vcpu:%u\"", i == sent ? "" : ", ", i - 1);
		sb_printf(&b, "]}");
		handoff_send(sock, b.p, fds + sent, k);
		sent += k;
	}
	/* Threads of our own: say which thread runs each vCPU (docs/handoff.md). */
	if (o->threads != THREADS_NONE) {
		b.len = 0;
		sb_printf(&b, "{\"threads\": {");
		for (unsigned i = 0; i < o->vcpus; i++)
			sb_printf(&b, "%s\"vcpu:%u\": %d", i ? ", " : "", i, (int)vm->run_tid[i]);
		sb_printf(&b, "}}");
		handoff_send(sock, b.p, NULL, 0);
	}
	free(b.p);
	/* Never closed: the VM stays registered until this process exits. */
}

static void set_runnable(int vcpu_fd)
{
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };

	if (ioctl(vcpu_fd, KVM_SET_MP_STATE, &mp) < 0)
		die("KVM_SET_MP_STATE");
}

static void on_alarm(int sig)
{
	(void)sig; /* only here so that SIGALRM interrupts KVM_RUN instead of killing us */
}

/* Runs vCPU i to its "done" port write, checking that the exits are exactly as designed. */
static void run_vcpu(struct vm *vm, unsigned i, const struct opts *o)
{
	struct kvm_run *run = vm->run[i];
	unsigned halts = 0, ticks = 0, want = o->hlt + i;

	/* With an in-kernel irqchip, APs start waiting for a SIPI; just start them. */
	if (o->irqchip)
		set_runnable(vm->vcpu_fd[i]);
	for (;;) {
		if (ioctl(vm->vcpu_fd[i], KVM_RUN, 0) < 0) {
			struct kvm_mp_state mp;

			if (errno != EINTR)
				die("KVM_RUN vCPU %u", i);
			/* A timer tick woke a vCPU blocked in hlt: resume after the hlt. */
			if (o->irqchip) {
				if (ioctl(vm->vcpu_fd[i], KVM_GET_MP_STATE, &mp) < 0)
					die("KVM_GET_MP_STATE");
				if (mp.mp_state == KVM_MP_STATE_HALTED) {
					halts++;
					set_runnable(vm->vcpu_fd[i]);
				}
			}
			continue;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_HLT:
			halts++;
			continue;
		case KVM_EXIT_IO:
			if (run->io.direction != KVM_EXIT_IO_OUT)
				break;
			if (run->io.port == PORT_TICK) {
				ticks++;
				continue;
			}
			if (run->io.port == PORT_DONE) {
				if (halts != want || ticks != want) {
					errno = EPROTO;
					die("vCPU %u: %u halts, %u ticks, expected %u", i, halts,
					    ticks, want);
				}
				return;
			}
			break;
		case KVM_EXIT_INTR:
			continue;
		}
		errno = EPROTO;
		die("vCPU %u: unexpected exit %u", i, run->exit_reason);
	}
}

static void run_guest(struct vm *vm, const struct opts *o)
{
	/* A 100us tick: blocks of ~100us, below halt_poll_ns, so polling starts too. */
	struct itimerval tick = { .it_interval = { 0, 100 }, .it_value = { 0, 100 } };
	struct itimerval off = { 0 };

	if (o->irqchip && setitimer(ITIMER_REAL, &tick, NULL) < 0)
		die("setitimer");
	for (unsigned i = 0; i < o->vcpus; i++)
		run_vcpu(vm, i, o);
	if (o->irqchip && setitimer(ITIMER_REAL, &off, NULL) < 0)
		die("setitimer");
	vm->ran = true;
}

struct vcpu_thread_arg {
	struct vm *vm;
	unsigned index;
};

/* --vcpu-threads: one vCPU's thread, until told to stop. */
static void *vcpu_thread_main(void *p)
{
	struct vcpu_thread_arg *a = p;
	struct vm *vm = a->vm;
	unsigned i = a->index;
	const struct opts *o = vm->o;
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGALRM };
	struct itimerspec tick = { .it_interval = { 0, 10000000 }, .it_value = { 0, 10000000 } };
	char name[16];
	timer_t timer;

	if (o->threads == THREADS_PER_VCPU) {
		create_vcpu(vm, i, o);
		open_vcpu_stats(vm, i);
		snprintf(name, sizeof(name), "CPU %u/KVM", i);
	} else {
		snprintf(name, sizeof(name), "vcpu-run %u", i);
	}
	if (prctl(PR_SET_NAME, name) < 0)
		die("PR_SET_NAME");
	/* The tick goes to this thread only: it is what ends each hlt. */
	sev.sigev_notify_thread_id = my_tid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) < 0 ||
	    timer_settime(timer, 0, &tick, NULL) < 0)
		die("vCPU %u timer", i);

	pthread_mutex_lock(&vm->lock);
	vm->run_tid[i] = my_tid();
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);

	set_runnable(vm->vcpu_fd[i]);
	for (;;) {
		struct kvm_mp_state mp;
		bool stop;

		if (ioctl(vm->vcpu_fd[i], KVM_RUN, 0) == 0) {
			if (vm->run[i]->exit_reason == KVM_EXIT_INTR)
				continue;
			errno = EPROTO;
			die("vCPU %u: unexpected exit %u", i, vm->run[i]->exit_reason);
		}
		if (errno != EINTR)
			die("KVM_RUN vCPU %u", i);
		pthread_mutex_lock(&vm->lock);
		stop = vm->stop[i];
		pthread_mutex_unlock(&vm->lock);
		if (stop)
			break;
		if (ioctl(vm->vcpu_fd[i], KVM_GET_MP_STATE, &mp) < 0)
			die("KVM_GET_MP_STATE");
		if (mp.mp_state == KVM_MP_STATE_HALTED)
			set_runnable(vm->vcpu_fd[i]);
	}
	timer_delete(timer);
	pthread_mutex_lock(&vm->lock);
	vm->exited[i] = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	free(a);
	return NULL;
}

/* Starts every vCPU's thread and waits until all of them run. */
static void start_vcpu_threads(struct vm *vm, const struct opts *o)
{
	bool all;

	for (unsigned k = 0; k < o->vcpus; k++) {
		/* Firecracker-style threads start in reverse: no order to lean on. */
		unsigned i = o->threads == THREADS_CREATOR ? o->vcpus - 1 - k : k;
		struct vcpu_thread_arg *a = malloc(sizeof(*a));
		int r;

		if (!a)
			die("malloc");
		*a = (struct vcpu_thread_arg){ .vm = vm, .index = i };
		r = pthread_create(&vm->thread[i], NULL, vcpu_thread_main, a);
		if (r != 0) {
			errno = r;
			die("pthread_create");
		}
	}
	pthread_mutex_lock(&vm->lock);
	do {
		all = true;
		for (unsigned i = 0; i < o->vcpus; i++)
			all = all && vm->run_tid[i] != 0;
		if (!all)
			pthread_cond_wait(&vm->cond, &vm->lock);
	} while (!all);
	pthread_mutex_unlock(&vm->lock);
}

/* Makes the thread of the highest-numbered running vCPU exit; false if none is left. */
static bool stop_one_vcpu_thread(struct vm *vm, const struct opts *o)
{
	unsigned i = o->vcpus;

	pthread_mutex_lock(&vm->lock);
	while (i > 0 && vm->stop[i - 1])
		i--;
	if (i > 0)
		vm->stop[i - 1] = true;
	pthread_mutex_unlock(&vm->lock);
	if (i-- == 0)
		return false;
	/* Kick it out of KVM_RUN; the tick would too, this is just sooner. */
	pthread_kill(vm->thread[i], SIGALRM);
	errno = pthread_join(vm->thread[i], NULL);
	if (errno != 0)
		die("pthread_join");
	return true;
}

static void save_blobs(struct vm *vm, const struct opts *o)
{
	char name[64];

	if (!o->blob_dir || vm->index != 0)
		return;
	save_blob(vm->vm_stats_fd, o->blob_dir, "vm.bin");
	for (unsigned i = 0; i < o->vcpus; i++) {
		snprintf(name, sizeof(name), "vcpu%u.bin", i);
		save_blob(vm->vcpu_stats_fd[i], o->blob_dir, name);
	}
}

/* Child: one VM. Signals the parent through ready_fd, then serves dump requests. */
static _Noreturn void child_main(unsigned index, int ready_fd, const struct opts *o,
				 const sigset_t *mask)
{
	struct vm vm = { .index = index };
	struct sigaction sa = { .sa_handler = on_alarm };
	int sfd;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		die("prctl");
	if (getppid() == 1)
		exit(1);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		die("sigaction");
	sfd = signalfd(-1, mask, SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd");

	vm.o = o;
	pthread_mutex_init(&vm.lock, NULL);
	pthread_cond_init(&vm.cond, NULL);
	setup_vm(&vm, o);
	if (o->threads != THREADS_NONE)
		start_vcpu_threads(&vm, o);
	if (o->handoff)
		handoff_register(&vm, o);
	if (!o->pause && o->threads == THREADS_NONE) {
		run_guest(&vm, o);
		save_blobs(&vm, o);
	}
	write_dump(&vm, o);
	write_all(ready_fd, "r", 1, "ready pipe");
	close(ready_fd);

	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof(si))
			die("read signalfd");
		switch (si.ssi_signo) {
		case SIGUSR1:
			write_dump(&vm, o);
			break;
		case SIGUSR2:
			if (o->threads != THREADS_NONE) {
				(void)stop_one_vcpu_thread(&vm, o);
			} else if (!vm.ran) {
				run_guest(&vm, o);
				save_blobs(&vm, o);
			}
			write_dump(&vm, o);
			break;
		default:
			exit(0);
		}
	}
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "vms", required_argument, NULL, 'n' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "hlt", required_argument, NULL, 'H' },
		{ "pause", no_argument, NULL, 'p' },
		{ "irqchip", no_argument, NULL, 'i' },
		{ "dump-dir", required_argument, NULL, 'd' },
		{ "save-blobs", required_argument, NULL, 'b' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "handoff", required_argument, NULL, 'o' },
		{ "name", required_argument, NULL, 'N' },
		{ "label", required_argument, NULL, 'l' },
		{ "vcpu-threads", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	*o = (struct opts){ .vms = 1, .vcpus = 1, .hlt = 10 };
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->vms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			o->vcpus = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'H':
			o->hlt = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			o->pause = true;
			break;
		case 'i':
			o->irqchip = true;
			break;
		case 'd':
			o->dump_dir = optarg;
			break;
		case 'b':
			o->blob_dir = optarg;
			break;
		case 'r':
			o->ready_file = optarg;
			break;
		case 'o':
			o->handoff = optarg;
			break;
		case 'N':
			o->name = optarg;
			break;
		case 'l':
			if (o->n_labels == MAX_LABELS || !strchr(optarg, '=')) {
				fprintf(stderr, "kvmtest_vmm: --label KEY=VALUE, at most %d\n",
					MAX_LABELS);
				exit(2);
			}
			o->labels[o->n_labels++] = optarg;
			break;
		case 'T':
			if (strcmp(optarg, "per-vcpu") == 0)
				o->threads = THREADS_PER_VCPU;
			else if (strcmp(optarg, "creator") == 0)
				o->threads = THREADS_CREATOR;
			else {
				fprintf(stderr, "kvmtest_vmm: --vcpu-threads per-vcpu|creator\n");
				exit(2);
			}
			break;
		case 'h':
			printf("usage: %s --vms N --vcpus M --hlt H [--irqchip] [--pause]\n"
			       "       [--dump-dir DIR] [--save-blobs DIR] [--ready-file PATH]\n"
			       "       [--handoff PATH [--name NAME] [--label KEY=VALUE]...]\n"
			       "       [--vcpu-threads per-vcpu|creator]\n"
			       "vCPU i makes H+i halt exits and H+i+1 port writes.\n",
			       argv[0]);
			exit(0);
		default:
			exit(2);
		}
	}
	/* The threads' guest halts with interrupts off: only an in-kernel irqchip blocks there. */
	if (o->threads != THREADS_NONE)
		o->irqchip = true;
	/* CX is 16 bits and must start non-zero, or "loop" runs 65536 times. */
	if (o->vms < 1 || o->vms > MAX_VMS || o->vcpus < 1 || o->vcpus > MAX_VCPUS || o->hlt < 1 ||
	    o->hlt + o->vcpus > 0xffff || optind != argc || (o->threads && o->pause)) {
		fprintf(stderr,
			"kvmtest_vmm: bad arguments (1 <= vms <= %d, 1 <= vcpus <= %d, "
			"hlt >= 1, no --pause with --vcpu-threads); see --help\n",
			MAX_VMS, MAX_VCPUS);
		exit(2);
	}
}

static void kill_all(const pid_t *pids, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	pid_t pids[MAX_VMS] = { 0 };
	struct pollfd pfd[2];
	struct opts o;
	sigset_t mask;
	struct stat st;
	int ready[2], sfd;
	unsigned n_ready = 0;
	bool watch_stdin;

	parse_opts(argc, argv, &o);
	if (access("/dev/kvm", F_OK) < 0) {
		fprintf(stderr, "kvmtest_vmm: /dev/kvm is missing: cannot run real-kernel tests\n");
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Block before forking so that no signal is lost between fork and signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		die("sigprocmask");
	if (pipe2(ready, O_CLOEXEC) < 0)
		die("pipe2");

	for (unsigned i = 0; i < o.vms; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork");
		if (pids[i] == 0) {
			sigset_t cmask = mask;
			sigdelset(&cmask, SIGCHLD);
			close(ready[0]);
			child_main(i, ready[1], &o, &cmask);
		}
	}
	close(ready[1]);

	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd");
	/* Only a pipe's EOF means "the test is gone"; a terminal or /dev/null does not. */
	watch_stdin =
		fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = ready[0], .events = POLLIN };

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pfd[1].revents && n_ready < o.vms) {
			char c;
			ssize_t n = read(ready[0], &c, 1);

			if (n == 0) {
				fprintf(stderr,
					"kvmtest_vmm: a child failed before it was ready\n");
				kill_all(pids, o.vms);
				return 1;
			}
			if (n == 1 && ++n_ready == o.vms) {
				if (o.ready_file) {
					char line[32];
					int len =
						snprintf(line, sizeof(line), "%d\n", (int)getpid());
					write_file_atomic(o.ready_file, line, (size_t)len);
				}
				printf("ready\n");
				/* The ready pipe is done; from now on watch stdin instead. */
				pfd[1] = (struct pollfd){ .fd = watch_stdin ? STDIN_FILENO : -1,
							  .events = POLLIN };
			}
		} else if (pfd[1].revents) {
			char buf[256];

			if (read(STDIN_FILENO, buf, sizeof(buf)) <= 0)
				break;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				die("read signalfd");
			if (si.ssi_signo == SIGCHLD) {
				int status;
				pid_t p;
				while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
					for (unsigned i = 0; i < o.vms; i++)
						if (pids[i] == p)
							pids[i] = 0;
					if (n_ready < o.vms) {
						fprintf(stderr,
							"kvmtest_vmm: child %d died before "
							"it was ready\n",
							(int)p);
						kill_all(pids, o.vms);
						return 1;
					}
				}
			} else if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
				for (unsigned i = 0; i < o.vms; i++)
					if (pids[i] > 0)
						kill(pids[i], (int)si.ssi_signo);
			} else {
				break;
			}
		}
	}
	kill_all(pids, o.vms);
	return 0;
}
