/* SPDX-License-Identifier: MIT */
/*
 * Parsing and validation of KVM binary stats files.
 *
 * The checks follow the kernel's own selftest (kvm_binary_stats_test.c), in
 * its order, so that a file the kernel would produce always loads and a file
 * it would not is rejected with the rule it breaks. On top of those, every
 * size is bounded so that a hostile blob cannot make us allocate or read
 * without limit.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvmstats.h"
#include "macro.h"

/* On-disk layout (native endian), as in <linux/kvm.h>. */
#define HEADER_SIZE 24u /* six u32 */
#define DESC_FIXED  16u /* flags, exponent, size, offset, bucket_size */
#define TYPE_MAX    4u
#define UNIT_MAX    4u
#define BASE_MAX    1u
/* Bound on the descriptor block a file may declare (x86 vCPUs need ~3 KiB). */
#define MAX_DESC_BLOCK (4u << 20)

/* Where bytes come from while parsing: a live fd or a blob in memory. */
struct source {
	int fd;
	const uint8_t *buf;
	size_t len;
};

/* Reads up to len bytes at off; returns the count (short at end of file) or -errno. */
static ssize_t source_read(const struct source *src, void *buf, size_t len, uint64_t off)
{
	if (!src->buf) {
		size_t done = 0;

		while (done < len) {
			ssize_t n = pread(src->fd, (uint8_t *)buf + done, len - done,
					  (off_t)(off + done));
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (n == 0)
				break;
			done += (size_t)n;
		}
		return (ssize_t)done;
	}

	if (off >= src->len)
		return 0;
	if (len > src->len - off)
		len = src->len - off;
	memcpy(buf, src->buf + off, len);
	return (ssize_t)len;
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint16_t get_u16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Records the broken rule; a descriptor name already recorded is kept. */
static int fail(struct kvmstats_error *err, enum kvmstats_rule rule, int desc, int64_t value)
{
	if (err) {
		err->rule = rule;
		err->desc = desc;
		err->value = value;
		if (desc < 0)
			err->desc_name[0] = '\0';
	}
	return -EBADMSG;
}

enum kvmstats_kind kvmstats_parse_id(const char *id, pid_t *ret_pid, int *ret_vcpu)
{
	unsigned long pid, vcpu;
	char *end;

	if (strncmp(id, "kvm-", 4) != 0 || id[4] < '0' || id[4] > '9')
		return KVMSTATS_KIND_UNKNOWN;
	errno = 0;
	pid = strtoul(id + 4, &end, 10);
	if (errno || pid == 0 || pid > INT32_MAX)
		return KVMSTATS_KIND_UNKNOWN;
	if (*end == '\0') {
		if (ret_pid)
			*ret_pid = (pid_t)pid;
		if (ret_vcpu)
			*ret_vcpu = -1;
		return KVMSTATS_KIND_VM;
	}
	if (strncmp(end, "/vcpu-", 6) != 0 || end[6] < '0' || end[6] > '9')
		return KVMSTATS_KIND_UNKNOWN;
	vcpu = strtoul(end + 6, &end, 10);
	if (errno || *end != '\0' || vcpu > INT32_MAX)
		return KVMSTATS_KIND_UNKNOWN;
	if (ret_pid)
		*ret_pid = (pid_t)pid;
	if (ret_vcpu)
		*ret_vcpu = (int)vcpu;
	return KVMSTATS_KIND_VCPU;
}

/* Decodes and checks one descriptor; *data_end grows to cover its values. */
static int parse_desc(const uint8_t *raw, uint32_t name_size, int index, struct kvmstats_desc *d,
		      uint64_t *data_end, struct kvmstats_error *err)
{
	const char *name = (const char *)raw + DESC_FIXED;
	size_t name_len = strnlen(name, name_size);
	uint64_t end;

	if (err)
		err->desc_name[0] = '\0';
	d->flags = get_u32(raw);
	d->exponent = (int16_t)get_u16(raw + 4);
	d->size = get_u16(raw + 6);
	d->offset = get_u32(raw + 8);
	d->bucket_size = get_u32(raw + 12);
	d->type = d->flags & 0xf;
	d->unit = (d->flags >> 4) & 0xf;
	d->base = (d->flags >> 8) & 0xf;

	if (name_len == name_size)
		return fail(err, KVMSTATS_RULE_NAME_UNTERMINATED, index, name_size);
	if (name_len == 0)
		return fail(err, KVMSTATS_RULE_NAME_EMPTY, index, 0);
	d->name = strndup(name, name_len);
	if (!d->name)
		return -ENOMEM;
	/* From here on, errors name the stat, made printable for a one-line message. */
	if (err) {
		snprintf(err->desc_name, sizeof(err->desc_name), "%s", d->name);
		for (char *c = err->desc_name; *c; c++)
			if (*c < 0x20 || *c > 0x7e || *c == '"')
				*c = '?';
	}

	/* A type, unit or base from a newer kernel: keep the file, skip the stat. */
	d->supported = d->type <= TYPE_MAX && d->unit <= UNIT_MAX && d->base <= BASE_MAX;

	if (d->unit <= UNIT_MAX) {
		switch (d->unit) {
		case KVMSTATS_UNIT_NONE:
		case KVMSTATS_UNIT_BYTES:
		case KVMSTATS_UNIT_CYCLES:
			if (d->exponent < 0)
				return fail(err, KVMSTATS_RULE_EXPONENT, index, d->exponent);
			break;
		case KVMSTATS_UNIT_SECONDS:
			if (d->exponent > 0)
				return fail(err, KVMSTATS_RULE_EXPONENT, index, d->exponent);
			break;
		case KVMSTATS_UNIT_BOOLEAN:
			if (d->exponent != 0)
				return fail(err, KVMSTATS_RULE_EXPONENT, index, d->exponent);
			break;
		}
	}

	if (d->size == 0)
		return fail(err, KVMSTATS_RULE_SIZE_ZERO, index, 0);

	if (d->type <= TYPE_MAX) {
		bool linear = d->type == KVMSTATS_TYPE_LINEAR_HIST;

		if (linear != (d->bucket_size != 0))
			return fail(err, KVMSTATS_RULE_BUCKET_SIZE, index, d->bucket_size);
	}

	end = (uint64_t)d->offset + (uint64_t)d->size * sizeof(uint64_t);
	if (end > KVMSTATS_MAX_DATA_SIZE)
		return fail(err, KVMSTATS_RULE_VALUE_RANGE, index, (int64_t)end);
	if (end > *data_end)
		*data_end = end;
	return 0;
}

static void schema_free(struct kvmstats_schema *s)
{
	if (!s)
		return;
	if (s->userdata_free)
		s->userdata_free(s->userdata);
	for (uint32_t i = 0; s->descs && i < s->num_desc; i++)
		free(s->descs[i].name);
	free(s->descs);
	free(s);
}

struct kvmstats_schema *kvmstats_schema_ref(struct kvmstats_schema *s)
{
	if (s)
		s->n_ref++;
	return s;
}

struct kvmstats_schema *kvmstats_schema_unref(struct kvmstats_schema *s)
{
	if (s && --s->n_ref == 0)
		schema_free(s);
	return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct kvmstats_schema *, kvmstats_schema_unref)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kvmstats_file *, kvmstats_file_free)

