/* SPDX-License-Identifier: MIT */
/*
 * sdnotify over libsystemd: messages as a datagram socket (abstract and path)
 * receives them, the watchdog variables and timer, and $LISTEN_* parsing with
 * real sockets placed at fd 3 and up, as systemd places them. The exact errno
 * for a malformed variable is libsystemd's; what matters here is that it is
 * refused and that our own policy (status sanitising, bounds) holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "systemd/sdnotify.h"

static void env_clear(void)
{
	static const char *const vars[] = { "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
					    "LISTEN_FDS",    "LISTEN_PID",    "LISTEN_FDNAMES" };

	for (size_t i = 0; i < ELEMENTSOF(vars); i++)
		unsetenv(vars[i]);
}

static int setup(void **state)
{
	(void)state;
	env_clear();
	return 0;
}

/* A datagram socket bound to a fresh abstract name, exported as $NOTIFY_SOCKET. */
static int receiver_abstract(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char name[64];
	int fd, n;

	n = snprintf(name, sizeof(name), "@kvmstats-sdnotify-test-%d-%d", (int)getpid(), rand());
	memcpy(sa.sun_path, name, (size_t)n);
	sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n)),
			 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
	return fd;
}

/* The next message, NUL-terminated; "" when none is waiting. */
static const char *receive(int fd, char *buf, size_t len)
{
	ssize_t k = recv(fd, buf, len - 1, MSG_DONTWAIT);

	if (k < 0) {
		assert_int_equal(errno, EAGAIN);
		k = 0;
	}
	buf[k] = '\0';
	return buf;
}

static void test_unset_is_noop(void **state)
{
	(void)state;
	assert_int_equal(sdnotify_ready("ready"), 0);
	assert_int_equal(sdnotify_status("%d VMs", 3), 0);
	assert_int_equal(sdnotify_watchdog_ping(), 0);
	assert_int_equal(sdnotify_stopping(NULL), 0);
}

static void test_abstract_messages(void **state)
{
	char buf[2048];
	int fd = receiver_abstract();

	(void)state;
	assert_int_equal(sdnotify_ready(NULL), 1);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "READY=1");
	/* A newline in a status must not smuggle in a second assignment. */
	assert_int_equal(sdnotify_ready("serving\nREADY=1\r"), 1);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "READY=1\nSTATUS=serving READY=1 ");
	assert_int_equal(sdnotify_status("%zu VMs, %s", (size_t)4, "procfs on"), 1);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "STATUS=4 VMs, procfs on");
	assert_int_equal(sdnotify_watchdog_ping(), 1);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "WATCHDOG=1");
	assert_int_equal(sdnotify_stopping("draining"), 1);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "STOPPING=1\nSTATUS=draining");
	assert_int_equal(sdnotify_send("RELOADING=1"), 1);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "RELOADING=1");
	assert_string_equal(receive(fd, buf, sizeof(buf)), "");
	close(fd);
}

static void test_path_socket(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/sdnotify-test-XXXXXX", buf[256];
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	assert_int_equal(sdnotify_ready("up"), 1);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "READY=1\nSTATUS=up");
	/* Nobody listening any more, then no socket at all. */
	close(fd);
	assert_int_equal(sdnotify_watchdog_ping(), -ECONNREFUSED);
	unlink(sa.sun_path);
	assert_int_equal(sdnotify_watchdog_ping(), -ENOENT);
	rmdir(dir);
}

static void test_bad_addresses(void **state)
{
	static const char *const bad[] = { "", "@", "relative/path", "vsock:2:1234" };
	char long_path[200];

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		setenv("NOTIFY_SOCKET", bad[i], 1);
		assert_true(sdnotify_ready(NULL) < 0);
	}
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	setenv("NOTIFY_SOCKET", long_path, 1);
	assert_true(sdnotify_ready(NULL) < 0);
	assert_int_equal(sdnotify_send(NULL), -EINVAL);
}

