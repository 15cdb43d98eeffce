/* SPDX-License-Identifier: MIT */
/*
 * Configuration of the vhost-user tap: one --vhost.proxy value per proxy
 * ("name=NAME,listen=PATH,backend=PATH[,shmem=ID:SIZE[;ID:SIZE]][,trusted=yes]")
 * and the --vhost.policy. Pure parsing, no I/O.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VHOST_PROXY_NAME_MAX 64
#define VHOST_MAX_PROXIES    64 /* each costs a listening socket and up to five threads */

enum vhost_policy {
	VHOST_POLICY_OBSERVE, /* relay everything, count */
	VHOST_POLICY_ENFORCE, /* do not relay invalid or dangerous backend requests */
};

/* A shared memory region declared on the command line. */
struct vhost_region {
	uint8_t shmid;
	uint64_t size;
};

struct vhost_proxy_config {
	char *name;                   /* `proxy` label: [a-zA-Z0-9_.-]{1,64} */
	char *listen;                 /* where the frontend connects */
	char *backend;                /* where the real backend listens */
	struct vhost_region *regions; /* shmem=..., for frontends that never announce them */
	size_t n_regions;
	/*
	 * trusted=yes: the frontend takes this backend's EXTERNAL_MAP host
	 * pointers as crosvm takes an in-process backend's, so they are not
	 * flagged out_of_process (the other rules still apply).
	 */
	bool trusted;
};

/* Parses "observe|enforce"; 0 or -EINVAL. */
int vhost_policy_parse(const char *s, enum vhost_policy *ret);
/* "observe" or "enforce". */
const char *vhost_policy_name(enum vhost_policy p);

/*
 * Parses one --vhost.proxy value into *ret (which the caller releases, on
 * failure too). 0, -EINVAL with *ret_why saying what is wrong, or -ENOMEM.
 */
int vhost_proxy_config_parse(const char *spec, struct vhost_proxy_config *ret,
			     const char **ret_why);

/*
 * Checks a new proxy against those already configured (unique names and
 * listening paths, no listening path that is another's backend). 0 or
 * -EINVAL with *ret_why.
 */
int vhost_proxy_config_check_unique(const struct vhost_proxy_config *existing, size_t n,
				    const struct vhost_proxy_config *c, const char **ret_why);

/* Frees what parsing allocated; the struct is zeroed. */
void vhost_proxy_config_release(struct vhost_proxy_config *c);
