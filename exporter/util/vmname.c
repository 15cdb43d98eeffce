/* SPDX-License-Identifier: MIT */
/*
 * VM names from VMM command lines. QEMU (and libvirt, which drives it) says
 * `-name guest=NAME,debug-threads=on` or `-name NAME`, in QEMU's option
 * syntax where ",," is a literal comma; Firecracker says `--id NAME`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "util/fileio.h"
#include "util/vmname.h"

#define CMDLINE_MAX (64u * 1024)

void vm_identity_release(struct vm_identity *id)
{
	free(id->name);
	free(id->uuid);
	free(id->vmm);
	*id = (struct vm_identity){ 0 };
}

/*
 * Extracts the guest name from a QEMU -name argument: the first element
 * without '=' or the value of "guest=". Returns a new string or NULL.
 */
static char *qemu_name_option(const char *arg)
{
	_cleanup_free_ char *out = malloc(strlen(arg) + 1);
	const char *p = arg;

	if (!out)
		return NULL;
	for (bool first = true; *p; first = false) {
		size_t n = 0;
		bool has_eq = false;

		/* Unescape one element: ",," is a comma, a single ',' ends it. */
		while (*p) {
			if (*p == ',') {
				if (p[1] != ',')
					break;
				p++;
			} else if (*p == '=' && !has_eq) {
				has_eq = true;
			}
			out[n++] = *p++;
		}
		out[n] = '\0';
		if (*p == ',')
			p++;

		if (!has_eq && first)
			return n > 0 ? strdup(out) : NULL;
		if (strncmp(out, "guest=", 6) == 0)
			return out[6] ? strdup(out + 6) : NULL;
	}
	return NULL;
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static char *vmm_kind(const char *argv0)
{
	const char *base = basename_of(argv0);

	if (strstr(base, "qemu"))
		return strdup("qemu");
	if (strstr(base, "firecracker"))
		return strdup("firecracker");
	if (strstr(base, "crosvm"))
		return strdup("crosvm");
	if (strstr(base, "cloud-hypervisor"))
		return strdup("cloud-hypervisor");
	return strndup(base, 64);
}

/* Value of "-opt V", "-opt=V", "--opt V" or "--opt=V" at argv[i], or NULL. */
static const char *option_value(char **argv, int argc, int *i, const char *opt)
{
	const char *a = argv[*i];
	size_t n = strlen(opt);

	if (a[0] == '-' && a[1] == '-')
		a++;
	if (a[0] != '-' || strncmp(a + 1, opt, n) != 0)
		return NULL;
	if (a[1 + n] == '=')
		return a + 2 + n;
	if (a[1 + n] == '\0' && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

int vmname_parse_cmdline(const char *cmdline, size_t len, struct vm_identity *ret)
{
	_cleanup_free_ char **argv = NULL;
	struct vm_identity id = { 0 };
	int argc = 0;

	*ret = (struct vm_identity){ 0 };
	if (len == 0)
		return 0;
	argv = calloc(len + 1, sizeof(char *));
	if (!argv)
		return -ENOMEM;
	for (size_t off = 0; off < len; off += strnlen(cmdline + off, len - off) + 1)
		argv[argc++] = (char *)cmdline + off;

	/* The buffer must end in NUL for the strings above; callers guarantee it. */
	id.vmm = vmm_kind(argv[0]);
	if (!id.vmm)
		return -ENOMEM;
	bool qemu = strcmp(id.vmm, "qemu") == 0;
	bool firecracker = strcmp(id.vmm, "firecracker") == 0;

	for (int i = 1; i < argc; i++) {
		const char *v;

		if (qemu && (v = option_value(argv, argc, &i, "name"))) {
			free(id.name);
			id.name = qemu_name_option(v);
		} else if (qemu && (v = option_value(argv, argc, &i, "uuid"))) {
			free(id.uuid);
			id.uuid = strdup(v);
		} else if (firecracker && (v = option_value(argv, argc, &i, "id"))) {
			free(id.name);
			id.name = strdup(v);
		}
	}
	if (id.name && (id.name[0] == '\0' || strlen(id.name) > VMNAME_MAX)) {
		free(id.name);
		id.name = NULL;
	}
	if (id.uuid && strlen(id.uuid) > 64) {
		free(id.uuid);
		id.uuid = NULL;
	}
	*ret = id;
	return 0;
}

int vmname_from_pid(pid_t pid, struct vm_identity *ret)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -1;
	char path[64];
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(CMDLINE_MAX + 1);
	if (!buf)
		return -ENOMEM;
	r = read_fd_full(fd, buf, CMDLINE_MAX, &len);
	if (r < 0)
		return r;
	buf[len] = '\0';
	/* Drop the final NUL so that no empty trailing argument is seen. */
	if (len > 0 && buf[len - 1] == '\0')
		len--;
	return vmname_parse_cmdline(buf, len, ret);
}
