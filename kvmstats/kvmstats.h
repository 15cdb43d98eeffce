/* SPDX-License-Identifier: MIT */
/*
 * Reader for KVM binary statistics (KVM_GET_STATS_FD, Linux 5.14+).
 *
 * A stats file is a header, an id string, a descriptor block and a data block
 * of u64 values. Everything but the data block is immutable for the life of
 * the fd, so it is parsed and validated once into a schema; every later read
 * is a single pread() of the data block.
 *
 * The library never logs and never exits: functions return 0 or a negative
 * errno, and validation failures fill a struct kvmstats_error naming the rule.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* Descriptor type, unit and base, as encoded in kvm_stats_desc.flags. */
enum kvmstats_type {
	KVMSTATS_TYPE_CUMULATIVE = 0,
	KVMSTATS_TYPE_INSTANT = 1,
	KVMSTATS_TYPE_PEAK = 2,
	KVMSTATS_TYPE_LINEAR_HIST = 3,
	KVMSTATS_TYPE_LOG_HIST = 4,
};

enum kvmstats_unit {
	KVMSTATS_UNIT_NONE = 0,
	KVMSTATS_UNIT_BYTES = 1,
	KVMSTATS_UNIT_SECONDS = 2,
	KVMSTATS_UNIT_CYCLES = 3,
	KVMSTATS_UNIT_BOOLEAN = 4,
};

enum kvmstats_base {
	KVMSTATS_BASE_POW10 = 0,
	KVMSTATS_BASE_POW2 = 1,
};

/* Whether a stats file belongs to a VM or to one of its vCPUs (from its id). */
enum kvmstats_kind {
	KVMSTATS_KIND_UNKNOWN = 0,
	KVMSTATS_KIND_VM,
	KVMSTATS_KIND_VCPU,
};

/* The rule a malformed stats file broke. */
enum kvmstats_rule {
	KVMSTATS_RULE_NONE = 0,
	KVMSTATS_RULE_SHORT_HEADER,      /* header not read completely */
	KVMSTATS_RULE_HEADER_FLAGS,      /* header flags not zero */
	KVMSTATS_RULE_NAME_SIZE,         /* name_size zero or above the bound */
	KVMSTATS_RULE_NUM_DESC,          /* num_desc above the bound */
	KVMSTATS_RULE_ID_READ,           /* id string not read completely */
	KVMSTATS_RULE_ID_UNTERMINATED,   /* id not NUL-terminated within name_size */
	KVMSTATS_RULE_ID_PREFIX,         /* id does not start with "kvm" */
	KVMSTATS_RULE_OFFSETS,           /* desc/data offset inside the header */
	KVMSTATS_RULE_DESC_OVERLAP,      /* descriptor block overlaps data block */
	KVMSTATS_RULE_DESC_READ,         /* descriptor block not read completely */
	KVMSTATS_RULE_NAME_UNTERMINATED, /* descriptor name not NUL-terminated */
	KVMSTATS_RULE_NAME_EMPTY,        /* descriptor name empty */
	KVMSTATS_RULE_EXPONENT,          /* exponent sign wrong for the unit */
	KVMSTATS_RULE_SIZE_ZERO,         /* descriptor size is zero */
	KVMSTATS_RULE_BUCKET_SIZE,       /* bucket_size set iff linear histogram */
	KVMSTATS_RULE_VALUE_RANGE,       /* offset + size*8 overflows or exceeds the bound */
	KVMSTATS_RULE_DATA_OVERLAP,      /* data block overlaps descriptor block */
	KVMSTATS_RULE_DATA_SIZE,         /* data block smaller than the values declared */
	KVMSTATS_RULE_DATA_READ,         /* data block not read completely */
	KVMSTATS_RULE__MAX,
};

/* Upper bounds on what a stats file may declare; the kernel uses far less. */
#define KVMSTATS_MAX_NAME_SIZE 4096u
#define KVMSTATS_MAX_NUM_DESC  65536u
#define KVMSTATS_MAX_DATA_SIZE (1u << 20)

/* Why a stats file was rejected: the rule, and the descriptor index if any. */
struct kvmstats_error {
	enum kvmstats_rule rule;
	int desc;           /* descriptor index, or -1 when the rule is about the file */
	int64_t value;      /* the offending number, where one helps */
	char desc_name[64]; /* the descriptor's name when known, possibly shortened */
};

/* A short human-readable sentence for a rule ("id does not start with \"kvm\""). */
const char *kvmstats_rule_to_string(enum kvmstats_rule rule);

/* Formats "rule (descriptor N \"name\", value V)" for one log line; returns snprintf's result. */
int kvmstats_error_format(const struct kvmstats_error *err, char *buf, size_t len);

/* One statistic's descriptor, decoded. */
struct kvmstats_desc {
	char *name;
	uint32_t flags;
	unsigned type; /* enum kvmstats_type when supported */
	unsigned unit; /* enum kvmstats_unit when supported */
	unsigned base; /* enum kvmstats_base when supported */
	int16_t exponent;
	uint16_t size;   /* number of u64 values (buckets for histograms) */
	uint32_t offset; /* byte offset inside the data block */
	uint32_t bucket_size;
	bool supported; /* false: unknown type, unit or base; skipped */
};

