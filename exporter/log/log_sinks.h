/* SPDX-License-Identifier: MIT */
/* JSON and journal renderings of a log event (used by log.c; exposed for tests). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "expo/outbuf.h"

/*
 * Takes the next key=value (value bare or "quoted" with \" and \\ escapes)
 * of a logfmt tail at *p, advancing it. False at the end.
 */
bool logfmt_next(const char **p, const char *end, struct outbuf *key, struct outbuf *val);

/* Appends one JSON line: {"ts":...,"level":...,"msg":...,<tail fields>}. 0 or -ENOMEM. */
int log_json_line(struct outbuf *out, const char *ts, const char *level, const char *msg,
		  const char *tail, size_t tail_n);

/* Most fields one record may have (three of ours, the rest from the tail). */
#define LOG_JOURNAL_FIELDS_MAX 64

/*
 * Appends a journal record as NUL-terminated KEY=value fields: MESSAGE,
 * PRIORITY, SYSLOG_IDENTIFIER, then one field per tail key. 0 or -ENOMEM.
 */
int log_journal_record(struct outbuf *out, int priority, const char *msg, const char *tail,
		       size_t tail_n);

/*
 * Sends a record built by log_journal_record() with sd_journal_sendv(3).
 * 0 or -errno (-E2BIG beyond LOG_JOURNAL_FIELDS_MAX; the caller then falls
 * back to stderr).
 */
int log_journal_send(const void *record, size_t len);

/* True when stderr is the stream systemd connected to the journal (JOURNAL_STREAM). */
bool log_stderr_is_journal(void);
