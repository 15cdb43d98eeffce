/* SPDX-License-Identifier: MIT */
/* The sentences that name each validation rule in error messages. */
#include <stdio.h>

#include "kvmstats.h"
#include "macro.h"

static const char *const rule_text[KVMSTATS_RULE__MAX] = {
	[KVMSTATS_RULE_NONE] = "no error",
	[KVMSTATS_RULE_SHORT_HEADER] = "header not read completely (file too short)",
	[KVMSTATS_RULE_HEADER_FLAGS] = "header flags are not zero",
	[KVMSTATS_RULE_NAME_SIZE] = "header name_size is zero or too large",
	[KVMSTATS_RULE_NUM_DESC] = "header num_desc declares too large a descriptor block",
	[KVMSTATS_RULE_ID_READ] = "id string not read completely (file too short)",
	[KVMSTATS_RULE_ID_UNTERMINATED] = "id string not NUL-terminated within name_size",
	[KVMSTATS_RULE_ID_PREFIX] = "id string does not start with \"kvm\"",
	[KVMSTATS_RULE_OFFSETS] = "descriptor or data offset points inside the header",
	[KVMSTATS_RULE_DESC_OVERLAP] = "descriptor block overlaps the data block",
	[KVMSTATS_RULE_DESC_READ] = "descriptor block not read completely (file too short)",
	[KVMSTATS_RULE_NAME_UNTERMINATED] = "descriptor name not NUL-terminated within name_size",
	[KVMSTATS_RULE_NAME_EMPTY] = "descriptor name is empty",
	[KVMSTATS_RULE_EXPONENT] = "descriptor exponent has the wrong sign for its unit",
	[KVMSTATS_RULE_SIZE_ZERO] = "descriptor size is zero",
	[KVMSTATS_RULE_BUCKET_SIZE] =
		"descriptor bucket_size must be set for linear histograms and only for them",
	[KVMSTATS_RULE_VALUE_RANGE] = "descriptor values lie outside the data block bound",
	[KVMSTATS_RULE_DATA_OVERLAP] = "data block overlaps the descriptor block",
	[KVMSTATS_RULE_DATA_SIZE] =
		"data block is smaller than the values its descriptors declare (values overlap)",
	[KVMSTATS_RULE_DATA_READ] = "data block not read completely (file too short)",
};

const char *kvmstats_rule_to_string(enum kvmstats_rule rule)
{
	if ((unsigned)rule >= ELEMENTSOF(rule_text) || !rule_text[rule])
		return "unknown rule";
	return rule_text[rule];
}

int kvmstats_error_format(const struct kvmstats_error *err, char *buf, size_t len)
{
	const char *what = kvmstats_rule_to_string(err->rule);

	if (err->desc >= 0 && err->desc_name[0])
		return snprintf(buf, len, "%s (descriptor %d \"%s\", value %lld)", what, err->desc,
				err->desc_name, (long long)err->value);
	if (err->desc >= 0)
		return snprintf(buf, len, "%s (descriptor %d, value %lld)", what, err->desc,
				(long long)err->value);
	return snprintf(buf, len, "%s (value %lld)", what, (long long)err->value);
}