bool kvmstats_schema_equal(const struct kvmstats_schema *a, const struct kvmstats_schema *b)
{
	if (a == b)
		return true;
	if (a->hash != b->hash || a->kind != b->kind || a->num_desc != b->num_desc ||
	    a->name_size != b->name_size || a->data_offset != b->data_offset ||
	    a->data_size != b->data_size)
		return false;
	for (uint32_t i = 0; i < a->num_desc; i++) {
		const struct kvmstats_desc *x = &a->descs[i], *y = &b->descs[i];

		if (x->flags != y->flags || x->exponent != y->exponent || x->size != y->size ||
		    x->offset != y->offset || x->bucket_size != y->bucket_size ||
		    strcmp(x->name, y->name) != 0)
			return false;
	}
	return true;
}

/* FNV-1a, enough to tell schemas apart before comparing them in full. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static int parse(const struct source *src, struct kvmstats_schema **ret_schema, char **ret_id,
		 struct kvmstats_error *err)
{
	_cleanup_(kvmstats_schema_unrefp) struct kvmstats_schema *s = NULL;
	_cleanup_free_ uint8_t *descs = NULL;
	_cleanup_free_ char *id = NULL;
	uint8_t hdr[HEADER_SIZE];
	uint32_t flags, name_size, num_desc, id_offset, desc_offset, data_offset;
	uint64_t desc_stride, desc_block, data_end = 0;
	ssize_t n;
	int r;

	n = source_read(src, hdr, sizeof(hdr), 0);
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(hdr))
		return fail(err, KVMSTATS_RULE_SHORT_HEADER, -1, n);

	flags = get_u32(hdr);
	name_size = get_u32(hdr + 4);
	num_desc = get_u32(hdr + 8);
	id_offset = get_u32(hdr + 12);
	desc_offset = get_u32(hdr + 16);
	data_offset = get_u32(hdr + 20);

	if (flags != 0)
		return fail(err, KVMSTATS_RULE_HEADER_FLAGS, -1, flags);
	if (name_size == 0 || name_size > KVMSTATS_MAX_NAME_SIZE)
		return fail(err, KVMSTATS_RULE_NAME_SIZE, -1, name_size);

	id = malloc(name_size);
	if (!id)
		return -ENOMEM;
	n = source_read(src, id, name_size, id_offset);
	if (n < 0)
		return (int)n;
	if ((size_t)n < name_size)
		return fail(err, KVMSTATS_RULE_ID_READ, -1, n);
	if (strnlen(id, name_size) == name_size)
		return fail(err, KVMSTATS_RULE_ID_UNTERMINATED, -1, name_size);
	if (strncmp(id, "kvm", 3) != 0)
		return fail(err, KVMSTATS_RULE_ID_PREFIX, -1, -1);

	desc_stride = DESC_FIXED + (uint64_t)name_size;
	desc_block = desc_stride * num_desc;
	if (num_desc > KVMSTATS_MAX_NUM_DESC || desc_block > MAX_DESC_BLOCK)
		return fail(err, KVMSTATS_RULE_NUM_DESC, -1, num_desc);
	if (desc_offset < HEADER_SIZE || data_offset < HEADER_SIZE)
		return fail(err, KVMSTATS_RULE_OFFSETS, -1,
			    desc_offset < HEADER_SIZE ? desc_offset : data_offset);
	if (!(desc_offset > data_offset || desc_offset + desc_block <= data_offset))
		return fail(err, KVMSTATS_RULE_DESC_OVERLAP, -1, desc_offset);

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->n_ref = 1;
	s->name_size = name_size;
	s->num_desc = num_desc;
	s->data_offset = data_offset;
	s->kind = kvmstats_parse_id(id, NULL, NULL);
	s->descs = calloc(num_desc ? num_desc : 1, sizeof(*s->descs));
	if (!s->descs)
		return -ENOMEM;

	if (num_desc > 0) {
		descs = malloc(desc_block);
		if (!descs)
			return -ENOMEM;
		n = source_read(src, descs, desc_block, desc_offset);
		if (n < 0)
			return (int)n;
		if ((uint64_t)n < desc_block)
			return fail(err, KVMSTATS_RULE_DESC_READ, -1, n);
	}

	for (uint32_t i = 0; i < num_desc; i++) {
		r = parse_desc(descs + i * desc_stride, name_size, (int)i, &s->descs[i], &data_end,
			       err);
		if (r < 0)
			return r;
		if (!s->descs[i].supported)
			s->n_unsupported++;
	}

	if (!(data_offset >= desc_offset || data_offset + data_end <= desc_offset))
		return fail(err, KVMSTATS_RULE_DATA_OVERLAP, -1, data_offset);
	/*
	 * The kernel lays values out back to back. Overlapping ranges would let
	 * a small file declare millions of buckets (each one a line per scrape),
	 * so the declared values must fit the block they span.
	 */
	uint64_t n_values = 0;
	for (uint32_t i = 0; i < num_desc; i++)
		n_values += s->descs[i].size;
	if (n_values * sizeof(uint64_t) > data_end)
		return fail(err, KVMSTATS_RULE_DATA_SIZE, -1, (int64_t)data_end);
	s->data_size = (uint32_t)data_end;

	s->hash = hash_bytes(0xcbf29ce484222325ull, hdr + 4, 8); /* name_size, num_desc */
	s->hash = hash_bytes(s->hash, &s->kind, sizeof(s->kind));
	s->hash = hash_bytes(s->hash, &data_offset, sizeof(data_offset));
	if (num_desc > 0)
		s->hash = hash_bytes(s->hash, descs, desc_block);

	*ret_schema = TAKE_PTR(s);
	*ret_id = TAKE_PTR(id);
	return 0;
}

