/* SPDX-License-Identifier: MIT */
/*
 * vhost-user message codec and validators (no I/O, no logging, no globals).
 *
 * A message is a 12-byte header {u32 request; u32 flags; u32 size} in native
 * endianness, then `size` payload bytes; fds travel as SCM_RIGHTS on the same
 * sendmsg. Requests of the frontend (the VMM) go to the backend on the main
 * socket; requests of the backend go to the frontend on the socket the
 * frontend passes with SET_BACKEND_REQ_FD. Replies travel back on the channel
 * of their request with the REPLY flag.
 *
 * This library frames and names messages of both channels, decodes the
 * shared-memory mapping requests (SHMEM_MAP, SHMEM_UNMAP, crosvm's GPU_MAP and
 * EXTERNAL_MAP), validates them, and tracks live mappings per shmid so that
 * overlaps are seen.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VHOSTMSG_HEADER_SIZE 12u
/* Bounds the tap enforces on every message (the spec's largest is a few hundred bytes). */
#define VHOSTMSG_MAX_PAYLOAD 4096u
#define VHOSTMSG_MAX_FDS     8u /* VHOST_MEMORY_BASELINE_NREGIONS: SET_MEM_TABLE's */

#define VHOSTMSG_FLAG_VERSION_MASK 0x3u
#define VHOSTMSG_VERSION           0x1u
#define VHOSTMSG_FLAG_REPLY        (1u << 2)
#define VHOSTMSG_FLAG_NEED_REPLY   (1u << 3)

/* Which socket a message travels on, named by who sends the requests. */
enum vhostmsg_channel {
	VHOSTMSG_CHANNEL_FRONTEND, /* main socket: frontend requests, backend replies */
	VHOSTMSG_CHANNEL_BACKEND,  /* backend channel: backend requests, frontend replies */
};

/* Frontend requests of interest (the rest are named by vhostmsg_request_name()). */
enum {
	VHOSTMSG_SET_BACKEND_REQ_FD = 21, /* carries the backend channel's fd */
	VHOSTMSG_GET_PROTOCOL_FEATURES = 15,
	VHOSTMSG_SET_PROTOCOL_FEATURES = 16,
};

/* Backend requests of interest. */
enum {
	VHOSTMSG_BACKEND_SHMEM_MAP = 9,
	VHOSTMSG_BACKEND_SHMEM_UNMAP = 10,
	VHOSTMSG_BACKEND_GPU_MAP = 1006,      /* crosvm */
	VHOSTMSG_BACKEND_EXTERNAL_MAP = 1007, /* crosvm */
};

#define VHOSTMSG_PROTOCOL_F_BACKEND_REQ 5 /* protocol feature bit: the backend channel */

/*
 * The other requests of both channels, numbered as in the vhost-user spec
 * (QEMU docs/interop/vhost-user.rst) and crosvm's vmm_vhost (message.rs),
 * whose own requests start at 1000. The two channels number independently:
 * 9 is SET_VRING_ADDR from the frontend and SHMEM_MAP from the backend.
 */
