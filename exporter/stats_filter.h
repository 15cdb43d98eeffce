/* SPDX-License-Identifier: MIT */
/*
 * --kvm.stats-include / --kvm.stats-exclude: which KVM families are exported,
 * by POSIX extended regular expressions over the sample names a family
 * writes in text 0.0.4 ("kvm_vcpu_exits_total", "kvm_vcpu_halt_wait_seconds"),
 * each anchored at both ends as Prometheus anchors its relabelling regexes.
 * Applied once when a schema is first translated: a scrape never sees it.
 */
#pragma once

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

struct stats_filter {
	regex_t include, exclude;
	bool has_include, has_exclude;
};

/* Compiles ^(pattern)$ into *ret. 0, or -EINVAL with regerror's reason in why. */
int stats_filter_compile(regex_t *ret, const char *pattern, char *why, size_t why_len);

/*
 * Compiles the two patterns (NULL or "" for none) into *ret. 0, or -EINVAL
 * with a one-line reason naming the flag in why.
 */
int stats_filter_init(struct stats_filter *ret, const char *include, const char *exclude, char *why,
		      size_t why_len);

/* Frees the compiled patterns; the filter keeps everything afterwards. */
void stats_filter_release(struct stats_filter *f);

/* True when f (a struct stats_filter *, or NULL) keeps the family named metric. */
bool stats_filter_keep(const char *metric, void *f);
