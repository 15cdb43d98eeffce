/* SPDX-License-Identifier: MIT */
/*
 * The shim reads the exporter's answers inside the VMM's process: whatever
 * the socket delivers, handoff_parse_answer() terminates, stays in bounds,
 * returns one of its three results, and leaves a NUL-terminated, printable
 * sentence of at most the buffer's size. Every answer the exporter can
 * build (from the input as an error sentence) reads back as a refusal.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/handoff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[64], answer[HANDOFF_MAX_ANSWER], *text;
	int r, n;

	/* An exact-size copy, so that ASan sees any read past the datagram. */
	text = malloc(size ? size : 1);
	CHECK(text);
	memcpy(text, data, size);
	memset(err, 'X', sizeof(err));
	r = handoff_parse_answer(text, size, err, sizeof(err));
	CHECK(r == 1 || r == 0 || r == -EBADMSG);
	CHECK(memchr(err, '\0', sizeof(err)));
	for (const char *p = err; *p; p++)
		CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
	free(text);

	/* The other direction: the input as the exporter's error sentence. */
	text = malloc(size + 1);
	CHECK(text);
	memcpy(text, data, size);
	text[size] = '\0';
	n = handoff_build_answer(answer, sizeof(answer), text);
	CHECK(n > 0 && (size_t)n < sizeof(answer));
	CHECK(handoff_parse_answer(answer, (size_t)n, err, sizeof(err)) == 0);
	free(text);
	return 0;
}
