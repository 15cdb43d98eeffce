/* SPDX-License-Identifier: MIT */
/*
 * collect[]/exclude[] come from any client's query string: whatever the
 * keys and values, the filter terminates, asks only for enabled
 * collectors, and a refusal is one bounded line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/collect_filter.h"

static const char *const names[] = { "procfs", "file", "canary", "handoff", "vhost", "exporter" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct collect_filter f;
	uint32_t mask = 0xdeadbeef, enabled;
	char *s, *save = NULL;
	int r;

	if (size < 1)
		return 0;
	/* The first byte picks the enabled set; the rest is "key=value&key=value". */
	enabled = data[0] & 0x3f;
	s = malloc(size);
	CHECK(s);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	collect_filter_init(&f, names, 6, enabled);
	for (char *arg = strtok_r(s, "&", &save); arg; arg = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(arg, '=');

		if (eq)
			*eq++ = '\0';
		collect_filter_arg(&f, arg, eq);
	}
	r = collect_filter_mask(&f, &mask);
	if (r == 0) {
		CHECK((mask & ~enabled) == 0);
		CHECK(f.bad[0] == '\0');
	} else {
		CHECK(f.bad[0] != '\0');
		CHECK(memchr(f.bad, '\0', sizeof(f.bad)) != NULL);
		CHECK(strchr(f.bad, '\n') == NULL);
	}
	free(s);
	return 0;
}