enum {
	VHOSTMSG_GET_FEATURES = 1,
	VHOSTMSG_SET_FEATURES = 2,
	VHOSTMSG_SET_OWNER = 3,
	VHOSTMSG_RESET_OWNER = 4,
	VHOSTMSG_SET_MEM_TABLE = 5,
	VHOSTMSG_SET_LOG_BASE = 6,
	VHOSTMSG_SET_LOG_FD = 7,
	VHOSTMSG_SET_VRING_NUM = 8,
	VHOSTMSG_SET_VRING_ADDR = 9,
	VHOSTMSG_SET_VRING_BASE = 10,
	VHOSTMSG_GET_VRING_BASE = 11,
	VHOSTMSG_SET_VRING_KICK = 12,
	VHOSTMSG_SET_VRING_CALL = 13,
	VHOSTMSG_SET_VRING_ERR = 14,
	VHOSTMSG_GET_QUEUE_NUM = 17,
	VHOSTMSG_SET_VRING_ENABLE = 18,
	VHOSTMSG_SEND_RARP = 19,
	VHOSTMSG_NET_SET_MTU = 20,
	VHOSTMSG_IOTLB_MSG = 22,
	VHOSTMSG_SET_VRING_ENDIAN = 23,
	VHOSTMSG_GET_CONFIG = 24,
	VHOSTMSG_SET_CONFIG = 25,
	VHOSTMSG_CREATE_CRYPTO_SESSION = 26,
	VHOSTMSG_CLOSE_CRYPTO_SESSION = 27,
	VHOSTMSG_POSTCOPY_ADVISE = 28,
	VHOSTMSG_POSTCOPY_LISTEN = 29,
	VHOSTMSG_POSTCOPY_END = 30,
	VHOSTMSG_GET_INFLIGHT_FD = 31,
	VHOSTMSG_SET_INFLIGHT_FD = 32,
	VHOSTMSG_GPU_SET_SOCKET = 33,
	VHOSTMSG_RESET_DEVICE = 34,
	VHOSTMSG_VRING_KICK = 35,
	VHOSTMSG_GET_MAX_MEM_SLOTS = 36,
	VHOSTMSG_ADD_MEM_REG = 37,
	VHOSTMSG_REM_MEM_REG = 38,
	VHOSTMSG_SET_STATUS = 39,
	VHOSTMSG_GET_STATUS = 40,
	VHOSTMSG_GET_SHARED_OBJECT = 41,
	VHOSTMSG_SET_DEVICE_STATE_FD = 42,
	VHOSTMSG_CHECK_DEVICE_STATE = 43,
	VHOSTMSG_GET_SHMEM_CONFIG =
		44, /* reply: region sizes, see vhostmsg_decode_shmem_regions() */
	/* crosvm 2024-2025, replaced by GET_SHMEM_CONFIG; 1000-1003 were
	   sleep/wake/snapshot/restore */
	VHOSTMSG_GET_SHARED_MEMORY_REGIONS = 1004,
};

enum {
	VHOSTMSG_BACKEND_IOTLB_MSG = 1,
	VHOSTMSG_BACKEND_CONFIG_CHANGE_MSG = 2,
	VHOSTMSG_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
	VHOSTMSG_BACKEND_VRING_CALL = 4,
	VHOSTMSG_BACKEND_VRING_ERR = 5,
	VHOSTMSG_BACKEND_SHARED_OBJECT_ADD = 6,
	VHOSTMSG_BACKEND_SHARED_OBJECT_REMOVE = 7,
	VHOSTMSG_BACKEND_SHARED_OBJECT_LOOKUP = 8,
	/*
	 * crosvm's SHMEM_MAP/UNMAP before they were standardised as 9/10 (2024-2025),
	 * with their own layouts: map {u8 flags (1 read, 2 write); u8 shmid; u8 pad[6];
	 * u64 shm_offset; u64 fd_offset; u64 len} and one fd, unmap {u8 shmid;
	 * u8 pad[7]; u64 shm_offset; u64 len}. Decoded and checked like 9/10.
	 */
	VHOSTMSG_BACKEND_SHMEM_MAP_LEGACY = 1000,
	VHOSTMSG_BACKEND_SHMEM_UNMAP_LEGACY = 1001,
	VHOSTMSG_BACKEND_FS_MAP = 1002, /* crosvm, virtio-fs draft, retired */
	VHOSTMSG_BACKEND_FS_UNMAP = 1003,
	VHOSTMSG_BACKEND_FS_SYNC = 1004,
	VHOSTMSG_BACKEND_FS_IO = 1005,
};

/* Protocol feature bits (GET_/SET_PROTOCOL_FEATURES) the codec cares about. */
#define VHOSTMSG_PROTOCOL_F_LOG_SHMFD       1
#define VHOSTMSG_PROTOCOL_F_REPLY_ACK       3
#define VHOSTMSG_PROTOCOL_F_BACKEND_SEND_FD 10
#define VHOSTMSG_PROTOCOL_F_HOST_NOTIFIER   11
#define VHOSTMSG_PROTOCOL_F_INFLIGHT_SHMFD  12
#define VHOSTMSG_PROTOCOL_F_DEVICE_STATE    19
#define VHOSTMSG_PROTOCOL_F_SHMEM           22 /* SHMEM_MAP/UNMAP, GET_SHMEM_CONFIG */

/* Bit 8 of the u64 of SET_VRING_KICK/CALL/ERR and VRING_HOST_NOTIFIER_MSG: no fd. */
#define VHOSTMSG_VRING_NOFD (1ull << 8)
/* SHMEM_MAP flags: bit 0 read-write (else read-only); the other bits are reserved. */
#define VHOSTMSG_MAP_FLAG_RW (1ull << 0)

