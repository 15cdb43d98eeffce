/* SPDX-License-Identifier: MIT */
/*
 * Basic authentication. The cache holds HMAC-SHA256 digests of (user,
 * password) under a key drawn at start, never the passwords themselves, and
 * only for logins that succeeded: a client guessing passwords cannot evict
 * the entries of the real scrapers, and every guess pays for one bcrypt.
 */
#include <crypt.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "web/basicauth.h"
#include "macro.h"

#define CACHE_SLOTS   64
#define DIGEST_SIZE   32
#define HMAC_KEY_SIZE 32

/*
 * bcrypt of "fakepassword" at cost 10, the exporter-toolkit's own: checked
 * for unknown users so that they cost as much as known ones.
 */
static const char dummy_hash[] = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

struct basicauth {
	const struct webconfig *config;

	pthread_mutex_t cache_lock;
	uint8_t hmac_key[HMAC_KEY_SIZE];
	uint8_t cache[CACHE_SLOTS][DIGEST_SIZE];
	bool used[CACHE_SLOTS];
	size_t next;   /* round-robin replacement */
	bool cache_ok; /* false if the HMAC key could not be drawn: no caching */

	/* bcrypt is CPU-bound by design: one at a time, as the toolkit does. */
	pthread_mutex_t bcrypt_lock;
	struct crypt_data *crypt; /* large (~32 KiB); guarded by bcrypt_lock */
};

static bool equal_ct(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(x[i] ^ y[i]);
	return d == 0;
}

static bool bcrypt_verify_with(struct crypt_data *data, const char *hash, const char *password)
{
	const char *out;
	size_t n = strlen(hash);
	bool ok;

	/*
	 * crypt_rn() is crypt_r() that returns NULL on failure instead of a "*0"
	 * token. It also keeps libcrypt linked under ASan, whose runtime defines
	 * a crypt_r() interceptor that would otherwise satisfy the linker alone.
	 */
	memset(data, 0, sizeof(*data));
	out = crypt_rn(password, hash, data, (int)sizeof(*data));
	ok = out && out[0] != '*' && strlen(out) == n && equal_ct(out, hash, n);
	explicit_bzero(data, sizeof(*data));
	return ok;
}

bool basicauth_bcrypt_verify(const char *hash, const char *password)
{
	struct crypt_data *data;
	bool ok;

	if (!hash || !password)
		return false;
	data = calloc(1, sizeof(*data));
	if (!data)
		return false;
	ok = bcrypt_verify_with(data, hash, password);
	free(data);
	return ok;
}

