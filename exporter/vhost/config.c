/* SPDX-License-Identifier: MIT */
/* Parsing of --vhost.proxy and --vhost.policy values. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "vhost/config.h"

#define MAX_UNIX_SOCKET_PATH 107 /* sizeof(sun_path) - 1 */

int vhost_policy_parse(const char *s, enum vhost_policy *ret)
{
	if (strcmp(s, "observe") == 0)
		*ret = VHOST_POLICY_OBSERVE;
	else if (strcmp(s, "enforce") == 0)
		*ret = VHOST_POLICY_ENFORCE;
	else
		return -EINVAL;
	return 0;
}

const char *vhost_policy_name(enum vhost_policy p)
{
	return p == VHOST_POLICY_ENFORCE ? "enforce" : "observe";
}

static bool name_valid(const char *s, size_t n)
{
	if (n == 0 || n > VHOST_PROXY_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* A decimal or 0x-hex u64 of exactly s[0..n); 0 or -EINVAL/-ERANGE. */
static int parse_u64(const char *s, size_t n, uint64_t *ret)
{
	unsigned base = 10;
	uint64_t v = 0;

	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		n -= 2;
	}
	if (n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
		if (v > (UINT64_MAX - d) / base)
			return -ERANGE;
		v = v * base + d;
	}
	*ret = v;
	return 0;
}

/* SIZE: a number with an optional binary suffix K, M, G or T. */
static int parse_size(const char *s, size_t n, uint64_t *ret)
{
	static const char suffixes[] = "KMGT";
	unsigned shift = 0;
	uint64_t v;
	int r;

	if (n > 0 && !(n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))) {
		const char *p = memchr(suffixes, s[n - 1], sizeof(suffixes) - 1);

		if (p) {
			shift = 10u * (unsigned)(p - suffixes + 1);
			n--;
		}
	}
	r = parse_u64(s, n, &v);
	if (r < 0)
		return r;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = v << shift;
	return 0;
}

/* shmem=ID:SIZE[;ID:SIZE...] */
static int parse_regions(const char *s, size_t n, struct vhost_proxy_config *c,
			 const char **ret_why)
{
	const char *end = s + n;

	*ret_why = "shmem= expects ID:SIZE[;ID:SIZE...] with ID from 0 to 255 and SIZE > 0 "
		   "(bytes, or with a K, M, G or T suffix)";
	while (s < end) {
		const char *semi = memchr(s, ';', (size_t)(end - s)), *colon;
		size_t len = (size_t)((semi ? semi : end) - s);
		struct vhost_region *grown;
		uint64_t id, size;

		colon = memchr(s, ':', len);
		if (!colon || parse_u64(s, (size_t)(colon - s), &id) < 0 || id > 255 ||
		    parse_size(colon + 1, len - (size_t)(colon + 1 - s), &size) < 0 || size == 0)
			return -EINVAL;
		for (size_t i = 0; i < c->n_regions; i++)
			if (c->regions[i].shmid == id) {
				*ret_why = "shmem= declares the same ID twice";
				return -EINVAL;
			}
		grown = reallocarray(c->regions, c->n_regions + 1, sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		c->regions = grown;
		c->regions[c->n_regions++] =
			(struct vhost_region){ .shmid = (uint8_t)id, .size = size };
		s += len + (semi ? 1 : 0);
		if (semi && s == end)
			return -EINVAL; /* a trailing ';' */
	}
	return c->n_regions > 0 ? 0 : -EINVAL;
}

static int set_path(char **dst, const char *v, size_t n, const char *key, const char **ret_why)
{
	if (n == 0 || n > MAX_UNIX_SOCKET_PATH) {
		*ret_why = "listen= and backend= need a unix socket path of 1 to 107 bytes";
		return -EINVAL;
	}
	if (*dst) {
		*ret_why = key;
		return -EINVAL;
	}
	*dst = strndup(v, n);
	return *dst ? 0 : -ENOMEM;
}

static int parse_pair(struct vhost_proxy_config *c, const char *key, size_t key_n, const char *v,
		      size_t n, const char **ret_why)
{
#define KEY_IS(k) (key_n == sizeof(k) - 1 && memcmp(key, k, key_n) == 0)
	if (KEY_IS("name")) {
		if (!name_valid(v, n)) {
			*ret_why = "name= must be 1 to 64 characters of [a-zA-Z0-9_.-]";
			return -EINVAL;
		}
		return set_path(&c->name, v, n, "name= given twice", ret_why);
	}
	if (KEY_IS("listen"))
		return set_path(&c->listen, v, n, "listen= given twice", ret_why);
	if (KEY_IS("backend"))
		return set_path(&c->backend, v, n, "backend= given twice", ret_why);
	if (KEY_IS("shmem")) {
		if (c->n_regions > 0) {
			*ret_why = "shmem= given twice (list the regions separated by ';')";
			return -EINVAL;
		}
		return parse_regions(v, n, c, ret_why);
	}
	if (KEY_IS("trusted")) {
		if (n == 3 && memcmp(v, "yes", 3) == 0)
			c->trusted = true;
		else if (n == 2 && memcmp(v, "no", 2) == 0)
			c->trusted = false;
		else {
			*ret_why = "trusted= expects yes or no";
			return -EINVAL;
		}
		return 0;
	}
#undef KEY_IS
	*ret_why = "unknown key (expected name=, listen=, backend=, shmem= or trusted=)";
	return -EINVAL;
}

int vhost_proxy_config_parse(const char *spec, struct vhost_proxy_config *ret, const char **ret_why)
{
	const char *s = spec, *end = spec + strlen(spec);
	int r;

	*ret = (struct vhost_proxy_config){ 0 };
	while (s < end) {
		const char *comma = memchr(s, ',', (size_t)(end - s)), *eq;
		size_t len = (size_t)((comma ? comma : end) - s);

		eq = memchr(s, '=', len);
		if (!eq) {
			*ret_why = "expected comma-separated KEY=VALUE pairs";
			return -EINVAL;
		}
		r = parse_pair(ret, s, (size_t)(eq - s), eq + 1, len - (size_t)(eq + 1 - s),
			       ret_why);
		if (r < 0)
			return r;
		s += len + (comma ? 1 : 0);
	}
	if (!ret->name || !ret->listen || !ret->backend) {
		*ret_why = "name=, listen= and backend= are required";
		return -EINVAL;
	}
	if (strcmp(ret->listen, ret->backend) == 0) {
		*ret_why = "listen= and backend= must differ";
		return -EINVAL;
	}
	return 0;
}

int vhost_proxy_config_check_unique(const struct vhost_proxy_config *existing, size_t n,
				    const struct vhost_proxy_config *c, const char **ret_why)
{
	if (n >= VHOST_MAX_PROXIES) {
		*ret_why = "too many proxies (at most 64)";
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(existing[i].name, c->name) == 0) {
			*ret_why = "another proxy has this name";
			return -EINVAL;
		}
		if (strcmp(existing[i].listen, c->listen) == 0) {
			*ret_why = "another proxy listens on this path";
			return -EINVAL;
		}
		if (strcmp(existing[i].backend, c->listen) == 0 ||
		    strcmp(existing[i].listen, c->backend) == 0) {
			*ret_why = "a proxy's listening path is another proxy's backend";
			return -EINVAL;
		}
	}
	return 0;
}

void vhost_proxy_config_release(struct vhost_proxy_config *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->listen);
	free(c->backend);
	free(c->regions);
	*c = (struct vhost_proxy_config){ 0 };
}