/* Payload sizes of the mapping requests. */
#define VHOSTMSG_SHMEM_MAP_SIZE          40u /* SHMEM_MAP, SHMEM_UNMAP */
#define VHOSTMSG_GPU_MAP_SIZE            64u
#define VHOSTMSG_EXTERNAL_MAP_SIZE       32u
#define VHOSTMSG_SHMEM_MAP_LEGACY_SIZE   32u
#define VHOSTMSG_SHMEM_UNMAP_LEGACY_SIZE 24u

/* VIRTIO shared memory regions per device (shmid is a u8). */
#define VHOSTMSG_MAX_SHMEM_REGIONS 256u
/* GET_SHMEM_CONFIG reply: {u32 nregions; u32 padding; u64 sizes[256]}, sizes indexed by shmid. */
#define VHOSTMSG_SHMEM_CONFIG_SIZE (8u + 8u * VHOSTMSG_MAX_SHMEM_REGIONS)

struct vhostmsg_header {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};

/*
 * Why a message is invalid or dangerous. Each has a stable lower-case name
 * (vhostmsg_reason_name()) used as the `reason` label of the tap's metrics.
 */
enum vhostmsg_reason {
	VHOSTMSG_VALID = 0,
	VHOSTMSG_BAD_VERSION,      /* "bad_version": flags version bits not 1 */
	VHOSTMSG_RESERVED_FLAGS,   /* "reserved_flags": flag bits above NEED_REPLY set */
	VHOSTMSG_SIZE_MISMATCH,    /* "size_mismatch": payload size not what the request needs */
	VHOSTMSG_TOO_LARGE,        /* "too_large": payload above VHOSTMSG_MAX_PAYLOAD */
	VHOSTMSG_FD_COUNT,         /* "fd_count": more fds than the request carries (or too few) */
	VHOSTMSG_LEN_ZERO,         /* "len_zero" */
	VHOSTMSG_OVERFLOW,         /* "overflow": offset + len wraps around */
	VHOSTMSG_UNALIGNED,        /* "unaligned": offset or len not a multiple of the page size
				    * (also fd_offset of SHMEM_MAP, ptr of EXTERNAL_MAP) */
	VHOSTMSG_UNKNOWN_SHMID,    /* "unknown_shmid": no such region, or beyond its size */
	VHOSTMSG_OVERLAP,          /* "overlap": overlaps a live mapping of the same shmid */
	VHOSTMSG_NONCANONICAL_PTR, /* "noncanonical_ptr": EXTERNAL_MAP ptr not a canonical address
				    */
	VHOSTMSG_OUT_OF_PROCESS, /* "out_of_process": EXTERNAL_MAP from an out-of-process backend */
	VHOSTMSG_NOT_MAPPED,     /* "not_mapped": SHMEM_UNMAP of a range that is not mapped */
	VHOSTMSG_BAD_MAP_FLAGS,  /* "bad_map_flags": SHMEM_MAP flags beyond read-write set */
	VHOSTMSG_REASON__MAX,
};

/* The reason's label value ("bad_version", ...; "valid" for VHOSTMSG_VALID), NULL out of range. */
const char *vhostmsg_reason_name(enum vhostmsg_reason r);

/*
 * The request's lower-case name on its channel ("set_mem_table",
 * "external_map", ...), following the current vhost-user spec and crosvm's
 * extensions; NULL for a number nobody defines (callers print the number).
 */
const char *vhostmsg_request_name(enum vhostmsg_channel ch, uint32_t request);

/* Decodes a 12-byte header. */
void vhostmsg_header_decode(const uint8_t raw[VHOSTMSG_HEADER_SIZE], struct vhostmsg_header *ret);

/* Encodes a header into 12 bytes. */
void vhostmsg_header_encode(const struct vhostmsg_header *h, uint8_t raw[VHOSTMSG_HEADER_SIZE]);

/*
 * Checks what every message must satisfy: version, reserved flags, payload
 * bound, fd bound. VHOSTMSG_VALID or the first rule broken.
 */
enum vhostmsg_reason vhostmsg_check_header(const struct vhostmsg_header *h, unsigned n_fds);

/* A decoded mapping request (SHMEM_MAP, SHMEM_UNMAP, GPU_MAP, EXTERNAL_MAP, crosvm's legacy ones).
 */
