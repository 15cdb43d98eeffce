/* SPDX-License-Identifier: MIT */
/* Go-style durations, as the Prometheus ecosystem writes them in flags and files. */
#pragma once

#include <stdint.h>

/*
 * Parses a Go-style duration ("5s", "500ms", "1m30s"), truncated to whole
 * microseconds. 0, -EINVAL (not a duration) or -ERANGE (too long).
 */
int parse_duration_usec(const char *s, uint64_t *ret_usec);
