/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "macro.h"
#include "process_metrics.h"
#include "util/fileio.h"

/* /proc/self/net/netstat is a few KiB; stat and /proc/stat's head well under. */
#define PROC_READ_MAX 65536

/* dir/name, read whole (a /proc file: stat() says nothing of its size). */
static int read_proc(const char *dir, const char *name, char **ret)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return read_proc_file(path, PROC_READ_MAX, ret);
}

/* The next space-separated unsigned field at *p; false if there is none. */
static bool next_u64(const char **p, uint64_t *ret)
{
	char *end;

	while (**p == ' ')
		(*p)++;
	if (**p < '0' || **p > '9')
		return false;
	errno = 0;
	*ret = strtoull(*p, &end, 10);
	if (errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
		return false;
	*p = end;
	return true;
}

/* Skips n space-separated fields (of any content). */
static bool skip_fields(const char **p, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		while (**p == ' ')
			(*p)++;
		if (**p == '\0' || **p == '\n')
			return false;
		while (**p && **p != ' ' && **p != '\n')
			(*p)++;
	}
	return true;
}

int proc_stat_parse(const char *text, struct proc_stat *ret)
{
	/* The command is in parentheses and may contain anything: fields follow the last ')'. */
	const char *p = strrchr(text, ')');
	struct proc_stat st;

	/* After ')': state (3), ppid ... cutime (4-13), utime (14), stime (15). */
	if (!p || !(p++, skip_fields(&p, 11)) || !next_u64(&p, &st.utime) ||
	    !next_u64(&p, &st.stime) ||
	    /* cutime cstime priority nice num_threads itrealvalue (16-21), starttime (22) */
	    !skip_fields(&p, 6) || !next_u64(&p, &st.starttime) || !next_u64(&p, &st.vsize) ||
	    !next_u64(&p, &st.rss))
		return -EINVAL;
	*ret = st;
	return 0;
}

int proc_boot_time_parse(const char *text, uint64_t *ret)
{
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, "btime ", 6) == 0) {
			p += 5;
			return next_u64(&p, ret) ? 0 : -EINVAL;
		}
	}
	return -EINVAL;
}

int proc_netstat_octets(const char *text, uint64_t *ret_in, uint64_t *ret_out)
{
	const char *names = strstr(text, "IpExt: "), *values;
	bool have_in = false, have_out = false;

	if (!names)
		return -EINVAL;
	values = strstr(names + 1, "\nIpExt: ");
	if (!values)
		return -EINVAL;
	names += 7;
	values += 8;
	/* Names and values are in the same order, one space apart. */
	while (*names && *names != '\n') {
		size_t n = strcspn(names, " \n");
		uint64_t v;

		if (!next_u64(&values, &v))
			return -EINVAL;
		if (n == 8 && strncmp(names, "InOctets", 8) == 0)
			*ret_in = v, have_in = true;
		else if (n == 9 && strncmp(names, "OutOctets", 9) == 0)
			*ret_out = v, have_out = true;
		names += n;
		while (*names == ' ')
			names++;
	}
	return have_in && have_out ? 0 : -EINVAL;
}

