/* SPDX-License-Identifier: MIT */
/* Writing the kvmstats_exporter_* families (docs/metrics.md, "Exporter self-metrics"). */
#pragma once

#include "expo/exposition.h"
#include "expo/outbuf.h"

struct collector;

/* Writes the kvmstats_exporter_* families. Call with the collector locked. */
int self_metrics_write(struct outbuf *out, const struct collector *c, double scrape_seconds,
		       enum exposition_format fmt);
