/* SPDX-License-Identifier: MIT */
/*
 * logfmt lines on stderr:
 *
 *   ts=2026-11-21T05:00:00.123Z level=info msg="listening" address=[::]:9977
 *
 * Each line is assembled in memory and written with one write(2), so lines
 * from different threads never interleave (stderr writes below PIPE_BUF are
 * atomic on pipes; on files and terminals one write is one line in practice).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "log/log_sinks.h"
#include "macro.h"

static _Atomic int log_min_level = LOG_LEVEL_INFO;
static _Atomic int log_format = LOG_FORMAT_LOGFMT;
static _Atomic bool log_to_journal = false;

int log_format_parse(const char *s, enum log_format *ret)
{
	if (s && strcmp(s, "logfmt") == 0)
		*ret = LOG_FORMAT_LOGFMT;
	else if (s && strcmp(s, "json") == 0)
		*ret = LOG_FORMAT_JSON;
	else
		return -EINVAL;
	return 0;
}

void log_set_format(enum log_format format)
{
	atomic_store(&log_format, (int)format);
	atomic_store(&log_to_journal, log_stderr_is_journal());
}

/* syslog priorities, as the journal wants them. */
static int level_priority(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_DEBUG:
		return 7;
	case LOG_LEVEL_INFO:
		return 6;
	case LOG_LEVEL_WARN:
		return 4;
	default:
		return 3;
	}
}

static void write_all(const char *p, size_t n);

/* Journal or JSON; false when the event must still be written as logfmt. */
static bool log_structured(enum log_level level, const char *ts, const char *lvl, const char *msg,
			   const char *tail, size_t tail_n)
{
	struct outbuf b = { 0 };
	bool done = false;

	if (atomic_load(&log_to_journal)) {
		if (log_journal_record(&b, level_priority(level), msg, tail, tail_n) == 0 &&
		    log_journal_send(b.data, b.len) == 0)
			done = true;
		outbuf_reset(&b);
	}
	if (!done && atomic_load(&log_format) == LOG_FORMAT_JSON &&
	    log_json_line(&b, ts, lvl, msg, tail, tail_n) == 0) {
		write_all(b.data, b.len);
		done = true;
	}
	outbuf_release(&b);
	return done;
}

static const char *const level_names[] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

int log_level_parse(const char *s, enum log_level *ret)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
		if (strcmp(s, level_names[i]) == 0) {
			*ret = (enum log_level)i;
			return 0;
		}
	return -EINVAL;
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&log_min_level, (int)level, memory_order_relaxed);
}

/*
 * Escaped length of s for a logfmt quoted value: \\ \" \n \r \t, other
 * control bytes as \u00XX, everything else (UTF-8 included) as is. The
 * caller-formatted tail goes through the same escaper without quotes, so a
 * stray newline in a value can never split one event into two lines.
 */
static size_t escaped_len(const char *s, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\' || c == '"' || c == '\n' || c == '\r' || c == '\t')
			len += 2;
		else if (c < 0x20 || c == 0x7f)
			len += 6;
		else
			len += 1;
	}
	return len;
}

static char *escape_into(char *p, const char *s, size_t n, bool quotes)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '\\':
			*p++ = '\\';
			*p++ = '\\';
			break;
		case '"':
			/* Unquoted tails carry the caller's own quoting. */
			if (quotes)
				*p++ = '\\';
			*p++ = '"';
			break;
		case '\n':
			*p++ = '\\';
			*p++ = 'n';
			break;
		case '\r':
			*p++ = '\\';
			*p++ = 'r';
			break;
		case '\t':
			*p++ = '\\';
			*p++ = 't';
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				memcpy(p, "\\u00", 4);
				p[4] = hex[c >> 4];
				p[5] = hex[c & 0xf];
				p += 6;
			} else {
				*p++ = (char)c;
			}
		}
	}
	return p;
}