struct vhostmsg_map {
	uint32_t request;
	uint8_t shmid;
	uint64_t shm_offset;
	uint64_t len;
	uint64_t fd_offset; /* SHMEM_MAP/UNMAP */
	uint64_t flags;     /* SHMEM_MAP/UNMAP */
	uint64_t ptr;       /* EXTERNAL_MAP: a host address in the frontend */
};

/*
 * Decodes a backend request's payload when it is one of the mapping
 * requests: 1 with *ret filled, 0 when the request is not a mapping one, or
 * a negative enum vhostmsg_reason when the payload is malformed
 * (size_mismatch, fd_count). Only requests (no REPLY flag) of the backend
 * channel: SHMEM_MAP (40 bytes, 1 fd), SHMEM_UNMAP (40, none), GPU_MAP (64,
 * 1 fd), EXTERNAL_MAP (32, none) and crosvm's legacy 1000/1001. payload
 * holds h->size bytes (NULL when 0).
 */
int vhostmsg_decode_map(const struct vhostmsg_header *h, const void *payload, unsigned n_fds,
			struct vhostmsg_map *ret);

/*
 * Live shared-memory mappings of one connection, per shmid, with the region
 * sizes learnt from the frontend (or configured). Bounded: at most
 * VHOSTMSG_MAX_MAPPINGS live mappings in all.
 */
#define VHOSTMSG_MAX_MAPPINGS 4096u
#define VHOSTMSG_PAGE_SIZE    4096u

struct vhostmsg_shmem;

/* A new, empty tracker (no region known) or NULL on ENOMEM. */
struct vhostmsg_shmem *vhostmsg_shmem_new(void);
/* Frees it. Accepts NULL, returns NULL. */
struct vhostmsg_shmem *vhostmsg_shmem_free(struct vhostmsg_shmem *s);
/* Declares region shmid of size bytes (from configuration or a frontend reply). */
void vhostmsg_shmem_set_region(struct vhostmsg_shmem *s, uint8_t shmid, uint64_t size);
/* Forgets every mapping (a new session). Regions stay. */
void vhostmsg_shmem_reset(struct vhostmsg_shmem *s);

/*
 * Validates a decoded mapping request against the rules (len_zero,
 * overflow, unaligned, unknown_shmid, overlap, noncanonical_ptr,
 * out_of_process for EXTERNAL_MAP when !in_process, not_mapped for
 * SHMEM_UNMAP, bad_map_flags) without changing the tracker. VHOSTMSG_VALID
 * or the first rule broken, in enum order. A valid SHMEM_UNMAP range is
 * exactly one live mapping, or several that tile it without a gap.
 */
enum vhostmsg_reason vhostmsg_shmem_check(const struct vhostmsg_shmem *s,
					  const struct vhostmsg_map *m, bool in_process);

/*
 * Applies a request the frontend accepted: maps add a mapping, SHMEM_UNMAP
 * removes the mappings it covers. 0, or -ENOSPC beyond the bound.
 * Accepted overlaps are mirrored as mmap/munmap would: the parts of live
 * mappings the new range covers are cut away (a mapping may split in two).
 * Also -EINVAL for what no mapping can be (len 0, offset + len wraps, not a
 * mapping request) and -ENOMEM; on any error the tracker is unchanged.
 */
int vhostmsg_shmem_apply(struct vhostmsg_shmem *s, const struct vhostmsg_map *m);

/* Live mappings and mapped bytes of one shmid. */
void vhostmsg_shmem_stats(const struct vhostmsg_shmem *s, uint8_t shmid, uint64_t *ret_mappings,
			  uint64_t *ret_bytes);

/* Whether region shmid is known (declared by configuration or learnt). */
bool vhostmsg_shmem_known(const struct vhostmsg_shmem *s, uint8_t shmid);

/* ---- Added for the tap: channels, replies, fds, payload sizes, regions ---- */

/* A reason as a bit of the masks vhostmsg_shmem_check_all() returns. */
#define VHOSTMSG_REASON_BIT(r) (1u << (unsigned)(r))

/* The channel's label value: "frontend" or "backend". */
const char *vhostmsg_channel_name(enum vhostmsg_channel ch);

