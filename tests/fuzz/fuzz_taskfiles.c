/* SPDX-License-Identifier: MIT */
/*
 * The /proc/PID/task/TID parsers of the vCPU thread mapping. A VMM chooses
 * its threads' names, which appear in `comm` and inside `stat`; the other
 * files are the kernel's. Whatever the bytes: no read past them, and what is
 * accepted prints back to exactly the input.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "util/taskfiles.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so that ASan sees any read past the end. */
	char *buf = malloc(size ? size : 1);
	char *str = malloc(size + 1);
	char again[256];
	struct schedstat st;
	struct task_syscall sc;
	uint64_t flags;
	int n;

	if (!buf || !str)
		abort();
	memcpy(buf, data, size);
	memcpy(str, data, size);
	str[size] = '\0';

	if (schedstat_parse(buf, size, &st) == 0) {
		n = snprintf(again, sizeof(again), "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
			     st.cpu_ns, st.run_delay_ns, st.timeslices);
		/* Leading zeros are the one thing a reprint may drop. */
		CHECK((size_t)n <= size);
	}
	if (task_syscall_parse(buf, size, &sc) == 0)
		CHECK(sc.state != TASK_SYSCALL_IN_CALL || sc.nr >= 0);
	(void)task_stat_flags(buf, size, &flags);

	n = qemu_vcpu_thread_index(buf, size);
	if (n >= 0) {
		int m = snprintf(again, sizeof(again), "CPU %d/KVM", n);

		CHECK((size_t)m == size || ((size_t)m + 1 == size && buf[size - 1] == '\n'));
		CHECK(memcmp(again, buf, (size_t)m) == 0);
	}
	if (strlen(str) == size) {
		n = kvm_vcpu_link_index(str);
		if (n >= 0) {
			snprintf(again, sizeof(again), "anon_inode:kvm-vcpu:%d", n);
			CHECK(strcmp(again, str) == 0);
		}
		long tid = kvm_stats_id_creator(str);

		if (tid > 0) {
			snprintf(again, sizeof(again), "kvm-%ld/vcpu-", tid);
			CHECK(strncmp(again, str, strlen(again)) == 0);
		} else {
			CHECK(tid == -1);
		}
	}
	free(str);
	free(buf);
	return 0;
}
