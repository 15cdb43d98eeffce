/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "stats_filter.h"

int stats_filter_compile(regex_t *ret, const char *pattern, char *why, size_t why_len)
{
	_cleanup_free_ char *anchored = NULL;
	int r;

	if (asprintf(&anchored, "^(%s)$", pattern) < 0) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	r = regcomp(ret, anchored, REG_EXTENDED | REG_NOSUB);
	if (r != 0) {
		regerror(r, ret, why, why_len);
		return -EINVAL;
	}
	return 0;
}

/* One flag's pattern; the reason names the flag. */
static int compile(regex_t *re, const char *flag, const char *pattern, char *why, size_t why_len)
{
	char err[160];
	int r = stats_filter_compile(re, pattern, err, sizeof(err));

	if (r < 0)
		snprintf(why, why_len, "%s: invalid regular expression \"%s\": %s", flag, pattern,
			 err);
	return r;
}

int stats_filter_init(struct stats_filter *ret, const char *include, const char *exclude, char *why,
		      size_t why_len)
{
	int r;

	*ret = (struct stats_filter){ 0 };
	if (include && *include) {
		r = compile(&ret->include, "--kvm.stats-include", include, why, why_len);
		if (r < 0)
			return r;
		ret->has_include = true;
	}
	if (exclude && *exclude) {
		r = compile(&ret->exclude, "--kvm.stats-exclude", exclude, why, why_len);
		if (r < 0) {
			stats_filter_release(ret);
			return r;
		}
		ret->has_exclude = true;
	}
	return 0;
}

void stats_filter_release(struct stats_filter *f)
{
	if (f->has_include)
		regfree(&f->include);
	if (f->has_exclude)
		regfree(&f->exclude);
	*f = (struct stats_filter){ 0 };
}

bool stats_filter_keep(const char *metric, void *userdata)
{
	const struct stats_filter *f = userdata;

	if (!f)
		return true;
	if (f->has_include && regexec(&f->include, metric, 0, NULL, 0) != 0)
		return false;
	return !(f->has_exclude && regexec(&f->exclude, metric, 0, NULL, 0) == 0);
}