static int file_new(const struct source *src, struct kvmstats_file **ret,
		    struct kvmstats_error *err)
{
	_cleanup_(kvmstats_file_freep) struct kvmstats_file *f = NULL;
	int r;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = -1;
	f->vcpu = -1;

	r = parse(src, &f->schema, &f->id, err);
	if (r < 0)
		return r;
	f->kind = kvmstats_parse_id(f->id, &f->id_pid, &f->vcpu);

	/* Round up: descriptors may end mid-u64, but values[] is read as whole u64s. */
	f->values = calloc(f->schema->data_size / 8 + 1, sizeof(uint64_t));
	if (!f->values)
		return -ENOMEM;

	*ret = TAKE_PTR(f);
	return 0;
}

int kvmstats_file_open_fd(int fd, struct kvmstats_file **ret, struct kvmstats_error *ret_err)
{
	struct source src = { .fd = fd };
	struct kvmstats_file *f = NULL;
	int r;

	if (ret_err)
		*ret_err = (struct kvmstats_error){ .desc = -1 };
	r = file_new(&src, &f, ret_err);
	if (r < 0)
		return r;
	f->fd = fd;
	r = kvmstats_file_read(f);
	if (r < 0) {
		f->fd = -1; /* ownership passes only on success */
		kvmstats_file_free(f);
		if (r == -EBADMSG && ret_err)
			*ret_err = (struct kvmstats_error){ .rule = KVMSTATS_RULE_DATA_READ,
							    .desc = -1 };
		return r;
	}
	*ret = f;
	return 0;
}

