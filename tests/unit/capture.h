/* SPDX-License-Identifier: MIT */
/* Capturing what a test's code writes on stdout or stderr. Include after cmocka.h. */
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

struct capture {
	int fd;
	int saved;
	int memfd;
};

static inline void capture_start(struct capture *c, int fd)
{
	fflush(stdout);
	fflush(stderr);
	c->fd = fd;
	c->memfd = memfd_create("capture", MFD_CLOEXEC);
	assert_true(c->memfd >= 0);
	/*
	 * A memfd has no atomic file position (unlike a file opened by path),
	 * so concurrent writers would overwrite each other; O_APPEND restores
	 * what a real stderr (pipe, socket, file) gives.
	 */
	assert_int_equal(fcntl(c->memfd, F_SETFL, O_APPEND), 0);
	c->saved = dup(fd);
	assert_true(c->saved >= 0);
	assert_true(dup2(c->memfd, fd) >= 0);
}

/* Restores the fd and returns what was written to it (malloc'd, NUL-terminated). */
static inline char *capture_stop(struct capture *c)
{
	off_t n;
	char *s;

	fflush(stdout);
	fflush(stderr);
	assert_true(dup2(c->saved, c->fd) >= 0);
	close(c->saved);
	n = lseek(c->memfd, 0, SEEK_END);
	assert_true(n >= 0);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(pread(c->memfd, s, (size_t)n, 0), n);
	close(c->memfd);
	return s;
}

static inline size_t count_char(const char *s, char ch)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == ch;
	return n;
}
