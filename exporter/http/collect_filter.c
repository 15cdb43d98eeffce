/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http/collect_filter.h"

void collect_filter_init(struct collect_filter *f, const char *const *names, size_t n_names,
			 uint32_t enabled)
{
	*f = (struct collect_filter){ .names = names, .n_names = n_names, .enabled = enabled };
}

/* "procfs, file, ..." of the enabled collectors, for a reason line. */
static void list_enabled(const struct collect_filter *f, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < f->n_names && used < len; i++) {
		int n;

		if (!(f->enabled & (1u << i)))
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", f->names[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* The client's value for a reason line: at most 64 bytes, control bytes as '?', one line. */
static void printable(const char *value, char *buf, size_t len)
{
	size_t n = 0;

	for (; value[n] && n < len - 1 && n < 64; n++)
		buf[n] = (unsigned char)value[n] < 0x20 || value[n] == 0x7f ? '?' : value[n];
	buf[n] = '\0';
}

void collect_filter_arg(struct collect_filter *f, const char *key, const char *value)
{
	bool collect = key && strcmp(key, "collect[]") == 0;
	bool exclude = key && strcmp(key, "exclude[]") == 0;
	char known[128], shown[65];
	size_t i;

	if ((!collect && !exclude) || f->bad[0])
		return;
	f->has_collect |= collect;
	f->has_exclude |= exclude;
	value = value ? value : "";
	for (i = 0; i < f->n_names; i++)
		if (strcmp(f->names[i], value) == 0)
			break;
	if (i == f->n_names || !(f->enabled & (1u << i))) {
		list_enabled(f, known, sizeof(known));
		printable(value, shown, sizeof(shown));
		snprintf(f->bad, sizeof(f->bad), "%s: %s collector \"%s\" (enabled: %s)", key,
			 i == f->n_names ? "unknown" : "disabled", shown, known);
		return;
	}
	if (collect)
		f->collect |= 1u << i;
	else
		f->exclude |= 1u << i;
}

int collect_filter_mask(struct collect_filter *f, uint32_t *ret_mask)
{
	if (!f->bad[0] && f->has_collect && f->has_exclude)
		snprintf(f->bad, sizeof(f->bad), "collect[] and exclude[] cannot be combined");
	if (f->bad[0])
		return -EINVAL;
	if (f->has_collect)
		*ret_mask = f->collect;
	else
		*ret_mask = f->enabled & ~f->exclude;
	return 0;
}
