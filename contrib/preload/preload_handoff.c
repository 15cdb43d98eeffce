/* SPDX-License-Identifier: MIT */
/*
 * The shim's hand-off thread: one SOCK_SEQPACKET connection per VM to the
 * exporter, a registration, then the stats fds in batches, each answer read
 * before the next message. A VM whose connection fails (exporter absent,
 * restarted, refusing) is registered again, with all its fds, on a new
 * connection: every second, or with a growing pause up to 30 s after an
 * explicit refusal. Each kind of failure is reported once on stderr.
 *
 * All socket I/O happens here, with timeouts; the VMM's threads never wait
 * for it. The thread also notices VMs the VMM closed (their fds no longer
 * name a KVM VM or vCPU) and releases them: a held stats fd would keep the
 * dead VM's kernel state alive.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "proto/handoff.h"
#include "preload.h"
#include "util/clock.h"
#include "util/vmname.h"

#define THREAD_STACK_SIZE (256u * 1024)
#define MSG_BUF_SIZE      4096
#define ERROR_TEXT_SIZE   256

/* Failure kinds already reported: only this thread touches it. */
static unsigned logged;
static bool liveness_possible;

static char base_name[256];
static char *vm_uuid;
static bool identity_loaded;

static void preload_vlog(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void preload_vlog(const char *fmt, va_list ap)
{
	char line[640];
	int n = snprintf(line, sizeof(line), PRELOAD_LOG_PREFIX "[%d]: ", (int)getpid());
	size_t len;

	if (n < 0)
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	len = strlen(line);
	line[len++] = '\n';
	/* One write per line, so that it does not interleave with the VMM's output. */
	if (write(STDERR_FILENO, line, len) < 0) {
		/* nowhere to report it */
	}
}

void preload_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	preload_vlog(fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void fail_once(unsigned kind, const char *fmt, ...)
{
	va_list ap;

	if (logged & kind)
		return;
	logged |= kind;
	va_start(ap, fmt);
	preload_vlog(fmt, ap);
	va_end(ap);
}

/* --- identity ------------------------------------------------------------ */

/* KVMSTATS_VM_NAME, else the VMM's command line (QEMU -name), else pid-<pid>. */
static void identity_load(void)
{
	struct vm_identity id = { 0 };

	if (identity_loaded)
		return;
	identity_loaded = true;
	if (preload.env_name_invalid)
		fail_once(PRELOAD_FAIL_NAME, "KVMSTATS_VM_NAME is not 1 to 253 bytes of printable "
					     "UTF-8: ignored");
	if (vmname_from_pid(getpid(), &id) < 0)
		id = (struct vm_identity){ 0 };
	if (preload.env_name[0])
		snprintf(base_name, sizeof(base_name), "%s", preload.env_name);
	else if (id.name && handoff_name_valid(id.name))
		snprintf(base_name, sizeof(base_name), "%s", id.name);
	else
		snprintf(base_name, sizeof(base_name), "pid-%d", (int)getpid());
	if (id.uuid && id.uuid[0] && handoff_uuid_valid(id.uuid))
		vm_uuid = strdup(id.uuid);
	vm_identity_release(&id);
}

/*
 * The vm label of the process's n-th VM: the base name for the first,
 * "<name>-<n>" for later ones (names must be unique), cut at a UTF-8
 * character boundary to stay within 253 bytes.
 */
static void vm_name(unsigned number, char *buf, size_t size)
{
	char suffix[16];
	size_t keep;

	if (number <= 1) {
		snprintf(buf, size, "%s", base_name);
		return;
	}
	snprintf(suffix, sizeof(suffix), "-%u", number);
	keep = strlen(base_name);
	if (keep > 253 - strlen(suffix))
		keep = 253 - strlen(suffix);
	while (keep > 0 && ((unsigned char)base_name[keep] & 0xc0) == 0x80)
		keep--;
	snprintf(buf, size, "%.*s%s", (int)keep, base_name, suffix);
}

/* --- socket I/O ---------------------------------------------------------- */

static int handoff_connect(int *ret_sock)
{
	struct timeval tv = { .tv_sec = PRELOAD_IO_TIMEOUT_MS / 1000,
			      .tv_usec = (PRELOAD_IO_TIMEOUT_MS % 1000) * 1000 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s, r;

	if (preload.socket_path_too_long)
		return -ENAMETOOLONG;
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	memcpy(sa.sun_path, preload.socket_path, strlen(preload.socket_path));
	if (setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(s);
		return r;
	}
	*ret_sock = s;
	return 0;
}

/* Closes any fd a peer attached to what we received: none is expected, none may leak. */
static void close_received_fds(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
		}
	}
}

/* One datagram: 0 with its length, -ECONNRESET at end of file, -ETIMEDOUT, -errno. */
static int handoff_recv(int sock, int flags, char *buf, size_t size, size_t *ret_len)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	do {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	close_received_fds(&mh);
	if (n == 0)
		return -ECONNRESET;
	if (mh.msg_flags & MSG_TRUNC)
		return -EMSGSIZE;
	*ret_len = (size_t)n;
	return 0;
}

/*
 * Sends one message with its fds and reads the answer: 1 accepted, 0 refused
 * (the exporter's sentence in error), -errno when the connection is unusable.
 */
static int handoff_exchange(int sock, const char *msg, size_t len, const int *fds, size_t n_fds,
			    char *error, size_t error_size)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * HANDOFF_MAX_FDS_PER_MSG)];
	} ctl;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	char answer[1024];
	size_t answer_len = 0;
	ssize_t n;
	int r;

	if (n_fds > HANDOFF_MAX_FDS_PER_MSG)
		return -E2BIG;
	if (n_fds > 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	if ((size_t)n != len)
		return -EMSGSIZE;
	r = handoff_recv(sock, 0, answer, sizeof(answer), &answer_len);
	if (r < 0)
		return r;
	return handoff_parse_answer(answer, answer_len, error, error_size);
}

