/* SPDX-License-Identifier: MIT */
/* Strict parsers for the /proc/PID/task/TID files the vCPU thread mapping reads. */
#include <errno.h>
#include <string.h>

#include "util/taskfiles.h"

/* A cursor over bytes that are not NUL-terminated. */
struct cursor {
	const char *p, *end;
};

static bool take_char(struct cursor *c, char ch)
{
	if (c->p == c->end || *c->p != ch)
		return false;
	c->p++;
	return true;
}

/* One or more digits of the radix (10 or 16), without overflow. */
static bool take_u64(struct cursor *c, unsigned radix, uint64_t *ret)
{
	uint64_t v = 0;
	const char *start = c->p;

	for (; c->p < c->end; c->p++) {
		unsigned d;
		char ch = *c->p;

		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (radix == 16 && ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else
			break;
		if (v > (UINT64_MAX - d) / radix)
			return false;
		v = v * radix + d;
	}
	if (c->p == start)
		return false;
	*ret = v;
	return true;
}

static bool take_hex(struct cursor *c, uint64_t *ret)
{
	return take_char(c, '0') && take_char(c, 'x') && take_u64(c, 16, ret);
}

/* The line ends here: a newline, then nothing. */
static bool at_line_end(struct cursor *c)
{
	return take_char(c, '\n') && c->p == c->end;
}

int schedstat_parse(const char *buf, size_t len, struct schedstat *ret)
{
	struct cursor c = { buf, buf + len };
	struct schedstat s;

	if (!take_u64(&c, 10, &s.cpu_ns) || !take_char(&c, ' ') ||
	    !take_u64(&c, 10, &s.run_delay_ns) || !take_char(&c, ' ') ||
	    !take_u64(&c, 10, &s.timeslices) || !at_line_end(&c))
		return -EBADMSG;
	*ret = s;
	return 0;
}

int task_syscall_parse(const char *buf, size_t len, struct task_syscall *ret)
{
	static const char running[] = "running\n";
	struct cursor c = { buf, buf + len };
	struct task_syscall s = { .state = TASK_SYSCALL_IN_CALL };
	uint64_t nr, ignored;

	if (len == sizeof(running) - 1 && memcmp(buf, running, len) == 0) {
		*ret = (struct task_syscall){ .state = TASK_SYSCALL_RUNNING, .nr = -1 };
		return 0;
	}
	if (take_char(&c, '-')) {
		/* Not in a system call: "-1 0x<sp> 0x<pc>". */
		if (!take_char(&c, '1') || !take_char(&c, ' ') || !take_hex(&c, &ignored) ||
		    !take_char(&c, ' ') || !take_hex(&c, &ignored) || !at_line_end(&c))
			return -EBADMSG;
		*ret = (struct task_syscall){ .state = TASK_SYSCALL_USER, .nr = -1 };
		return 0;
	}
	if (!take_u64(&c, 10, &nr) || nr > 1000000)
		return -EBADMSG;
	s.nr = (long)nr;
	for (unsigned i = 0; i < 6; i++)
		if (!take_char(&c, ' ') || !take_hex(&c, &s.args[i]))
			return -EBADMSG;
	/* Then the stack and instruction pointers. */
	for (unsigned i = 0; i < 2; i++)
		if (!take_char(&c, ' ') || !take_hex(&c, &ignored))
			return -EBADMSG;
	if (!at_line_end(&c))
		return -EBADMSG;
	*ret = s;
	return 0;
}

int task_stat_flags(const char *buf, size_t len, uint64_t *ret)
{
	const char *close = NULL;
	struct cursor c;
	uint64_t flags;

	for (size_t i = len; i-- > 0;)
		if (buf[i] == ')') {
			close = buf + i;
			break;
		}
	if (!close)
		return -EBADMSG;
	c = (struct cursor){ close + 1, buf + len };
	/* ") S ppid pgrp session tty_nr tpgid flags": skip the state and five numbers. */
	if (!take_char(&c, ' ') || c.p == c.end || *c.p == ' ')
		return -EBADMSG;
	c.p++;
	for (unsigned i = 0; i < 5; i++) {
		uint64_t ignored;

		if (!take_char(&c, ' '))
			return -EBADMSG;
		(void)take_char(&c, '-'); /* tty_nr and tpgid may be -1 */
		if (!take_u64(&c, 10, &ignored))
			return -EBADMSG;
	}
	if (!take_char(&c, ' ') || !take_u64(&c, 10, &flags) || !take_char(&c, ' '))
		return -EBADMSG;
	*ret = flags;
	return 0;
}

/* A small decimal index without sign or leading zeros, the whole of [p, end). */
static int parse_index(const char *p, const char *end)
{
	struct cursor c = { p, end };
	uint64_t v;

	if (p == end || (*p == '0' && end - p > 1) || !take_u64(&c, 10, &v) || c.p != end ||
	    v > 0x7fffffff)
		return -1;
	return (int)v;
}

int kvm_vcpu_link_index(const char *link)
{
	static const char prefix[] = "anon_inode:kvm-vcpu:";

	if (strncmp(link, prefix, sizeof(prefix) - 1) != 0)
		return -1;
	link += sizeof(prefix) - 1;
	return parse_index(link, link + strlen(link));
}

int qemu_vcpu_thread_index(const char *comm, size_t len)
{
	static const char suffix[] = "/KVM";

	if (len > 0 && comm[len - 1] == '\n')
		len--;
	if (len < 4 + sizeof(suffix) || memcmp(comm, "CPU ", 4) != 0 ||
	    memcmp(comm + len - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1) != 0)
		return -1;
	return parse_index(comm + 4, comm + len - (sizeof(suffix) - 1));
}

long kvm_stats_id_creator(const char *id)
{
	const char *slash;
	int tid;

	if (strncmp(id, "kvm-", 4) != 0 || !(slash = strchr(id, '/')) ||
	    strncmp(slash, "/vcpu-", 6) != 0)
		return -1;
	tid = parse_index(id + 4, slash);
	return tid > 0 ? tid : -1;
}
