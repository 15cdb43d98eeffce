/* SPDX-License-Identifier: MIT */
/*
 * procfs_quiet: a process's CPU clock stands still while it sleeps and moves
 * when it runs (what lets a rescan skip it), a gone process is -ESRCH, and the
 * list finds an entry only by pid and exactly the same CPU time.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sources/procfs_quiet.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static pid_t child(int spin)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		volatile uint64_t x = 0;

		/* A failed assertion skips reap(): never outlive the test, nor hold its output. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		(void)!freopen("/dev/null", "w", stdout);
		(void)!freopen("/dev/null", "w", stderr);
		/*
		 * A sleeping process of our own would not be quiet under a sanitizer,
		 * whose runtime thread wakes now and then (ThreadSanitizer's does):
		 * sleep in a plain program instead.
		 */
		if (!spin) {
			execl("/bin/sleep", "sleep", "3600", (char *)NULL);
			_exit(127);
		}
		for (;;)
			x++;
	}
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

static void test_sleeping_process_stands_still(void **state)
{
	pid_t pid = child(0);
	uint64_t a, b;

	(void)state;
	sleep_ms(100); /* let it exec and go to sleep */
	assert_int_equal(procfs_process_cpu_ns(pid, &a), 0);
	sleep_ms(100);
	assert_int_equal(procfs_process_cpu_ns(pid, &b), 0);
	assert_true(a > 0);
	assert_true(a == b);
	reap(pid);
}

static void test_running_process_moves(void **state)
{
	pid_t pid = child(1);
	uint64_t a, b;

	(void)state;
	assert_int_equal(procfs_process_cpu_ns(pid, &a), 0);
	sleep_ms(100);
	assert_int_equal(procfs_process_cpu_ns(pid, &b), 0);
	assert_true(b > a);
	reap(pid);
}

static void test_gone_process(void **state)
{
	pid_t pid = child(0);
	uint64_t ns = 12345;

	(void)state;
	reap(pid);
	assert_int_equal(procfs_process_cpu_ns(pid, &ns), -ESRCH);
	assert_true(ns == 12345); /* not written on failure */
	assert_int_equal(procfs_process_cpu_ns(0, &ns), -EINVAL);
}

static void test_list(void **state)
{
	struct procfs_quiet_list l = { 0 };
	const struct procfs_quiet *q;

	(void)state;
	assert_null(procfs_quiet_find(&l, 7, 1));
	/* More than the first allocation, out of order. */
	for (pid_t pid = 1000; pid > 0; pid--)
		assert_true(procfs_quiet_add(&l, pid, pid % 2 == 0, (uint64_t)pid * 10));
	procfs_quiet_finish(&l);
	q = procfs_quiet_find(&l, 500, 5000);
	assert_non_null(q);
	assert_int_equal(q->pid, 500);
	assert_true(q->vmm);
	q = procfs_quiet_find(&l, 501, 5010);
	assert_non_null(q);
	assert_false(q->vmm);
	assert_null(procfs_quiet_find(&l, 500, 5001));   /* it ran */
	assert_null(procfs_quiet_find(&l, 1001, 10010)); /* not seen */
	procfs_quiet_release(&l);
	assert_int_equal(l.n, 0);
	assert_null(procfs_quiet_find(&l, 500, 5000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sleeping_process_stands_still),
		cmocka_unit_test(test_running_process_moves),
		cmocka_unit_test(test_gone_process),
		cmocka_unit_test(test_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
