/* SPDX-License-Identifier: MIT */
/*
 * HTTP basic authentication against the bcrypt hashes of the web config,
 * as the exporter-toolkit does it: bcrypt through libxcrypt's crypt_rn(),
 * one bcrypt at a time, a fixed dummy hash for unknown users (so that timing
 * does not tell which users exist), and a cache of successful logins so that
 * a scrape does not pay for bcrypt (deliberately ~100 ms) every time.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "web/webconfig.h"

struct basicauth;

/* A checker for the users of c, which must outlive it. 0 or -ENOMEM. */
int basicauth_new(const struct webconfig *c, struct basicauth **ret);

/* Frees the checker, wiping its cache. Accepts NULL, returns NULL. */
struct basicauth *basicauth_free(struct basicauth *a);

/*
 * True if the Authorization header value (may be NULL) is "Basic" credentials
 * of a configured user with the right password. Thread-safe.
 */
bool basicauth_check(struct basicauth *a, const char *authorization);

/*
 * Decodes "Basic base64(user:password)" (scheme case-insensitive, strict
 * base64) into two malloc'd strings; 0, or -EINVAL if malformed (or if either
 * part holds a NUL), or -ENOMEM.
 */
int basicauth_parse_header(const char *authorization, char **ret_user, char **ret_password);

/* True if password matches the bcrypt hash; compares in constant time. */
bool basicauth_bcrypt_verify(const char *hash, const char *password);