/* Backslashes in the tail stay as the caller wrote them (they may already be escapes). */
static size_t tail_len(const char *s, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n' || c == '\r' || c == '\t')
			len += 2;
		else if (c < 0x20 || c == 0x7f)
			len += 6;
		else
			len += 1;
	}
	return len;
}

static char *tail_into(char *p, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\\' || c == '"')
			*p++ = c;
		else
			p = escape_into(p, &s[i], 1, true);
	}
	return p;
}

static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = write(STDERR_FILENO, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return; /* nowhere left to complain to */
		p += r;
		n -= (size_t)r;
	}
}

/* "2026-11-21T05:00:00.123Z" (RFC 3339, UTC, milliseconds). */
static void format_timestamp(char *buf, size_t len)
{
	struct timespec now;
	struct tm tm;

	if (clock_gettime(CLOCK_REALTIME, &now) < 0 || !gmtime_r(&now.tv_sec, &tm)) {
		snprintf(buf, len, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000L);
}

void log_msg(enum log_level level, const char *msg, const char *fmt, ...)
{
	char ts[64], tail_stack[512], line_stack[1024];
	_cleanup_free_ char *tail_heap = NULL, *line_heap = NULL;
	const char *tail = "", *lvl;
	size_t msg_n, tail_n = 0, need;
	int saved_errno = errno;
	char *line, *p;

	if ((int)level < atomic_load_explicit(&log_min_level, memory_order_relaxed))
		return;
	lvl = (unsigned)level < ELEMENTSOF(level_names) ? level_names[level] : "error";
	if (!msg)
		msg = "";

	if (fmt) {
		va_list ap;
		int r;

		va_start(ap, fmt);
		r = vsnprintf(tail_stack, sizeof(tail_stack), fmt, ap);
		va_end(ap);
		if (r > 0 && (size_t)r < sizeof(tail_stack)) {
			tail = tail_stack;
			tail_n = (size_t)r;
		} else if (r > 0) {
			va_start(ap, fmt);
			r = vasprintf(&tail_heap, fmt, ap);
			va_end(ap);
			if (r >= 0) {
				tail = tail_heap;
				tail_n = (size_t)r;
			} else {
				tail_heap = NULL; /* undefined after failure */
				tail = "log_error=\"tail dropped: out of memory\"";
				tail_n = strlen(tail);
			}
		}
	}

	format_timestamp(ts, sizeof(ts));
	if ((atomic_load(&log_format) != LOG_FORMAT_LOGFMT || atomic_load(&log_to_journal)) &&
	    log_structured(level, ts, lvl, msg, tail, tail_n)) {
		errno = saved_errno;
		return;
	}
	msg_n = strlen(msg);
	/* ts=TS level=LVL msg="MSG" TAIL\n */
	need = 3 + strlen(ts) + 7 + strlen(lvl) + 6 + escaped_len(msg, msg_n) + 1 +
	       (tail_n ? 1 + tail_len(tail, tail_n) : 0) + 1;
	if (need <= sizeof(line_stack)) {
		line = line_stack;
	} else {
		line = line_heap = malloc(need);
		if (!line) {
			/* Say something rather than nothing. */
			int n = snprintf(line_stack, sizeof(line_stack),
					 "ts=%s level=%s msg=\"log line dropped: out of memory\"\n",
					 ts, lvl);
			if (n > 0)
				write_all(line_stack, (size_t)n < sizeof(line_stack)
							      ? (size_t)n
							      : sizeof(line_stack) - 1);
			errno = saved_errno;
			return;
		}
	}

	p = line;
	p += sprintf(p, "ts=%s level=%s msg=\"", ts, lvl);
	p = escape_into(p, msg, msg_n, true);
	*p++ = '"';
	if (tail_n) {
		*p++ = ' ';
		p = tail_into(p, tail, tail_n);
	}
	*p++ = '\n';
	write_all(line, (size_t)(p - line));
	errno = saved_errno;
}
