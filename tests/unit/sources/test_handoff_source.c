/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the hand-off socket's transport (sources/handoff.c) and the
 * procfs source's exit events, around one hazard of an epoll loop keyed by fd
 * numbers: epoll_wait() returns a batch of events; handling one may close an
 * fd (a rescan drops the VM of a process that exited, closing its pidfd) whose
 * event is still further down the batch, and accept() in between reuses the
 * number. The stale event then names a new connection or a new VM's pidfd;
 * neither may be dropped for it.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector.h"
#include "sources/handoff.h"
#include "sources/procfs.h"
#include "vm.h"

struct fixture {
	struct collector c;
	struct handoff_source *h;
	int epoll_fd;
	int listen_fd; /* passed in, as systemd would: its number is known here */
	char dir[64], path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint32_t uid;
	struct handoff_config cfg = { .max_connections = 4, .n_allow_uids = 1 };
	char why[256];

	if (!f || collector_init(&f->c, false) < 0)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/handoff-source-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/h.sock", f->dir);
	f->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	f->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	memcpy(sa.sun_path, f->path, strlen(f->path));
	if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(f->listen_fd, 8) < 0)
		return -1;
	uid = (uint32_t)getuid();
	cfg.path = f->path;
	cfg.listen_fd = f->listen_fd;
	cfg.allow_uids = &uid;
	if (f->epoll_fd < 0 ||
	    handoff_source_new(&f->c, f->epoll_fd, &cfg, &f->h, why, sizeof(why)) < 0) {
		fprintf(stderr, "handoff_source_new: %s\n", why);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	handoff_source_free(f->h);
	collector_release(&f->c);
	close(f->epoll_fd);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A pidfd of a child that exited and was reaped: readable, and it hangs up (kernel 6.x). */
static int reaped_pidfd(void)
{
	pid_t child = fork();
	int pidfd;

	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	pidfd = (int)syscall(SYS_pidfd_open, child, 0);
	if (pidfd < 0 && errno == ENOSYS) {
		/* valgrind before 3.20 does not know pidfd_open */
		waitpid(child, NULL, 0);
		printf("SKIP: pidfd_open(): %s\n", strerror(ENOSYS));
		skip();
	}
	assert_true(pidfd >= 0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	return pidfd;
}

/* The event epoll reports for fd, in a batch of its own. */
static uint32_t event_of(int epoll_fd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd }, got;

	assert_int_equal(epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev), 0);
	assert_int_equal(epoll_wait(epoll_fd, &got, 1, 1000), 1);
	assert_int_equal(got.data.fd, fd);
	return got.events;
}

static int peer_connect(const struct fixture *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	memcpy(sa.sun_path, f->path, strlen(f->path));
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return s;
}

/* Sends a message the exporter refuses (not JSON) and expects its answer, not a reset. */
static void assert_answered(int s, int stale_fd, struct fixture *f, uint32_t events)
{
	char buf[1024];
	struct pollfd p = { .fd = s, .events = POLLIN };
	ssize_t n;

	assert_int_equal(send(s, "not json", 8, 0), 8);
	/* The stale event: the number is the new connection's now (accept took the lowest). */
	if (!handoff_source_dispatch(f->h, stale_fd, events))
		fail_msg("fd %d is not the new connection: the number was not reused", stale_fd);
	assert_int_equal(poll(&p, 1, 1000), 1);
	n = recv(s, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	if (n < 0)
		fail_msg("no answer: %s (the connection was dropped for a stale event %#x)",
			 strerror(errno), events);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"ok\":false"));
}

static void stale_pidfd_event_on_a_new_connection(void **state)
{
	struct fixture *f = *state;
	int pidfd = reaped_pidfd();
	uint32_t events = event_of(f->epoll_fd, pidfd);
	int s;

	assert_true(events & EPOLLIN);
	s = peer_connect(f); /* a VMM connects, not accepted yet */
	/* A rescan drops the exited VMM's VM: its pidfd is closed, the event is still pending. */
	close(pidfd);
	assert_true(handoff_source_dispatch(f->h, f->listen_fd, EPOLLIN));
	/* accept() took the lowest free number: the pidfd's. */
	assert_answered(s, pidfd, f, events);
	/* Whatever the stale flags said, the peer stays connected and is served. */
	assert_answered(s, pidfd, f, EPOLLIN | EPOLLHUP);
	assert_answered(s, pidfd, f, EPOLLHUP | EPOLLRDHUP | EPOLLERR);
	close(s);
	/* A real hang-up still closes it: the number is not a connection any more. */
	assert_true(handoff_source_dispatch(f->h, pidfd, EPOLLIN | EPOLLRDHUP | EPOLLHUP));
	assert_false(handoff_source_dispatch(f->h, pidfd, EPOLLIN));
}

static void stale_exit_event_on_a_new_vm(void **state)
{
	struct fixture *f = *state;
	struct procfs_source p = { .collector = &f->c, .proc_root = "/proc", .epoll_fd = -1 };
	int old = reaped_pidfd();
	uint32_t events = event_of(f->epoll_fd, old);
	struct vm *vm = vm_new(VM_SOURCE_PROCFS);

	(void)events;
	close(old);
	/* A VM found in the same batch gets the number; its process is alive (us). */
	assert_non_null(vm);
	vm->pid = getpid();
	vm->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	assert_int_equal(vm->pidfd, old);
	vm->name = strdup("alive");
	assert_int_equal(collector_add_vm(&f->c, vm), 0);
	/* The stale exit event is still ours (true: keep watching) but removes nothing. */
	assert_true(procfs_vm_exited(&p, old));
	assert_int_equal(f->c.n_vms, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(stale_pidfd_event_on_a_new_connection, setup,
						teardown),
		cmocka_unit_test_setup_teardown(stale_exit_event_on_a_new_vm, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
