/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the web-config parser (--web.config.file). The file is
 * the operator's, but a parser that crashes or loops on a typo would stop the
 * service at start; every failure must also be one line naming the problem.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "web/webconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct webconfig *c = NULL;
	char err[512] = "";
	int r;

	/* Relative paths point into a directory that does not exist: no file is ever read. */
	r = webconfig_parse((const char *)data, size, "fuzz.yml", "/nonexistent-fuzz-dir", &c, err,
			    sizeof(err));
	if (r < 0) {
		if (c || err[0] == '\0' || strchr(err, '\n'))
			abort();
	} else if (!c) {
		abort();
	}
	webconfig_free(c);
	return 0;
}
