/* SPDX-License-Identifier: MIT */
/* HELP sentences for KVM statistics (library-internal). */
#pragma once

#include <stdbool.h>

/* The curated sentence for a known descriptor name, or NULL. */
const char *kvmstats_help_curated(const char *desc_name);

/* A new HELP string for a descriptor: curated where known, else generated. NULL on ENOMEM. */
char *kvmstats_help_text(const char *desc_name, bool vcpu, unsigned type, unsigned unit,
			 unsigned base, int exponent);
