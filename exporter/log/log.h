/* SPDX-License-Identifier: MIT */
/*
 * Logging for the daemon: levelled, one event per line on stderr as logfmt or
 * JSON, or native journal records (fields kept) when stderr is the journal.
 */
#pragma once

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

enum log_format {
	LOG_FORMAT_LOGFMT,
	LOG_FORMAT_JSON,
};

/* Parses "logfmt|json"; 0 or -EINVAL. */
int log_format_parse(const char *s, enum log_format *ret);
/*
 * Sets the stderr format; when stderr is connected to the journal, events go
 * to the journal as records with one field per key instead.
 */
void log_set_format(enum log_format format);

/* Parses "debug|info|warn|error"; 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *ret);
/* Sets the minimum level printed. */
void log_set_level(enum log_level level);
/*
 * Logs one event: msg plus the caller's key=value tail (logfmt syntax, may be
 * NULL), rendered in the configured format.
 */
void log_msg(enum log_level level, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(msg, ...) log_msg(LOG_LEVEL_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_msg(LOG_LEVEL_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_msg(LOG_LEVEL_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_msg(LOG_LEVEL_ERROR, msg, __VA_ARGS__)
