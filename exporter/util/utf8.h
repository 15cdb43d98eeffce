/* SPDX-License-Identifier: MIT */
/* Decoding UTF-8, strictly (RFC 3629). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Length of the valid UTF-8 sequence at s (of n > 0 bytes) and its code
 * point, or 0 for an invalid one (overlong forms, surrogates and values
 * beyond U+10FFFF included).
 */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *ret_cp);
