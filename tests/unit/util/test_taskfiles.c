/* SPDX-License-Identifier: MIT */
/* Parsers of the /proc/PID/task/TID files behind the vCPU thread mapping. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/taskfiles.h"

static int schedstat(const char *s, struct schedstat *ret)
{
	return schedstat_parse(s, strlen(s), ret);
}

static void test_schedstat(void **state)
{
	struct schedstat s = { 0 };

	(void)state;
	assert_int_equal(schedstat("1070911114 63367900 4646\n", &s), 0);
	assert_int_equal(s.cpu_ns, 1070911114);
	assert_int_equal(s.run_delay_ns, 63367900);
	assert_int_equal(s.timeslices, 4646);
	assert_int_equal(schedstat("0 0 0\n", &s), 0);
	assert_int_equal(schedstat("18446744073709551615 1 2\n", &s), 0);
	assert_true(s.cpu_ns == UINT64_MAX);
	assert_true(strlen("18446744073709551615 18446744073709551615 18446744073709551615\n") <=
		    SCHEDSTAT_MAX_LEN);

	/* Nothing but the exact line. */
	s = (struct schedstat){ .cpu_ns = 7 };
	assert_int_equal(schedstat("18446744073709551616 1 2\n", &s), -EBADMSG);
	assert_int_equal(s.cpu_ns, 7); /* untouched on failure */
	assert_int_equal(schedstat("1 2 3", &s), -EBADMSG);
	assert_int_equal(schedstat("1 2\n", &s), -EBADMSG);
	assert_int_equal(schedstat("1 2 3 4\n", &s), -EBADMSG);
	assert_int_equal(schedstat("1  2 3\n", &s), -EBADMSG);
	assert_int_equal(schedstat("-1 2 3\n", &s), -EBADMSG);
	assert_int_equal(schedstat("1 2 3\n\n", &s), -EBADMSG);
	assert_int_equal(schedstat("1 0x2 3\n", &s), -EBADMSG);
	assert_int_equal(schedstat("", &s), -EBADMSG);
	/* Not NUL-terminated: the length is the bound. */
	assert_int_equal(schedstat_parse("1 2 3\n9", 6, &s), 0);
	assert_int_equal(s.timeslices, 3);
}

static int task_syscall(const char *s, struct task_syscall *ret)
{
	return task_syscall_parse(s, strlen(s), ret);
}

static void test_syscall(void **state)
{
	struct task_syscall sc;

	(void)state;
	/* A vCPU thread blocked in ioctl(9, KVM_RUN, 0). */
	assert_int_equal(task_syscall("16 0x9 0xae80 0x0 0x0 0x7ffe03c43378 0x7ffe03c43398 "
				      "0x7ffe03c43300 0x7f1c685d22ec\n",
				      &sc),
			 0);
	assert_int_equal(sc.state, TASK_SYSCALL_IN_CALL);
	assert_int_equal(sc.nr, 16);
	assert_int_equal(sc.args[0], 9);
	assert_int_equal(sc.args[1], 0xae80);
	assert_true(sc.args[5] == UINT64_C(0x7ffe03c43398));
	assert_int_equal(task_syscall("running\n", &sc), 0);
	assert_int_equal(sc.state, TASK_SYSCALL_RUNNING);
	assert_int_equal(task_syscall("-1 0x7ffe03c426c0 0x7f1c685d22ec\n", &sc), 0);
	assert_int_equal(sc.state, TASK_SYSCALL_USER);

	assert_int_equal(task_syscall("running", &sc), -EBADMSG);
	assert_int_equal(task_syscall("runningx\n", &sc), -EBADMSG);
	assert_int_equal(task_syscall("16 0x9 0xae80 0x0 0x0 0x1 0x2 0x3\n", &sc), -EBADMSG);
	assert_int_equal(task_syscall("16 0x9 0xae80 0x0 0x0 0x1 0x2 0x3 0x4 0x5\n", &sc),
			 -EBADMSG);
	assert_int_equal(task_syscall("16 9 0xae80 0x0 0x0 0x1 0x2 0x3 0x4\n", &sc), -EBADMSG);
	assert_int_equal(task_syscall("16 0xAE80 0x0 0x0 0x0 0x1 0x2 0x3 0x4\n", &sc), -EBADMSG);
	assert_int_equal(task_syscall("16 0x10000000000000000 0x0 0x0 0x0 0x1 0x2 0x3 0x4\n", &sc),
			 -EBADMSG);
	assert_int_equal(task_syscall("-2 0x1 0x2\n", &sc), -EBADMSG);
	assert_int_equal(task_syscall("-1 0x1\n", &sc), -EBADMSG);
	assert_int_equal(task_syscall("", &sc), -EBADMSG);
}