static void test_status_too_long(void **state)
{
	char big[SDNOTIFY_STATUS_MAX + 2], buf[SDNOTIFY_STATUS_MAX + 64];
	int fd = receiver_abstract();

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(sdnotify_ready(big), -EMSGSIZE);
	assert_int_equal(sdnotify_status("%s", big), -EMSGSIZE);
	big[SDNOTIFY_STATUS_MAX] = '\0'; /* exactly the maximum */
	assert_int_equal(sdnotify_status("%s", big), 1);
	assert_int_equal(strlen(receive(fd, buf, sizeof(buf))), 7 + SDNOTIFY_STATUS_MAX);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "");
	close(fd);
}

static void test_watchdog_usec(void **state)
{
	char pid[32];
	uint64_t usec = 42;

	(void)state;
	assert_int_equal(sdnotify_watchdog_usec(&usec), 0);
	assert_int_equal(usec, 0);

	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(sdnotify_watchdog_usec(&usec), 1);
	assert_int_equal(usec, 30000000);

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sdnotify_watchdog_usec(&usec), 1);
	assert_int_equal(usec, 30000000);

	/* The watchdog belongs to another process (e.g. a wrapper that forked us). */
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sdnotify_watchdog_usec(&usec), 0);
	assert_int_equal(usec, 0);

	setenv("WATCHDOG_PID", "12x", 1);
	assert_true(sdnotify_watchdog_usec(&usec) < 0);
	setenv("WATCHDOG_PID", "0", 1);
	assert_true(sdnotify_watchdog_usec(&usec) < 0);
	unsetenv("WATCHDOG_PID");

	static const char *const bad[] = { "", "0", "-5", "5s", "99999999999999999999999" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		assert_true(sdnotify_watchdog_usec(&usec) < 0);
		assert_int_equal(usec, 0);
	}
}

static bool healthy_flag(void *userdata)
{
	return *(bool *)userdata;
}

static void wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	assert_int_equal(poll(&p, 1, 5000), 1);
}

static void test_watchdog_timer(void **state)
{
	struct sdnotify_watchdog *w = NULL;
	bool healthy = true;
	char buf[64], pid[32];
	int fd;

	(void)state;
	assert_int_equal(sdnotify_watchdog_new(healthy_flag, &healthy, &w), 0);
	assert_null(w);
	assert_int_equal(sdnotify_watchdog_fd(NULL), -1);
	w = sdnotify_watchdog_free(NULL);

	/* Another process's watchdog: no timer. */
	setenv("WATCHDOG_USEC", "20000", 1);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sdnotify_watchdog_new(healthy_flag, &healthy, &w), 0);
	assert_null(w);

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	fd = receiver_abstract();
	assert_int_equal(sdnotify_watchdog_new(healthy_flag, &healthy, &w), 1);
	assert_non_null(w);
	assert_true(fcntl(sdnotify_watchdog_fd(w), F_GETFD) & FD_CLOEXEC);

	/* Not due yet: nothing to read, nothing sent. */
	assert_int_equal(sdnotify_watchdog_dispatch(w), 0);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "");

	wait_readable(sdnotify_watchdog_fd(w));
	assert_int_equal(sdnotify_watchdog_dispatch(w), 1);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "WATCHDOG=1");

	/* Unhealthy: the timer keeps running, the ping is withheld. */
	healthy = false;
	wait_readable(sdnotify_watchdog_fd(w));
	assert_int_equal(sdnotify_watchdog_dispatch(w), 0);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "");

	healthy = true;
	wait_readable(sdnotify_watchdog_fd(w));
	assert_int_equal(sdnotify_watchdog_dispatch(w), 1);
	assert_string_equal(receive(fd, buf, sizeof(buf)), "WATCHDOG=1");

	w = sdnotify_watchdog_free(w);
	assert_null(w);
	close(fd);
	assert_int_equal(sdnotify_watchdog_dispatch(NULL), -EINVAL);
}

