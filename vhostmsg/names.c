/* SPDX-License-Identifier: MIT */
/*
 * Label values: request names of both channels, reasons, channels. Names are
 * the spec's VHOST_USER_* (front-end) and VHOST_USER_BACKEND_* (back-end)
 * without the prefix, lower-cased; crosvm's own requests (1000 and up) as
 * crosvm names them. They are metric label values: never change one.
 */
#include <stddef.h>

#include "vhostmsg.h"
#include "wire.h"

static const char *const frontend_names[] = {
	[1] = "get_features",
	[2] = "set_features",
	[3] = "set_owner",
	[4] = "reset_owner",
	[5] = "set_mem_table",
	[6] = "set_log_base",
	[7] = "set_log_fd",
	[8] = "set_vring_num",
	[9] = "set_vring_addr",
	[10] = "set_vring_base",
	[11] = "get_vring_base",
	[12] = "set_vring_kick",
	[13] = "set_vring_call",
	[14] = "set_vring_err",
	[15] = "get_protocol_features",
	[16] = "set_protocol_features",
	[17] = "get_queue_num",
	[18] = "set_vring_enable",
	[19] = "send_rarp",
	[20] = "net_set_mtu",
	[21] = "set_backend_req_fd",
	[22] = "iotlb_msg",
	[23] = "set_vring_endian",
	[24] = "get_config",
	[25] = "set_config",
	[26] = "create_crypto_session",
	[27] = "close_crypto_session",
	[28] = "postcopy_advise",
	[29] = "postcopy_listen",
	[30] = "postcopy_end",
	[31] = "get_inflight_fd",
	[32] = "set_inflight_fd",
	[33] = "gpu_set_socket",
	[34] = "reset_device",
	[35] = "vring_kick",
	[36] = "get_max_mem_slots",
	[37] = "add_mem_reg",
	[38] = "rem_mem_reg",
	[39] = "set_status",
	[40] = "get_status",
	[41] = "get_shared_object",
	[42] = "set_device_state_fd",
	[43] = "check_device_state",
	[44] = "get_shmem_config",
};

/* crosvm's front-end requests from 1000 (1000-1003 retired in 2024, 1004 in 2025). */
static const char *const frontend_crosvm_names[] = {
	"sleep", "wake", "snapshot", "restore", "get_shared_memory_regions",
};

static const char *const backend_names[] = {
	[1] = "iotlb_msg",
	[2] = "config_change_msg",
	[3] = "vring_host_notifier_msg",
	[4] = "vring_call",
	[5] = "vring_err",
	[6] = "shared_object_add",
	[7] = "shared_object_remove",
	[8] = "shared_object_lookup",
	[9] = "shmem_map",
	[10] = "shmem_unmap",
};

/* crosvm's back-end requests from 1000. */
static const char *const backend_crosvm_names[] = {
	"shmem_map_legacy", "shmem_unmap_legacy", "fs_map", "fs_unmap", "fs_sync", "fs_io",
	"gpu_map",          "external_map",
};

static const char *const reason_names[VHOSTMSG_REASON__MAX] = {
	[VHOSTMSG_VALID] = "valid",
	[VHOSTMSG_BAD_VERSION] = "bad_version",
	[VHOSTMSG_RESERVED_FLAGS] = "reserved_flags",
	[VHOSTMSG_SIZE_MISMATCH] = "size_mismatch",
	[VHOSTMSG_TOO_LARGE] = "too_large",
	[VHOSTMSG_FD_COUNT] = "fd_count",
	[VHOSTMSG_LEN_ZERO] = "len_zero",
	[VHOSTMSG_OVERFLOW] = "overflow",
	[VHOSTMSG_UNALIGNED] = "unaligned",
	[VHOSTMSG_UNKNOWN_SHMID] = "unknown_shmid",
	[VHOSTMSG_OVERLAP] = "overlap",
	[VHOSTMSG_NONCANONICAL_PTR] = "noncanonical_ptr",
	[VHOSTMSG_OUT_OF_PROCESS] = "out_of_process",
	[VHOSTMSG_NOT_MAPPED] = "not_mapped",
	[VHOSTMSG_BAD_MAP_FLAGS] = "bad_map_flags",
};

#define CROSVM_FIRST 1000u

static const char *lookup(const char *const *table, size_t n, uint32_t i)
{
	return i < n ? table[i] : NULL;
}

const char *vhostmsg_request_name(enum vhostmsg_channel ch, uint32_t request)
{
	switch (ch) {
	case VHOSTMSG_CHANNEL_FRONTEND:
		if (request >= CROSVM_FIRST)
			return lookup(frontend_crosvm_names, ELEMENTSOF(frontend_crosvm_names),
				      request - CROSVM_FIRST);
		return lookup(frontend_names, ELEMENTSOF(frontend_names), request);
	case VHOSTMSG_CHANNEL_BACKEND:
		if (request >= CROSVM_FIRST)
			return lookup(backend_crosvm_names, ELEMENTSOF(backend_crosvm_names),
				      request - CROSVM_FIRST);
		return lookup(backend_names, ELEMENTSOF(backend_names), request);
	}
	return NULL;
}

const char *vhostmsg_reason_name(enum vhostmsg_reason r)
{
	if ((unsigned)r >= VHOSTMSG_REASON__MAX)
		return NULL;
	return reason_names[r];
}

const char *vhostmsg_channel_name(enum vhostmsg_channel ch)
{
	switch (ch) {
	case VHOSTMSG_CHANNEL_FRONTEND:
		return "frontend";
	case VHOSTMSG_CHANNEL_BACKEND:
		return "backend";
	}
	return NULL;
}
