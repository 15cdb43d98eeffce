/* SPDX-License-Identifier: MIT */
/* Saved stats blobs (--kvm.stats-file): offline inspection, bug reports, tests. */
#pragma once

#include <stddef.h>

#include "collector.h"

/* Largest blob accepted; a real x86 vCPU file is about 4 KiB. */
#define STATS_FILE_MAX (32u << 20)

/*
 * Loads a saved stats file and adds it to the VM of the same id pid (files
 * of one VM group together, named pid-<pid>). On failure returns -errno and
 * writes one sentence naming the problem (not the path) into errbuf.
 */
int source_file_load(struct collector *c, const char *path, char *errbuf, size_t errlen);
