/* SPDX-License-Identifier: MIT */
/*
 * Golden files in tests/data/ for the exposition tests: read, compare, and
 * rewrite with UPDATE_GOLDEN=1 (then review the diff). Include after cmocka.h.
 */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct blob {
	uint8_t *data;
	size_t len;
};

static inline const char *source_dir(void)
{
	const char *dir = getenv("TESTS_SOURCE_DIR");

	if (!dir)
		fail_msg("TESTS_SOURCE_DIR is not set (the tests/ directory)");
	return dir;
}

/* Reads a whole file, NUL-terminated. 0 or -errno. */
static inline int read_whole(const char *path, struct blob *b)
{
	FILE *f = fopen(path, "rbe");
	long n;

	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return -EIO;
	}
	b->len = (size_t)n;
	b->data = malloc(b->len + 1);
	if (!b->data || fread(b->data, 1, b->len, f) != b->len) {
		fclose(f);
		free(b->data);
		return -EIO;
	}
	b->data[b->len] = '\0';
	fclose(f);
	return 0;
}

/*
 * Reads tests/data/<name> for a group setup (where cmocka cannot fail a
 * test): -1 after saying why.
 */
static inline int load_data_blob(const char *name, struct blob *b)
{
	const char *dir = getenv("TESTS_SOURCE_DIR");
	char path[4096];
	int r;

	if (!dir) {
		print_error("TESTS_SOURCE_DIR is not set (the tests/ directory)\n");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/data/%s", dir, name);
	r = read_whole(path, b);
	if (r < 0) {
		print_error("cannot read %s: %s\n", path, strerror(-r));
		return -1;
	}
	/* No NUL here: an exact-size buffer lets ASan catch a reader going one byte past. */
	uint8_t *exact = realloc(b->data, b->len ? b->len : 1);
	if (exact)
		b->data = exact;
	return 0;
}

/* Fails unless got equals tests/data/<name>, naming the first line that differs. */
static inline void compare_golden(const char *name, const char *got)
{
	char path[4096];
	const char *update = getenv("UPDATE_GOLDEN");
	struct blob want = { 0 };
	int r;

	snprintf(path, sizeof(path), "%s/data/%s", source_dir(), name);
	if (update && strcmp(update, "1") == 0) {
		FILE *f = fopen(path, "we");

		assert_non_null(f);
		assert_int_equal(fwrite(got, 1, strlen(got), f), strlen(got));
		assert_int_equal(fclose(f), 0);
		print_message("UPDATE_GOLDEN=1: rewrote %s; review the diff\n", path);
		return;
	}
	r = read_whole(path, &want);
	if (r < 0)
		fail_msg("cannot read %s: %s (UPDATE_GOLDEN=1 writes it)", path, strerror(-r));
	if (strcmp((const char *)want.data, got) != 0) {
		const char *a = (const char *)want.data, *b = got;
		unsigned line = 1;

		while (*a && *a == *b) {
			if (*a == '\n')
				line++;
			a++, b++;
		}
		while (a > (const char *)want.data && a[-1] != '\n')
			a--, b--;
		print_error("%s differs at line %u:\n  want: %.*s\n  got:  %.*s\n", name, line,
			    (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b);
		free(want.data);
		fail_msg("output differs from %s (deliberate change: UPDATE_GOLDEN=1)", path);
	}
	free(want.data);
}