size_t ticks_to_seconds(uint64_t ticks, long per_second, char *buf, size_t len)
{
	uint64_t scale = 1;
	unsigned digits = 0;
	int n;

	while (per_second > 0 && scale % (uint64_t)per_second != 0 && digits < 9)
		scale *= 10, digits++;
	if (per_second <= 0 || scale % (uint64_t)per_second != 0)
		n = snprintf(buf, len, "%.9g", per_second > 0 ? (double)ticks / per_second : 0.0);
	else if (digits == 0)
		n = snprintf(buf, len, "%" PRIu64, ticks / (uint64_t)per_second);
	else
		n = snprintf(buf, len, "%" PRIu64 ".%0*" PRIu64, ticks / (uint64_t)per_second,
			     (int)digits,
			     ticks % (uint64_t)per_second * (scale / (uint64_t)per_second));
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

int process_metrics_init(struct process_metrics *pm)
{
	_cleanup_free_ char *stat = NULL;
	int r;

	*pm = (struct process_metrics){ .proc_self = "/proc/self" };
	pm->ticks_per_second = sysconf(_SC_CLK_TCK);
	pm->page_size = sysconf(_SC_PAGESIZE);
	if (pm->ticks_per_second <= 0 || pm->page_size <= 0)
		return -EINVAL;
	r = read_proc("/proc", "stat", &stat);
	if (r < 0)
		return r;
	r = proc_boot_time_parse(stat, &pm->boot_time);
	pm->have_boot_time = r >= 0;
	return r;
}

/* Entries of /proc/self/fd (the directory's own fd included, as client_golang counts). */
static int count_fds(const char *proc_self, uint64_t *ret)
{
	char path[256];
	struct dirent *de;
	uint64_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/fd", proc_self);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	*ret = n;
	return 0;
}

static void write_seconds_text(struct family_writer *w, const char *family, enum family_type type,
			       const char *help, const char *text)
{
	family_begin(w, family, type, "seconds", help);
	family_sample(w, NULL);
	family_value_text(w, text, strlen(text));
}

void process_metrics_write(void *userdata, struct family_writer *w)
{
	const struct process_metrics *pm = userdata;
	_cleanup_free_ char *stat = NULL, *netstat = NULL;
	struct proc_stat st;
	struct rlimit rl;
	uint64_t fds = 0, in = 0, out = 0;
	char num[64];

	/* A /proc that cannot be read leaves the families out rather than reporting zeros. */
	if (read_proc(pm->proc_self, "stat", &stat) == 0 && proc_stat_parse(stat, &st) == 0) {
		ticks_to_seconds(st.utime + st.stime, pm->ticks_per_second, num, sizeof(num));
		write_seconds_text(w, "process_cpu_seconds", FAMILY_COUNTER,
				   "CPU time, user and system, this process has used.", num);
		family_write_u64(w, "process_resident_memory_bytes", FAMILY_GAUGE,
				 "Memory of this process resident in RAM.",
				 st.rss * (uint64_t)pm->page_size);
		family_write_u64(w, "process_virtual_memory_bytes", FAMILY_GAUGE,
				 "Virtual address space this process has mapped.", st.vsize);
		if (pm->have_boot_time) {
			/* boot time + start ticks: whole seconds plus the ticks' exact fraction. */
			uint64_t ticks =
				st.starttime + pm->boot_time * (uint64_t)pm->ticks_per_second;

			ticks_to_seconds(ticks, pm->ticks_per_second, num, sizeof(num));
			write_seconds_text(w, "process_start_time_seconds", FAMILY_GAUGE,
					   "When this process started, in seconds since the Unix "
					   "epoch.",
					   num);
		}
	}
	if (getrlimit(RLIMIT_AS, &rl) == 0)
		family_write_u64(w, "process_virtual_memory_max_bytes", FAMILY_GAUGE,
				 "Limit on the virtual address space (RLIMIT_AS soft limit; "
				 "2^64-1: none).",
				 (uint64_t)rl.rlim_cur);
	if (count_fds(pm->proc_self, &fds) == 0)
		family_write_u64(w, "process_open_fds", FAMILY_GAUGE,
				 "File descriptors this process holds open (one per held stats fd "
				 "among them).",
				 fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		family_write_u64(w, "process_max_fds", FAMILY_GAUGE,
				 "Limit on open file descriptors (RLIMIT_NOFILE soft limit).",
				 (uint64_t)rl.rlim_cur);
	if (read_proc(pm->proc_self, "net/netstat", &netstat) == 0 &&
	    proc_netstat_octets(netstat, &in, &out) == 0) {
		family_write_u64(w, "process_network_receive_bytes", FAMILY_COUNTER,
				 "Bytes received over the network in this process's network "
				 "namespace.",
				 in);
		family_write_u64(w, "process_network_transmit_bytes", FAMILY_COUNTER,
				 "Bytes sent over the network in this process's network namespace.",
				 out);
	}
}
