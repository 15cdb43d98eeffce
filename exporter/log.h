/* SPDX-License-Identifier: MIT */
/* Logging for the daemon: levelled, one line per event, logfmt on stderr. */
#pragma once

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* Parses "debug|info|warn|error"; 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *ret);
/* Sets the minimum level printed. */
void log_set_level(enum log_level level);
/* Prints one logfmt line: level=... msg="..." plus the formatted key=value tail (may be NULL). */
void log_msg(enum log_level level, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(msg, ...) log_msg(LOG_LEVEL_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_msg(LOG_LEVEL_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_msg(LOG_LEVEL_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_msg(LOG_LEVEL_ERROR, msg, __VA_ARGS__)
