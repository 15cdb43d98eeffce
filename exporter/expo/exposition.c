/* SPDX-License-Identifier: MIT */
#include "expo/exposition.h"

const char *exposition_content_type(enum exposition_format fmt)
{
	return fmt == EXPOSITION_OPENMETRICS_100
		       ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
		       : "text/plain; version=0.0.4; charset=utf-8";
}

void exposition_write_end(struct outbuf *out, enum exposition_format fmt)
{
	if (fmt == EXPOSITION_OPENMETRICS_100)
		outbuf_puts(out, "# EOF\n");
}