static const char *io_error_text(int r)
{
	switch (r) {
	case -ECONNRESET:
		return "the exporter closed the connection";
	case -ETIMEDOUT:
		return "no answer within 2 s";
	case -EBADMSG:
		return "the exporter's answer is not {\"ok\":...}";
	default:
		return strerror(-r);
	}
}

/* --- the table ----------------------------------------------------------- */

/* Drops vm's connection; every fd is offered again on the next one. Lock held. */
static int vm_disconnect_locked(struct preload_vm *vm, uint64_t retry_at)
{
	int sock = vm->sock;

	vm->sock = -1;
	vm->next_attempt = retry_at;
	vm->stats_state = PRELOAD_FD_PENDING;
	vm->threads_refused = false;
	for (size_t k = 0; k < vm->n_vcpus; k++) {
		vm->vcpus[k].state = PRELOAD_FD_PENDING;
		vm->vcpus[k].tid_state = PRELOAD_FD_PENDING;
	}
	return sock;
}

static void vm_disconnect(struct preload_vm *vm, int r)
{
	int sock;

	pthread_mutex_lock(&preload.lock);
	sock = vm_disconnect_locked(vm, monotonic_msec() + PRELOAD_RETRY_MS);
	pthread_mutex_unlock(&preload.lock);
	if (sock >= 0)
		close(sock);
	fail_once(PRELOAD_FAIL_LOST, "hand-off to %s failed (%s); registering again every second",
		  preload.socket_path, io_error_text(r));
}

/* Releases stale slots: closing the connection makes the exporter drop the VM. */
static void retire_stale(void)
{
	for (size_t i = 0; i < PRELOAD_MAX_VMS; i++) {
		struct preload_vm *vm = &preload.vms[i], gone;

		pthread_mutex_lock(&preload.lock);
		if (!vm->used || !vm->stale) {
			pthread_mutex_unlock(&preload.lock);
			continue;
		}
		gone = *vm;
		*vm = (struct preload_vm){ .vm_fd = -1, .stats_fd = -1, .sock = -1 };
		pthread_mutex_unlock(&preload.lock);

		if (gone.sock >= 0)
			close(gone.sock);
		if (gone.stats_fd >= 0)
			close(gone.stats_fd);
		for (size_t k = 0; k < gone.n_vcpus; k++)
			close(gone.vcpus[k].stats_fd);
		free(gone.vcpus);
	}
}

/*
 * 1 when /proc/self/fd/<fd> is the link given (or, for a prefix ending in
 * ':', starts with it), 0 when not or gone, -1 when unknown.
 */
