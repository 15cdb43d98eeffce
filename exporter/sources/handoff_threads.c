/* SPDX-License-Identifier: MIT */
/*
 * The "threads" message of the hand-off protocol (docs/handoff.md): a VMM
 * (or the shim in it) names the thread that runs each vCPU. Its word is
 * checked as far as the kernel allows without privilege: the thread must be
 * one of the peer process's (/proc/PID/task/TID), and the peer must share the
 * exporter's pid namespace, so that its thread ids mean the same here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "macro.h"
#include "sources/handoff_threads.h"
#include "util/fileio.h"

/* Where a refusal goes: the reason and the one-sentence why. */
struct refusal {
	enum handoff_reject *reason;
	char *why;
	size_t why_len;
};

_printf_(2, 3) static int refuse(const struct refusal *f, const char *fmt, ...)
{
	va_list ap;

	*f->reason = HANDOFF_REJECT_ROLE;
	va_start(ap, fmt);
	vsnprintf(f->why, f->why_len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/*
 * Whether the process is in the exporter's pid namespace: its status file's
 * NSpid line holds one id per namespace from ours down to its own.
 */
static bool same_pid_namespace(pid_t pid)
{
	_cleanup_free_ char *status = NULL;
	char path[64];
	const char *line;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_file_bounded(path, 65536, &status, &len) < 0)
		return false;
	line = strstr(status, "\nNSpid:");
	if (!line)
		return true; /* kernels before 4.1: no nested namespaces to tell */
	line += strlen("\nNSpid:");
	line += strspn(line, " \t");
	line += strcspn(line, " \t\n");
	return *line == '\n' || *line == '\0';
}

int handoff_apply_threads(struct collector *c, struct vm *vm, pid_t pid,
			  const struct handoff_msg *m, size_t n_fds,
			  enum handoff_reject *ret_reason, char *why, size_t why_len)
{
	const struct refusal f = { ret_reason, why, why_len };
	_cleanup_free_ int *files = NULL;
	_cleanup_free_ size_t *pos = NULL;
	size_t opened = 0;
	int r = 0;

	if (n_fds > 0)
		return refuse(&f, "%zu fds are attached to a \"threads\" message, which takes none",
			      n_fds);
	if (pid <= 0 || !same_pid_namespace(pid))
		return refuse(&f,
			      "thread ids cannot be checked: the peer is not in the exporter's pid "
			      "namespace");
	files = calloc(m->n_roles + 1, sizeof(*files));
	pos = calloc(m->n_roles + 1, sizeof(*pos));
	if (!files || !pos) {
		*ret_reason = HANDOFF_REJECT_BOUNDS;
		snprintf(why, why_len, "the exporter is out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->n_roles && r == 0; i++) {
		bool found = false;

		for (size_t j = 0; j < vm->n_vcpus && !found; j++)
			if (vm->vcpus[j].file->vcpu == m->roles[i]) {
				pos[i] = j;
				found = true;
			}
		for (size_t k = 0; k < i && r == 0; k++)
			if (m->tids[k] == m->tids[i])
				r = refuse(&f,
					   "\"threads\": thread %d is named for vCPUs %d and %d",
					   m->tids[i], m->roles[k], m->roles[i]);
		if (r < 0)
			break;
		if (!found) {
			r = refuse(&f, "\"threads\": the VM has no role \"vcpu:%d\"", m->roles[i]);
			break;
		}
		files[i] = vcpu_thread_open("/proc", pid, m->tids[i]);
		if (files[i] < 0) {
			r = refuse(&f,
				   "\"threads\".\"vcpu:%d\": %d is not a thread of the peer's "
				   "process",
				   m->roles[i], m->tids[i]);
			break;
		}
		opened++;
	}
	if (r < 0) {
		for (size_t i = 0; i < opened; i++)
			safe_close(files[i]);
		return r;
	}
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < m->n_roles; i++)
		vcpu_thread_assign(&vm->vcpus[pos[i]].thread, m->tids[i], files[i]);
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < m->n_roles; i++)
		log_debug("vCPU thread found", "vm=%s vcpu=%d tid=%d source=handoff", vm->name,
			  m->roles[i], m->tids[i]);
	return 0;
}
