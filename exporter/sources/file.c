/* SPDX-License-Identifier: MIT */
/* Saved stats blobs, read once at start-up exactly like a live fd's bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "sources/file.h"

static int read_all(const char *path, uint8_t **ret_buf, size_t *ret_len, char *errbuf,
		    size_t errlen)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len = 0;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(errbuf, errlen, "cannot read: %s", strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(errbuf, errlen, "not a regular file");
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > STATS_FILE_MAX) {
		snprintf(errbuf, errlen, "larger than %u bytes", STATS_FILE_MAX);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (len <= (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(errbuf, errlen, "cannot read: %s", strerror(errno));
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > (size_t)st.st_size) {
		snprintf(errbuf, errlen, "file grew while being read");
		return -EINVAL;
	}
	*ret_buf = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

int source_file_load(struct collector *c, const char *path, char *errbuf, size_t errlen)
{
	_cleanup_free_ uint8_t *buf = NULL;
	struct kvmstats_file *f = NULL;
	struct kvmstats_error err;
	struct vm *vm = NULL;
	size_t len = 0;
	pid_t id_pid;
	int r;

	r = read_all(path, &buf, &len, errbuf, errlen);
	if (r < 0)
		return r;
	r = kvmstats_file_open_blob(buf, len, &f, &err);
	if (r == -EBADMSG) {
		kvmstats_error_format(&err, errbuf, errlen);
		return r;
	}
	if (r < 0) {
		snprintf(errbuf, errlen, "%s", strerror(-r));
		return r;
	}
	if (f->kind == KVMSTATS_KIND_UNKNOWN) {
		snprintf(errbuf, errlen, "id \"%.64s\" is neither kvm-PID nor kvm-PID/vcpu-N",
			 f->id);
		kvmstats_file_free(f);
		return -EBADMSG;
	}
	r = collector_prepare_file(c, f);
	if (r < 0) {
		snprintf(errbuf, errlen, "%s", strerror(-r));
		kvmstats_file_free(f);
		return r;
	}

	for (size_t i = 0; i < c->n_vms; i++)
		if (c->vms[i]->source == VM_SOURCE_FILE && c->vms[i]->kvm_id &&
		    kvmstats_parse_id(c->vms[i]->kvm_id, &id_pid, NULL) == KVMSTATS_KIND_VM &&
		    id_pid == f->id_pid)
			vm = c->vms[i];

	if (!vm) {
		vm = vm_new(VM_SOURCE_FILE);
		if (!vm || asprintf(&vm->name, "pid-%d", (int)f->id_pid) < 0 ||
		    asprintf(&vm->kvm_id, "kvm-%d", (int)f->id_pid) < 0) {
			vm_free(vm);
			kvmstats_file_free(f);
			return -ENOMEM;
		}
		/* The pid in a saved file's id is a process of another time or host: kvm_id says
		 * it. */
		r = collector_add_vm(c, vm);
		if (r < 0) {
			kvmstats_file_free(f);
			return r;
		}
	}

	if (f->kind == KVMSTATS_KIND_VM) {
		if (vm->vm_file) {
			snprintf(errbuf, errlen, "a VM file for %s was already given", f->id);
			kvmstats_file_free(f);
			return -EEXIST;
		}
		vm->vm_file = f;
		vm->vm_read_ok = true;
		return 0;
	}
	if (vm->n_vcpus > 0 && vm->vcpus[0].file->schema != f->schema) {
		snprintf(errbuf, errlen, "layout differs from the other vCPU files of kvm-%d",
			 (int)f->id_pid);
		kvmstats_file_free(f);
		return -EINVAL;
	}
	r = vm_add_vcpu(vm, f, -1);
	if (r == -EEXIST)
		snprintf(errbuf, errlen, "a file for %s was already given", f->id);
	if (r < 0)
		kvmstats_file_free(f);
	return r;
}
