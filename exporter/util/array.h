/* SPDX-License-Identifier: MIT */
/* A growing array: room for one more element, doubling from a first size. */
#pragma once

#include <errno.h>
#include <stdlib.h>

/*
 * Makes room for element number *n of *items (each `size` bytes), doubling
 * *cap (from `first` when the array is empty). 0, or -ENOMEM with the array
 * left as it was.
 */
static inline int array_make_room(void **items, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : first;
	p = reallocarray(*items, ncap, size);
	if (!p)
		return -ENOMEM;
	*items = p;
	*cap = ncap;
	return 0;
}