int kvmstats_file_open_blob(const void *buf, size_t len, struct kvmstats_file **ret,
			    struct kvmstats_error *ret_err)
{
	_cleanup_(kvmstats_file_freep) struct kvmstats_file *f = NULL;
	struct source src = { .fd = -1, .buf = buf, .len = len };
	int r;

	if (ret_err)
		*ret_err = (struct kvmstats_error){ .desc = -1 };
	if (!buf)
		return -EINVAL;
	r = file_new(&src, &f, ret_err);
	if (r < 0)
		return r;
	if ((uint64_t)f->schema->data_offset + f->schema->data_size > len)
		return fail(ret_err, KVMSTATS_RULE_DATA_READ, -1, (int64_t)len);

	f->blob = malloc(len);
	if (!f->blob)
		return -ENOMEM;
	memcpy(f->blob, buf, len);
	f->blob_size = len;
	r = kvmstats_file_read(f);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(f);
	return 0;
}

int kvmstats_file_read(struct kvmstats_file *f)
{
	const struct kvmstats_schema *s = f->schema;
	ssize_t n;

	if (f->blob) {
		memcpy(f->values, f->blob + s->data_offset, s->data_size);
		return 0;
	}
	do
		n = pread(f->fd, f->values, s->data_size, s->data_offset);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* The data block of a live fd never shrinks; a short read means a broken fd. */
	if ((size_t)n != s->data_size)
		return -EBADMSG;
	return 0;
}

struct kvmstats_file *kvmstats_file_free(struct kvmstats_file *f)
{
	if (!f)
		return NULL;
	safe_close(f->fd);
	kvmstats_schema_unref(f->schema);
	free(f->values);
	free(f->blob);
	free(f->id);
	free(f);
	return NULL;
}

int kvmstats_dump_fd(int fd, uint8_t **ret_buf, size_t *ret_len)
{
	_cleanup_(kvmstats_schema_unrefp) struct kvmstats_schema *s = NULL;
	_cleanup_free_ char *id = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	struct source src = { .fd = fd };
	struct kvmstats_error err;
	uint8_t hdr[HEADER_SIZE];
	uint64_t end;
	ssize_t n;
	int r;

	r = parse(&src, &s, &id, &err);
	if (r < 0)
		return r;
	n = source_read(&src, hdr, sizeof(hdr), 0);
	if (n != (ssize_t)sizeof(hdr))
		return n < 0 ? (int)n : -EBADMSG;

	end = (uint64_t)s->data_offset + s->data_size;
	if ((uint64_t)get_u32(hdr + 12) + s->name_size > end)
		end = (uint64_t)get_u32(hdr + 12) + s->name_size;
	if ((uint64_t)get_u32(hdr + 16) + (DESC_FIXED + (uint64_t)s->name_size) * s->num_desc > end)
		end = (uint64_t)get_u32(hdr + 16) +
		      (DESC_FIXED + (uint64_t)s->name_size) * s->num_desc;

	buf = calloc(1, end);
	if (!buf)
		return -ENOMEM;
	n = source_read(&src, buf, end, 0);
	if (n < 0)
		return (int)n;
	if ((uint64_t)n != end)
		return -EBADMSG;
	*ret_buf = TAKE_PTR(buf);
	*ret_len = end;
	return 0;
}
