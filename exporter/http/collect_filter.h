/* SPDX-License-Identifier: MIT */
/*
 * collect[]=NAME and exclude[]=NAME on the telemetry path, as node_exporter
 * takes them: limit one scrape to some collectors, or leave some out. The
 * names are the caller's (http_config.collectors); a mask bit per name.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest reason written by collect_filter_mask(). */
#define COLLECT_FILTER_WHY_MAX 256

struct collect_filter {
	const char *const *names; /* bit i is names[i] */
	size_t n_names;
	uint32_t enabled; /* bits of the collectors this exporter runs */
	uint32_t collect, exclude;
	bool has_collect, has_exclude;
	char bad[COLLECT_FILTER_WHY_MAX]; /* the first problem, "" while none */
};

/* Starts reading one request's arguments. */
void collect_filter_init(struct collect_filter *f, const char *const *names, size_t n_names,
			 uint32_t enabled);

/* Takes one query argument; anything but collect[] and exclude[] is ignored. */
void collect_filter_arg(struct collect_filter *f, const char *key, const char *value);

/*
 * The collectors this scrape asks for: 0 with *ret_mask set (all enabled ones
 * without arguments), or -EINVAL with the one-line reason in f->bad (both
 * collect[] and exclude[], an unknown name, or one this exporter does not run).
 */
int collect_filter_mask(struct collect_filter *f, uint32_t *ret_mask);