/*
 * The immutable part of a stats file: descriptors and data block geometry.
 * Schemas are reference counted and shared by every file with identical
 * descriptors (all vCPUs of a host share one).
 */
struct kvmstats_schema {
	unsigned n_ref;
	enum kvmstats_kind kind; /* from the id; part of the schema's identity */
	uint32_t name_size;
	uint32_t num_desc;
	uint32_t data_offset;
	uint32_t data_size; /* bytes, multiple of 8 */
	unsigned n_unsupported;
	uint64_t hash; /* of the descriptor block, to share identical schemas */
	struct kvmstats_desc *descs;
	void *userdata; /* owned by the caller (e.g. the translation table) */
	void (*userdata_free)(void *userdata);
};

/* Takes a reference. */
struct kvmstats_schema *kvmstats_schema_ref(struct kvmstats_schema *s);
/* Drops a reference; frees on the last one. Accepts NULL, returns NULL. */
struct kvmstats_schema *kvmstats_schema_unref(struct kvmstats_schema *s);
/* True when both schemas describe the same descriptors and data layout. */
bool kvmstats_schema_equal(const struct kvmstats_schema *a, const struct kvmstats_schema *b);

/*
 * One open stats source: a live stats fd or a saved blob. After open, the
 * schema and id never change; kvmstats_file_read() refreshes values[].
 */
struct kvmstats_file {
	int fd;        /* owned; -1 for a blob */
	uint8_t *blob; /* owned copy of a saved file, NULL for a live fd */
	size_t blob_size;
	char *id; /* "kvm-1234" or "kvm-1234/vcpu-3" */
	enum kvmstats_kind kind;
	pid_t id_pid; /* the pid in the id, or 0 */
	int vcpu;     /* vCPU index for KVMSTATS_KIND_VCPU, else -1 */
	struct kvmstats_schema *schema;
	uint64_t *values; /* data_size / 8 entries, filled by kvmstats_file_read() */
};

/*
 * Parses and validates a live stats fd. Takes ownership of fd on success
 * only. On a validation failure returns -EBADMSG with *ret_err filled;
 * on an I/O failure returns that -errno.
 */
int kvmstats_file_open_fd(int fd, struct kvmstats_file **ret, struct kvmstats_error *ret_err);

/* Parses and validates a saved blob (copied). Same errors as kvmstats_file_open_fd(). */
int kvmstats_file_open_blob(const void *buf, size_t len, struct kvmstats_file **ret,
			    struct kvmstats_error *ret_err);

/* The i-th u64 of a descriptor in the last read; offsets need not be aligned. */
static inline uint64_t kvmstats_file_value(const struct kvmstats_file *f,
					   const struct kvmstats_desc *d, unsigned i)
{
	uint64_t v;

	memcpy(&v, (const uint8_t *)f->values + d->offset + (size_t)i * sizeof(v), sizeof(v));
	return v;
}

/* The radix of a descriptor's scale: 10 or 2. */
static inline unsigned kvmstats_desc_radix(const struct kvmstats_desc *d)
{
	return d->base == KVMSTATS_BASE_POW2 ? 2 : 10;
}

/* Reads the data block into f->values: one pread() for a live fd. */
int kvmstats_file_read(struct kvmstats_file *f);

/* Closes the fd and frees everything. Accepts NULL, returns NULL. */
struct kvmstats_file *kvmstats_file_free(struct kvmstats_file *f);

/*
 * Reads a whole stats file (header through data block) from a live fd into
 * a new buffer: the blob format accepted by kvmstats_file_open_blob().
 */
int kvmstats_dump_fd(int fd, uint8_t **ret_buf, size_t *ret_len);

/* Parses "kvm-PID" / "kvm-PID/vcpu-N"; returns the kind, KVMSTATS_KIND_UNKNOWN otherwise. */
enum kvmstats_kind kvmstats_parse_id(const char *id, pid_t *ret_pid, int *ret_vcpu);

/*
 * A set of distinct schemas. Files opened separately get separate schema
 * objects; interning replaces one with an equal cached schema so that the
 * translation of a schema is built once per host, not once per vCPU.
 */
struct kvmstats_schema_cache;

/* Returns a new, empty cache or NULL on ENOMEM. */
struct kvmstats_schema_cache *kvmstats_schema_cache_new(void);
/* Drops the cache's references. Accepts NULL, returns NULL. */
struct kvmstats_schema_cache *kvmstats_schema_cache_free(struct kvmstats_schema_cache *c);
/* Points f->schema at the cached equal schema (adding f's if new). 0 or -ENOMEM. */
int kvmstats_schema_cache_intern(struct kvmstats_schema_cache *c, struct kvmstats_file *f);
/* Forgets schemas no file refers to any more. */
void kvmstats_schema_cache_prune(struct kvmstats_schema_cache *c);