/* --- socket activation ------------------------------------------------------------------ */

static int tcp_listener(bool do_listen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static int seqpacket_listener(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0), n;

	/* Autobind would also do; a named abstract socket is closer to the real one. */
	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "@kvmstats-handoff-test-%d", (int)getpid());
	sa.sun_path[0] = '\0';
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n)),
			 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* Puts fd at exactly `at` (closing what was there), as systemd passes fds from 3 on. */
static void place_fd(int fd, int at)
{
	assert_true(fd >= 0);
	if (fd == at)
		return;
	assert_int_equal(dup2(fd, at), at);
	close(fd);
}

static bool is_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	assert_true(flags >= 0);
	return flags & FD_CLOEXEC;
}

static void set_listen_env(const char *pid, const char *n, const char *names)
{
	char own[32];

	if (!pid) {
		snprintf(own, sizeof(own), "%d", (int)getpid());
		pid = own;
	}
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", n, 1);
	if (names)
		setenv("LISTEN_FDNAMES", names, 1);
	else
		unsetenv("LISTEN_FDNAMES");
}

static void assert_listen_env_gone(void)
{
	assert_null(getenv("LISTEN_PID"));
	assert_null(getenv("LISTEN_FDS"));
	assert_null(getenv("LISTEN_FDNAMES"));
}

static void test_listen_fds_named(void **state)
{
	struct sdnotify_fds set;
	int *web = NULL;
	size_t n_web = 0;

	(void)state;
	place_fd(tcp_listener(true), 3);
	place_fd(seqpacket_listener(), 4);
	place_fd(tcp_listener(true), 5);
	set_listen_env(NULL, "3", "kvmstats_exporter.socket:handoff:web2");

	assert_int_equal(sdnotify_listen_fds(true, &set), 3);
	assert_listen_env_gone();
	assert_int_equal(set.n, 3);
	assert_string_equal(set.names[0], "kvmstats_exporter.socket");
	assert_string_equal(set.names[1], "handoff");
	assert_string_equal(set.names[2], "web2");
	for (int fd = 3; fd <= 5; fd++)
		assert_true(is_cloexec(fd));
	assert_true(sdnotify_is_listening_socket(4, SOCK_SEQPACKET));
	assert_false(sdnotify_is_listening_socket(4, SOCK_STREAM));
	/* The hand-off socket must be a unix socket of the right type, or it is not taken. */
	assert_int_equal(sdnotify_fds_take_unix_listener(&set, "web2", SOCK_STREAM), -EPROTOTYPE);
	assert_int_equal(sdnotify_fds_take_unix_listener(&set, "handoff", SOCK_STREAM),
			 -EPROTOTYPE);
	assert_int_equal(sdnotify_fds_take_unix_listener(&set, "nosuch", SOCK_STREAM), -ENOENT);
	assert_int_equal(set.fds[1], 4);

	assert_int_equal(sdnotify_fds_take_stream_listeners(&set, "handoff", &web, &n_web), 0);
	assert_int_equal(n_web, 2);
	assert_int_equal(web[0], 3);
	assert_int_equal(web[1], 5);
	assert_int_equal(set.fds[0], -1);
	assert_int_equal(set.fds[2], -1);

	assert_int_equal(sdnotify_fds_take_unix_listener(&set, "handoff", SOCK_SEQPACKET), 4);
	assert_int_equal(sdnotify_fds_take(&set, "handoff"), -ENOENT);
	assert_int_equal(sdnotify_fds_take(&set, "web2"), -ENOENT); /* already taken */

	sdnotify_fds_release(&set);
	assert_int_equal(set.n, 0);
	/* Taken fds are the caller's: release left them open. */
	assert_true(fcntl(3, F_GETFD) >= 0);
	assert_true(fcntl(4, F_GETFD) >= 0);
	close(3);
	close(4);
	close(5);
	free(web);
}

