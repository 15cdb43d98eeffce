/* SPDX-License-Identifier: MIT */
/* Writing message payloads by hand, in the native byte order of the protocol. */
#pragma once

#include <stdint.h>
#include <string.h>

static inline void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}
