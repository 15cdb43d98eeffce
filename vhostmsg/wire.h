/* SPDX-License-Identifier: MIT */
/* Native-endian loads and stores at any alignment (payloads arrive as bytes). */
#pragma once

#include <stdint.h>
#include <string.h>

static inline uint32_t wire_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t wire_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void wire_put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