static int fd_links_to(int fd, const char *want)
{
	char path[64], link[64];
	size_t n_want = strlen(want);
	ssize_t n;

	if (fd < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return errno == ENOENT ? 0 : -1;
	link[n] = '\0';
	if (want[n_want - 1] == ':')
		return strncmp(link, want, n_want) == 0;
	return strcmp(link, want) == 0;
}

/*
 * Marks stale the VMs of which the VMM closed the VM fd and every vCPU fd:
 * it destroyed them (QEMU never does; other VMMs may). A VM lives on while
 * any of those is open.
 */
static void check_liveness(void)
{
	static int fds[1 + PRELOAD_MAX_VCPUS];

	for (size_t i = 0; i < PRELOAD_MAX_VMS; i++) {
		struct preload_vm *vm = &preload.vms[i];
		unsigned number = 0;
		size_t n = 0;
		int alive = 0;

		pthread_mutex_lock(&preload.lock);
		if (vm->used && !vm->stale) {
			number = vm->number;
			fds[n++] = vm->vm_fd;
			for (size_t k = 0; k < vm->n_vcpus; k++)
				fds[n++] = vm->vcpus[k].fd;
		}
		pthread_mutex_unlock(&preload.lock);
		if (n == 0)
			continue;
		alive = fd_links_to(fds[0], "anon_inode:kvm-vm") != 0;
		for (size_t k = 1; k < n && !alive; k++)
			alive = fd_links_to(fds[k], "anon_inode:kvm-vcpu:") != 0;
		if (alive)
			continue;
		/* Only if the hook did not change the VM in the meantime. */
		pthread_mutex_lock(&preload.lock);
		if (vm->used && vm->number == number && vm->n_vcpus + 1 == n)
			vm->stale = true;
		pthread_mutex_unlock(&preload.lock);
	}
}

static void report_hook_failures(void)
{
	unsigned fresh;
	int err;

	pthread_mutex_lock(&preload.lock);
	fresh = preload.hook_failures & ~logged;
	err = preload.stats_fd_errno;
	pthread_mutex_unlock(&preload.lock);
	if (fresh & PRELOAD_FAIL_STATS_FD)
		fail_once(PRELOAD_FAIL_STATS_FD,
			  "KVM_GET_STATS_FD failed (%s): statistics of such VMs and vCPUs are not "
			  "available (Linux 5.14 or later is needed)",
			  strerror(err));
	if (fresh & PRELOAD_FAIL_LIMIT_VMS)
		fail_once(PRELOAD_FAIL_LIMIT_VMS,
			  "more than %d VMs in this process: later ones "
			  "are not handed off",
			  PRELOAD_MAX_VMS);
	if (fresh & PRELOAD_FAIL_LIMIT_VCPUS)
		fail_once(PRELOAD_FAIL_LIMIT_VCPUS,
			  "a VM has more than %d vCPUs: later ones are "
			  "not handed off",
			  PRELOAD_MAX_VCPUS);
	if (fresh & PRELOAD_FAIL_LIMIT_NOFILE)
		fail_once(PRELOAD_FAIL_LIMIT_NOFILE,
			  "close to the open file limit (RLIMIT_NOFILE): further stats fds are not "
			  "kept, so that the VMM keeps its fds for itself");
	if (fresh & PRELOAD_FAIL_NOMEM)
		fail_once(PRELOAD_FAIL_NOMEM, "out of memory: a stats fd was not kept");
}

/* Connects and registers vm (its VM stats fd, if any); its vCPUs follow in vm_send_pending. */
static void vm_register(struct preload_vm *vm, uint64_t now)
{
	char msg[MSG_BUF_SIZE], error[ERROR_TEXT_SIZE], name[256];
	int role = HANDOFF_ROLE_VM, sock = -1, stats_fd, len, r;
	unsigned number;

	pthread_mutex_lock(&preload.lock);
	if (!vm->used || vm->stale || vm->sock >= 0 || now < vm->next_attempt ||
	    (vm->stats_fd < 0 && vm->n_vcpus == 0)) {
		pthread_mutex_unlock(&preload.lock);
		return;
	}
	stats_fd = vm->stats_fd;
	number = vm->number;
	vm->next_attempt = now + PRELOAD_RETRY_MS;
	pthread_mutex_unlock(&preload.lock);

	r = handoff_connect(&sock);
	if (r < 0) {
		fail_once(PRELOAD_FAIL_CONNECT,
			  "cannot connect to the exporter's hand-off socket %s (%s); trying again "
			  "every second",
			  preload.socket_path, strerror(-r));
		return;
	}
	identity_load();
	vm_name(number, name, sizeof(name));
	len = handoff_build_register(msg, sizeof(msg), name, vm_uuid, &role, stats_fd >= 0);
	r = len < 0 ? len
		    : handoff_exchange(sock, msg, (size_t)len, &stats_fd, stats_fd >= 0, error,
				       sizeof(error));
	if (r <= 0) {
		close(sock);
		if (r < 0) {
			fail_once(PRELOAD_FAIL_LOST,
				  "hand-off to %s failed (%s); registering again every second",
				  preload.socket_path, io_error_text(r));
			return;
		}
		pthread_mutex_lock(&preload.lock);
		vm->backoff_ms = vm->backoff_ms ? vm->backoff_ms * 2 : PRELOAD_RETRY_MS;
		if (vm->backoff_ms > PRELOAD_REFUSED_MAX_MS)
			vm->backoff_ms = PRELOAD_REFUSED_MAX_MS;
		vm->next_attempt = now + vm->backoff_ms;
		pthread_mutex_unlock(&preload.lock);
		fail_once(PRELOAD_FAIL_REFUSED,
			  "the exporter refused VM \"%s\": %s; trying again at most every %d s",
			  name, error, PRELOAD_REFUSED_MAX_MS / 1000);
		return;
	}

	pthread_mutex_lock(&preload.lock);
	vm->sock = sock;
	vm->backoff_ms = 0;
	if (stats_fd >= 0)
		vm->stats_state = PRELOAD_FD_SENT;
	pthread_mutex_unlock(&preload.lock);
	if (logged & PRELOAD_FAIL_CONNECTION) {
		preload_log("handed off VM \"%s\" to %s", name, preload.socket_path);
		logged &= ~(unsigned)PRELOAD_FAIL_CONNECTION;
	}
}

/* Sends vm's pending vCPU stats fds in batches, each answered before the next. */
static void vm_send_pending(struct preload_vm *vm)
{
	for (;;) {
		int roles[HANDOFF_MAX_FDS_PER_MSG], fds[HANDOFF_MAX_FDS_PER_MSG];
		size_t idx[HANDOFF_MAX_FDS_PER_MSG], n = 0;
		char msg[MSG_BUF_SIZE], error[ERROR_TEXT_SIZE];
		int sock, len, r;

		pthread_mutex_lock(&preload.lock);
		sock = vm->used && !vm->stale ? vm->sock : -1;
		for (size_t k = 0; sock >= 0 && k < vm->n_vcpus && n < HANDOFF_MAX_FDS_PER_MSG;
		     k++) {
			if (vm->vcpus[k].state != PRELOAD_FD_PENDING)
				continue;
			roles[n] = vm->vcpus[k].id;
			fds[n] = vm->vcpus[k].stats_fd;
			idx[n++] = k;
		}
		pthread_mutex_unlock(&preload.lock);
		if (n == 0)
			return;

		len = handoff_build_add(msg, sizeof(msg), roles, n);
		r = len < 0 ? len
			    : handoff_exchange(sock, msg, (size_t)len, fds, n, error,
					       sizeof(error));
		if (r < 0) {
			vm_disconnect(vm, r);
			return;
		}
		pthread_mutex_lock(&preload.lock);
		for (size_t j = 0; j < n; j++)
			vm->vcpus[idx[j]].state = r ? PRELOAD_FD_SENT : PRELOAD_FD_REFUSED;
		pthread_mutex_unlock(&preload.lock);
		if (!r)
			fail_once(PRELOAD_FAIL_REFUSED_FDS,
				  "the exporter refused %zu vCPU stats fds: %s", n, error);
	}
}

/*
 * Says which thread runs each vCPU whose stats fd the exporter holds, once
 * per thread and connection. An exporter that refuses the message predates
 * it: then it is not sent again on that connection.
 */
static void vm_send_threads(struct preload_vm *vm)
{
	int vcpus[HANDOFF_MAX_FDS_PER_MSG], tids[HANDOFF_MAX_FDS_PER_MSG];
	size_t idx[HANDOFF_MAX_FDS_PER_MSG], n = 0;
	char msg[MSG_BUF_SIZE], error[ERROR_TEXT_SIZE];
	int sock, len, r;

	pthread_mutex_lock(&preload.lock);
	sock = vm->used && !vm->stale && !vm->threads_refused ? vm->sock : -1;
	for (size_t k = 0; sock >= 0 && k < vm->n_vcpus && n < HANDOFF_MAX_FDS_PER_MSG; k++) {
		const struct preload_vcpu *v = &vm->vcpus[k];

		if (v->state != PRELOAD_FD_SENT || v->run_tid <= 0 ||
		    v->tid_state != PRELOAD_FD_PENDING)
			continue;
		vcpus[n] = v->id;
		tids[n] = v->run_tid;
		idx[n++] = k;
	}
	pthread_mutex_unlock(&preload.lock);
	if (n == 0)
		return;

	len = handoff_build_threads(msg, sizeof(msg), vcpus, tids, n);
	r = len < 0 ? len : handoff_exchange(sock, msg, (size_t)len, NULL, 0, error, sizeof(error));
	if (r < 0) {
		vm_disconnect(vm, r);
		return;
	}
	pthread_mutex_lock(&preload.lock);
	for (size_t j = 0; j < n; j++)
		if (vm->vcpus[idx[j]].run_tid == tids[j])
			vm->vcpus[idx[j]].tid_state = r ? PRELOAD_FD_SENT : PRELOAD_FD_REFUSED;
	if (!r)
		vm->threads_refused = true;
	pthread_mutex_unlock(&preload.lock);
}

/* Sleeps until the hook queues fds, a connection closes, or a retry is due. */
static void wait_for_work(uint64_t next_liveness)
{
	struct pollfd pfd[1 + PRELOAD_MAX_VMS];
	struct preload_vm *owner[1 + PRELOAD_MAX_VMS];
	uint64_t due = UINT64_MAX, now;
	size_t n = 1;
	int timeout = -1;

	pthread_mutex_lock(&preload.lock);
	pfd[0] = (struct pollfd){ .fd = preload.efd, .events = POLLIN };
	for (size_t i = 0; i < PRELOAD_MAX_VMS; i++) {
		struct preload_vm *vm = &preload.vms[i];

		if (!vm->used)
			continue;
		if (liveness_possible && next_liveness < due)
			due = next_liveness;
		if (vm->sock >= 0) {
			owner[n] = vm;
			pfd[n++] = (struct pollfd){ .fd = vm->sock, .events = POLLIN };
		} else if (preload.socket_path[0] && (vm->stats_fd >= 0 || vm->n_vcpus > 0) &&
			   vm->next_attempt < due) {
			due = vm->next_attempt;
		}
	}
	pthread_mutex_unlock(&preload.lock);

	now = monotonic_msec();
	if (due != UINT64_MAX)
		timeout = due <= now ? 0 : due - now > INT_MAX ? INT_MAX : (int)(due - now);
	if (poll(pfd, n, timeout) <= 0)
		return;
	if (pfd[0].revents & POLLIN) {
		uint64_t count;

		if (read(preload.efd, &count, sizeof(count)) < 0) {
			/* EAGAIN: someone else's wake-up was already consumed */
		}
	}
	for (size_t i = 1; i < n; i++) {
		char junk[256];
		size_t len;
		int r;

		if (!pfd[i].revents)
			continue;
		/* The exporter speaks only when asked: this is the end of the connection. */
		r = handoff_recv(pfd[i].fd, MSG_DONTWAIT, junk, sizeof(junk), &len);
		if (r < 0 && r != -ETIMEDOUT)
			vm_disconnect(owner[i], r);
	}
}

static void *handoff_main(void *unused)
{
	uint64_t next_liveness;

	(void)unused;
	pthread_setname_np(pthread_self(), "kvmstats-shim");
	liveness_possible = access("/proc/self/fd", X_OK) == 0;
	next_liveness = monotonic_msec() + PRELOAD_LIVENESS_MS;
	for (;;) {
		uint64_t now = monotonic_msec();

		if (liveness_possible && now >= next_liveness) {
			check_liveness();
			next_liveness = now + PRELOAD_LIVENESS_MS;
		}
		retire_stale();
		report_hook_failures();
		for (size_t i = 0; preload.socket_path[0] && i < PRELOAD_MAX_VMS; i++) {
			vm_register(&preload.vms[i], monotonic_msec());
			vm_send_pending(&preload.vms[i]);
			vm_send_threads(&preload.vms[i]);
		}
		wait_for_work(next_liveness);
	}
	return NULL;
}

int preload_thread_start(void)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t thread;
	int r;

	r = pthread_attr_init(&attr);
	if (r)
		return -r;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
	/* The VMM's signals (QEMU's SIGIPI, SIGALRM...) are not for this thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&thread, &attr, handoff_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return -r;
}
