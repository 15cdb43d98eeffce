/* SPDX-License-Identifier: MIT */
/* Ownership helpers used across the project (systemd style). */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _pure_         __attribute__((pure))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Returns *p and sets *p to its null value: the visible hand-over of ownership. */
#define TAKE_GENERIC(var, type, nullvalue)                                                         \
	__extension__({                                                                            \
		type *_pvar_ = &(var);                                                             \
		type _var_ = *_pvar_;                                                              \
		type _nullvalue_ = nullvalue;                                                      \
		*_pvar_ = _nullvalue_;                                                             \
		_var_;                                                                             \
	})
#define TAKE_PTR(p) TAKE_GENERIC((p), __typeof__(p), NULL)
#define TAKE_FD(fd) TAKE_GENERIC((fd), int, -1)

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Closes fd if >= 0, keeping errno; returns -1 for "fd = safe_close(fd)". */
static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -1;
}

static inline void closep(int *fd)
{
	safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Declares a cleanup function for a "T *T_free(T *)"-style destructor. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
	static inline void func##p(type *p)                                                        \
	{                                                                                          \
		if (*p)                                                                            \
			func(*p);                                                                  \
	}