static void test_listen_fds_unnamed_and_skipped(void **state)
{
	struct sdnotify_fds set;
	int *web = NULL;
	size_t n_web = 42;

	(void)state;
	place_fd(tcp_listener(false), 3); /* bound, not listening */
	place_fd(socket(AF_INET, SOCK_DGRAM, 0), 4);
	set_listen_env(NULL, "2", NULL);

	assert_int_equal(sdnotify_listen_fds(false, &set), 2);
	assert_non_null(getenv("LISTEN_FDS")); /* kept on request */
	assert_string_equal(set.names[0], "unknown");
	assert_string_equal(set.names[1], "unknown");
	assert_int_equal(sdnotify_fds_take_stream_listeners(&set, NULL, &web, &n_web), 0);
	assert_null(web);
	assert_int_equal(n_web, 0);
	assert_int_equal(sdnotify_fds_take(&set, "unknown"), 3);
	close(3);
	/* Release closes what was not taken. */
	sdnotify_fds_release(&set);
	assert_int_equal(fcntl(4, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	sdnotify_fds_release(&set); /* twice is fine */
	sdnotify_fds_release(NULL);
}

static void test_listen_fds_not_ours(void **state)
{
	struct sdnotify_fds set;
	char pid[32];

	(void)state;
	place_fd(tcp_listener(true), 3);
	assert_false(is_cloexec(3));

	/* Inherited from a parent that was socket-activated: not for us, and not touched. */
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	set_listen_env(pid, "1", "web");
	assert_int_equal(sdnotify_listen_fds(true, &set), 0);
	assert_int_equal(set.n, 0);
	assert_listen_env_gone();
	assert_false(is_cloexec(3));

	/* No LISTEN_PID at all. */
	setenv("LISTEN_FDS", "1", 1);
	assert_int_equal(sdnotify_listen_fds(true, &set), 0);
	assert_listen_env_gone();

	/* Nothing set. */
	assert_int_equal(sdnotify_listen_fds(true, &set), 0);
	assert_false(is_cloexec(3));
	close(3);
}

static void test_listen_fds_malformed(void **state)
{
	static const struct {
		const char *pid, *n, *names;
	} cases[] = {
		{ "x", "1", NULL },
		{ "0", "1", NULL },
		{ NULL, "one", NULL },
		{ NULL, "-1", NULL },
		{ NULL, "0", NULL }, /* systemd never passes zero */
		{ NULL, "1 ", NULL },
		{ NULL, "5000", NULL },
		{ NULL, "99999999999999999999", NULL },
		{ NULL, "2", "web" },         /* fewer names than fds */
		{ NULL, "1", "web:handoff" }, /* more names than fds */
		{ NULL, "2", "web:handoff" }, /* fd 4 is not open */
	};
	struct sdnotify_fds set;

	(void)state;
	place_fd(tcp_listener(true), 3);
	close(4);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		set_listen_env(cases[i].pid, cases[i].n, cases[i].names);
		assert_true(sdnotify_listen_fds(true, &set) < 0);
		assert_int_equal(set.n, 0);
		assert_null(set.fds);
		assert_listen_env_gone();
	}
	/* A failed parse never closes fds it was not sure were ours. */
	assert_true(fcntl(3, F_GETFD) >= 0);
	close(3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_unset_is_noop, setup),
		cmocka_unit_test_setup(test_abstract_messages, setup),
		cmocka_unit_test_setup(test_path_socket, setup),
		cmocka_unit_test_setup(test_bad_addresses, setup),
		cmocka_unit_test_setup(test_status_too_long, setup),
		cmocka_unit_test_setup(test_watchdog_usec, setup),
		cmocka_unit_test_setup(test_watchdog_timer, setup),
		cmocka_unit_test_setup(test_listen_fds_named, setup),
		cmocka_unit_test_setup(test_listen_fds_unnamed_and_skipped, setup),
		cmocka_unit_test_setup(test_listen_fds_not_ours, setup),
		cmocka_unit_test_setup(test_listen_fds_malformed, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
