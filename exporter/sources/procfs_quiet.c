/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "sources/procfs_quiet.h"
#include "util/array.h"

int procfs_process_cpu_ns(pid_t pid, uint64_t *ret_ns)
{
	/* The kernel's MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED): ns-exact, no privilege needed.
	 */
	clockid_t clock = (clockid_t)((~(unsigned)pid << 3) | 2u);
	struct timespec ts;

	if (pid <= 0)
		return -EINVAL;
	if (clock_gettime(clock, &ts) < 0)
		return errno == EINVAL ? -ESRCH : -errno;
	*ret_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return 0;
}

bool procfs_quiet_add(struct procfs_quiet_list *l, pid_t pid, bool vmm, uint64_t cpu_ns)
{
	if (array_make_room((void **)&l->items, &l->cap, l->n, sizeof(*l->items), 256) < 0)
		return false;
	l->items[l->n++] = (struct procfs_quiet){ .pid = pid, .vmm = vmm, .cpu_ns = cpu_ns };
	return true;
}

static int quiet_cmp(const void *a, const void *b)
{
	const struct procfs_quiet *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

void procfs_quiet_finish(struct procfs_quiet_list *l)
{
	/* /proc lists pids in ascending order already, so this is one pass. */
	if (l->n > 1)
		qsort(l->items, l->n, sizeof(*l->items), quiet_cmp);
}

const struct procfs_quiet *procfs_quiet_find(const struct procfs_quiet_list *l, pid_t pid,
					     uint64_t cpu_ns)
{
	struct procfs_quiet key = { .pid = pid };
	const struct procfs_quiet *q;

	if (l->n == 0)
		return NULL;
	q = bsearch(&key, l->items, l->n, sizeof(key), quiet_cmp);
	return q && q->cpu_ns == cpu_ns ? q : NULL;
}

void procfs_quiet_release(struct procfs_quiet_list *l)
{
	free(l->items);
	*l = (struct procfs_quiet_list){ 0 };
}