static int base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Go's base64.StdEncoding: padded, no whitespace. Returns the length or -EINVAL/-ENOMEM. */
static int base64_decode(const char *s, char **ret)
{
	size_t n = strlen(s), o = 0;
	char *out;

	if (n == 0 || n % 4 != 0 || n > 65536)
		return -EINVAL;
	out = malloc(n / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		size_t pad = 0;

		for (size_t j = 0; j < 4; j++) {
			if (s[i + j] == '=' && i + 4 == n && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			v[j] = pad ? -1 : base64_value(s[i + j]);
			if (v[j] < 0) {
				explicit_bzero(out, o);
				free(out);
				return -EINVAL;
			}
		}
		/* "xx=y" is not valid padding. */
		if (pad == 1 && s[i + 2] == '=') {
			explicit_bzero(out, o);
			free(out);
			return -EINVAL;
		}
		out[o++] = (char)((v[0] << 2) | (v[1] >> 4));
		if (pad < 2)
			out[o++] = (char)(((v[1] & 0xf) << 4) | (v[2] >> 2));
		if (pad < 1)
			out[o++] = (char)(((v[2] & 0x3) << 6) | v[3]);
	}
	out[o] = '\0';
	*ret = out;
	return (int)o;
}

int basicauth_parse_header(const char *authorization, char **ret_user, char **ret_password)
{
	_cleanup_free_ char *decoded = NULL;
	char *colon, *user, *password;
	int n;

	if (!authorization || strncasecmp(authorization, "Basic ", 6) != 0)
		return -EINVAL;
	n = base64_decode(authorization + 6, &decoded);
	if (n < 0)
		return n;
	colon = memchr(decoded, ':', (size_t)n);
	if (!colon || memchr(decoded, '\0', (size_t)n)) {
		explicit_bzero(decoded, (size_t)n);
		return -EINVAL;
	}
	user = strndup(decoded, (size_t)(colon - decoded));
	password = strdup(colon + 1);
	explicit_bzero(decoded, (size_t)n);
	if (!user || !password) {
		free(user);
		if (password) {
			explicit_bzero(password, strlen(password));
			free(password);
		}
		return -ENOMEM;
	}
	*ret_user = user;
	*ret_password = password;
	return 0;
}

int basicauth_new(const struct webconfig *c, struct basicauth **ret)
{
	struct basicauth *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->crypt = calloc(1, sizeof(*a->crypt));
	if (!a->crypt) {
		free(a);
		return -ENOMEM;
	}
	a->config = c;
	pthread_mutex_init(&a->cache_lock, NULL);
	pthread_mutex_init(&a->bcrypt_lock, NULL);
	a->cache_ok = gnutls_rnd(GNUTLS_RND_KEY, a->hmac_key, sizeof(a->hmac_key)) == 0;
	*ret = a;
	return 0;
}

struct basicauth *basicauth_free(struct basicauth *a)
{
	if (!a)
		return NULL;
	pthread_mutex_destroy(&a->cache_lock);
	pthread_mutex_destroy(&a->bcrypt_lock);
	explicit_bzero(a->crypt, sizeof(*a->crypt));
	free(a->crypt);
	explicit_bzero(a, sizeof(*a));
	free(a);
	return NULL;
}

/* HMAC(key, len(user) || user || password); false if GnuTLS refuses. */
static bool cache_digest(struct basicauth *a, const char *user, const char *password,
			 uint8_t digest[DIGEST_SIZE])
{
	gnutls_hmac_hd_t h;
	uint32_t ulen = (uint32_t)strlen(user);

	if (!a->cache_ok || gnutls_hmac_get_len(GNUTLS_MAC_SHA256) != DIGEST_SIZE ||
	    gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, a->hmac_key, sizeof(a->hmac_key)) < 0)
		return false;
	if (gnutls_hmac(h, &ulen, sizeof(ulen)) < 0 || gnutls_hmac(h, user, ulen) < 0 ||
	    gnutls_hmac(h, password, strlen(password)) < 0) {
		gnutls_hmac_deinit(h, NULL);
		return false;
	}
	gnutls_hmac_deinit(h, digest);
	return true;
}

static bool cache_lookup(struct basicauth *a, const uint8_t digest[DIGEST_SIZE])
{
	bool hit = false;

	pthread_mutex_lock(&a->cache_lock);
	/* Every slot, every time: the time taken does not depend on which one matches. */
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		hit |= a->used[i] & equal_ct(a->cache[i], digest, DIGEST_SIZE);
	pthread_mutex_unlock(&a->cache_lock);
	return hit;
}

static void cache_insert(struct basicauth *a, const uint8_t digest[DIGEST_SIZE])
{
	pthread_mutex_lock(&a->cache_lock);
	memcpy(a->cache[a->next], digest, DIGEST_SIZE);
	a->used[a->next] = true;
	a->next = (a->next + 1) % CACHE_SLOTS;
	pthread_mutex_unlock(&a->cache_lock);
}

bool basicauth_check(struct basicauth *a, const char *authorization)
{
	const struct webconfig_user *u;
	char *user = NULL, *password = NULL;
	uint8_t digest[DIGEST_SIZE];
	bool have_digest, ok;

	if (!a || basicauth_parse_header(authorization, &user, &password) < 0)
		return false;

	have_digest = cache_digest(a, user, password, digest);
	if (have_digest && cache_lookup(a, digest)) {
		ok = true;
		goto out;
	}

	u = webconfig_find_user(a->config, user);
	pthread_mutex_lock(&a->bcrypt_lock);
	ok = bcrypt_verify_with(a->crypt, u ? u->hash : dummy_hash, password);
	pthread_mutex_unlock(&a->bcrypt_lock);
	ok = ok && u;
	if (ok && have_digest)
		cache_insert(a, digest);

out:
	explicit_bzero(digest, sizeof(digest));
	explicit_bzero(password, strlen(password));
	free(password);
	free(user);
	return ok;
}