/*
 * Whether the receiver of request h (not a reply) on channel ch answers it:
 * NEED_REPLY is set, or the request always has a reply (GET_FEATURES,
 * GET_VRING_BASE, GET_CONFIG, GET_SHMEM_CONFIG, ...; SET_LOG_BASE when
 * protocol_features, the frontend's SET_PROTOCOL_FEATURES value, has
 * LOG_SHMFD; backend SHARED_OBJECT_LOOKUP; crosvm's GPU_MAP, EXTERNAL_MAP and
 * legacy SHMEM_MAP/UNMAP). NEED_REPLY counts even without REPLY_ACK
 * negotiated, as QEMU and libvhost-user answer it regardless; a peer that
 * does not (crosvm) simply never sends that reply, so do not block on one.
 * Not covered: SET_MEM_TABLE/ADD_MEM_REG replies after POSTCOPY_LISTEN.
 */
bool vhostmsg_needs_reply(enum vhostmsg_channel ch, const struct vhostmsg_header *h,
			  uint64_t protocol_features);

/*
 * The u64 of a REPLY_ACK-style reply (0 success, else an error; crosvm sends
 * -errno): 0 with *ret set, -EINVAL when h is not a reply, -EBADMSG when its
 * payload is not exactly 8 bytes.
 */
int vhostmsg_reply_result(const struct vhostmsg_header *h, const void *payload, uint64_t *ret);

/*
 * How many fds message h (request or reply, by its REPLY flag) on channel ch
 * carries: [*ret_min, *ret_max]. payload holds h->size bytes (NULL when 0);
 * it decides SET_MEM_TABLE (nregions) and the nofd bit of
 * SET_VRING_KICK/CALL/ERR, VRING_HOST_NOTIFIER_MSG and the
 * SET_DEVICE_STATE_FD reply. Requests nobody defines get [0, VHOSTMSG_MAX_FDS].
 */
void vhostmsg_expected_fds(enum vhostmsg_channel ch, const struct vhostmsg_header *h,
			   const void *payload, unsigned *ret_min, unsigned *ret_max);

/* VHOSTMSG_VALID when n_fds is within vhostmsg_expected_fds(), else VHOSTMSG_FD_COUNT. */
enum vhostmsg_reason vhostmsg_check_fds(enum vhostmsg_channel ch, const struct vhostmsg_header *h,
					const void *payload, unsigned n_fds);

/*
 * Checks a request's payload size (h->size bytes at payload) against what the
 * spec (or crosvm) defines for it: VHOSTMSG_VALID or VHOSTMSG_SIZE_MISMATCH.
 * Replies, and requests with no fixed layout or not defined, are VALID.
 */
enum vhostmsg_reason vhostmsg_check_size(enum vhostmsg_channel ch, const struct vhostmsg_header *h,
					 const void *payload);

/*
 * Reports the shared memory regions a frontend-channel reply announces: the
 * spec's GET_SHMEM_CONFIG reply ({u32 nregions; u32 padding; u64 sizes[256]},
 * shmid = index, size 0 = no region; a shorter array of whole u64 is accepted)
 * and crosvm's GET_SHARED_MEMORY_REGIONS reply ({u64 count} then count times
 * {u8 id; u8 padding[7]; u64 length}). Calls cb once per region, only after the
 * whole payload checked out. The number of regions reported, -ENOMSG when the
 * message is not such a reply, -EBADMSG when it is malformed.
 */
int vhostmsg_decode_shmem_regions(enum vhostmsg_channel ch, uint32_t request, bool reply,
				  const void *payload, uint32_t size,
				  void (*cb)(void *ud, uint8_t shmid, uint64_t size), void *ud);

/*
 * Like vhostmsg_shmem_check(), but every rule broken, as a mask of
 * VHOSTMSG_REASON_BIT(); 0 when valid. vhostmsg_shmem_check() is its lowest bit.
 */
uint32_t vhostmsg_shmem_check_all(const struct vhostmsg_shmem *s, const struct vhostmsg_map *m,
				  bool in_process);

/* Live mappings and mapped bytes over all shmids. */
void vhostmsg_shmem_totals(const struct vhostmsg_shmem *s, uint64_t *ret_mappings,
			   uint64_t *ret_bytes);

/* Checks the tracker's own invariants (for tests and fuzzers): 0 or -EUCLEAN. */
int vhostmsg_shmem_verify(const struct vhostmsg_shmem *s);