static void test_stat_flags(void **state)
{
	static const char nx_worker[] =
		"4281 (kvm-nx-lpage-re) S 1 4270 4270 0 -1 4210752 0 0 0 0 0 0 0 0 20 0 5 0\n";
	/* A name may hold spaces and parentheses: only the last ')' ends it. */
	static const char tricky[] = "77 (a) b (c)) R 1 77 77 34816 -1 4194368 12 0 0\n";
	uint64_t flags = 0;

	(void)state;
	assert_int_equal(task_stat_flags(nx_worker, strlen(nx_worker), &flags), 0);
	assert_int_equal(flags, 4210752);
	assert_true(flags & TASK_PF_USER_WORKER);
	assert_int_equal(task_stat_flags(tricky, strlen(tricky), &flags), 0);
	assert_int_equal(flags, 4194368);
	assert_false(flags & (TASK_PF_USER_WORKER | TASK_PF_KTHREAD | TASK_PF_IO_WORKER));
	assert_int_equal(task_stat_flags("1 (x) S 1 2 3 4 5", 17, &flags), -EBADMSG);
	assert_int_equal(task_stat_flags("1 x S 1 2 3 4 5 6 ", 18, &flags), -EBADMSG);
	assert_int_equal(task_stat_flags("", 0, &flags), -EBADMSG);
}

static void test_names(void **state)
{
	(void)state;
	assert_int_equal(kvm_vcpu_link_index("anon_inode:kvm-vcpu:0"), 0);
	assert_int_equal(kvm_vcpu_link_index("anon_inode:kvm-vcpu:255"), 255);
	assert_int_equal(kvm_vcpu_link_index("anon_inode:kvm-vcpu-stats:1"), -1);
	assert_int_equal(kvm_vcpu_link_index("anon_inode:kvm-vcpu:01"), -1);
	assert_int_equal(kvm_vcpu_link_index("anon_inode:kvm-vcpu:"), -1);
	assert_int_equal(kvm_vcpu_link_index("anon_inode:kvm-vcpu:1x"), -1);
	assert_int_equal(kvm_vcpu_link_index("anon_inode:kvm-vcpu:99999999999"), -1);
	assert_int_equal(kvm_vcpu_link_index("/dev/kvm"), -1);

	assert_int_equal(qemu_vcpu_thread_index("CPU 0/KVM\n", 10), 0);
	assert_int_equal(qemu_vcpu_thread_index("CPU 12/KVM", 10), 12);
	assert_int_equal(qemu_vcpu_thread_index("CPU 1/TCG\n", 10), -1);
	assert_int_equal(qemu_vcpu_thread_index("CPU /KVM\n", 9), -1);
	assert_int_equal(qemu_vcpu_thread_index("CPU -1/KVM\n", 11), -1);
	assert_int_equal(qemu_vcpu_thread_index("XCPU 1/KVM", 10), -1);
	assert_int_equal(qemu_vcpu_thread_index("CPU 1/KVM", 5), -1);

	assert_int_equal(kvm_stats_id_creator("kvm-4279/vcpu-0"), 4279);
	assert_int_equal(kvm_stats_id_creator("kvm-4279"), -1);
	assert_int_equal(kvm_stats_id_creator("kvm-/vcpu-0"), -1);
	assert_int_equal(kvm_stats_id_creator("kvm-0/vcpu-0"), -1);
	assert_int_equal(kvm_stats_id_creator("kvm-12x/vcpu-0"), -1);
	assert_int_equal(kvm_stats_id_creator("kvm-12/vm"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schedstat),
		cmocka_unit_test(test_syscall),
		cmocka_unit_test(test_stat_flags),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
