/* SPDX-License-Identifier: MIT */
/*
 * The structured log sinks: JSON lines on stderr (--log.format=json) and the
 * systemd journal through sd_journal_sendv(3) (when stderr is connected to
 * the journal, so that fields such as VM=web-1 stay fields instead of text).
 *
 * Call sites write their fields as a logfmt tail (`vm=%s err="%s"`); both
 * sinks parse that tail back into key/value pairs, so one log call serves
 * every format.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* CODE_FILE= would always name this file, not the caller: leave it out. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "log/log_sinks.h"
#include "macro.h"

bool logfmt_next(const char **p, const char *end, struct outbuf *key, struct outbuf *val)
{
	const char *s = *p;

	outbuf_reset(key);
	outbuf_reset(val);
	while (s < end && *s == ' ')
		s++;
	if (s >= end)
		return false;
	while (s < end && *s != '=' && *s != ' ')
		outbuf_putc(key, *s++);
	if (s < end && *s == '=') {
		s++;
		if (s < end && *s == '"') {
			/* Quoted: \" and \\ are escapes; anything else is taken as written. */
			for (s++; s < end && *s != '"'; s++) {
				if (*s == '\\' && s + 1 < end && (s[1] == '"' || s[1] == '\\'))
					s++;
				outbuf_putc(val, *s);
			}
			if (s < end)
				s++;
		} else {
			while (s < end && *s != ' ')
				outbuf_putc(val, *s++);
		}
	}
	*p = s;
	return true;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp, min;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, cp = s[0] & 0x1f, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, cp = s[0] & 0x0f, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, cp = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string: quotes, escapes, and U+FFFD for bytes that are not UTF-8. */
static void json_put_string(struct outbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	outbuf_putc(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t len;

		if (c == '"' || c == '\\') {
			outbuf_putc(b, '\\');
			outbuf_putc(b, (char)c);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf] };

			outbuf_put(b, esc, sizeof(esc));
			i++;
		} else if ((len = utf8_len((const unsigned char *)s + i, n - i)) > 0) {
			outbuf_put(b, s + i, len);
			i += len;
		} else {
			outbuf_puts(b, "\\ufffd");
			i++;
		}
	}
	outbuf_putc(b, '"');
}

int log_json_line(struct outbuf *out, const char *ts, const char *level, const char *msg,
		  const char *tail, size_t tail_n)
{
	struct outbuf key = { 0 }, val = { 0 };
	const char *p = tail, *end = tail + tail_n;

	outbuf_puts(out, "{\"ts\":");
	json_put_string(out, ts, strlen(ts));
	outbuf_puts(out, ",\"level\":");
	json_put_string(out, level, strlen(level));
	outbuf_puts(out, ",\"msg\":");
	json_put_string(out, msg, strlen(msg));
	while (logfmt_next(&p, end, &key, &val)) {
		outbuf_putc(out, ',');
		json_put_string(out, key.data ? key.data : "", key.len);
		outbuf_putc(out, ':');
		json_put_string(out, val.data ? val.data : "", val.len);
	}
	outbuf_puts(out, "}\n");
	outbuf_release(&key);
	outbuf_release(&val);
	return out->failed || key.failed || val.failed ? -ENOMEM : 0;
}

/* Journal field names: [A-Z0-9_], not starting with '_' or a digit, and not ours. */
static void journal_put_key(struct outbuf *b, const char *k, size_t n)
{
	static const char *const reserved[] = { "MESSAGE",    "PRIORITY",  "SYSLOG_IDENTIFIER",
						"MESSAGE_ID", "CODE_FILE", "CODE_LINE",
						"CODE_FUNC",  "ERRNO" };
	char name[64];
	size_t len = 0;

	for (size_t i = 0; i < n && len < sizeof(name) - 1; i++) {
		char c = k[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			c = '_';
		name[len++] = c;
	}
	name[len] = '\0';
	bool clash = len == 0 || name[0] == '_' || (name[0] >= '0' && name[0] <= '9');
	for (size_t i = 0; !clash && i < ELEMENTSOF(reserved); i++)
		clash = strcmp(name, reserved[i]) == 0;
	if (clash)
		outbuf_puts(b, "KVMSTATS_");
	outbuf_puts(b, name);
}

/* "=value" and the NUL that ends the field; sd_journal_sendv() encodes newlines itself. */
static void journal_put_value(struct outbuf *b, const char *v, size_t n)
{
	outbuf_putc(b, '=');
	/* A NUL would end the field early: logfmt values never hold one, but be sure. */
	for (size_t i = 0; i < n; i++)
		outbuf_putc(b, v[i] ? v[i] : ' ');
	outbuf_putc(b, '\0');
}

static void journal_field(struct outbuf *b, const char *key, const char *v, size_t n)
{
	outbuf_puts(b, key);
	journal_put_value(b, v, n);
}

int log_journal_record(struct outbuf *out, int priority, const char *msg, const char *tail,
		       size_t tail_n)
{
	struct outbuf key = { 0 }, val = { 0 };
	const char *p = tail, *end = tail + tail_n;
	char prio[2] = { (char)('0' + (priority & 7)), '\0' };

	journal_field(out, "MESSAGE", msg, strlen(msg));
	journal_field(out, "PRIORITY", prio, 1);
	journal_field(out, "SYSLOG_IDENTIFIER", "kvmstats_exporter", strlen("kvmstats_exporter"));
	while (logfmt_next(&p, end, &key, &val)) {
		journal_put_key(out, key.data ? key.data : "", key.len);
		journal_put_value(out, val.data ? val.data : "", val.len);
	}
	outbuf_release(&key);
	outbuf_release(&val);
	return out->failed ? -ENOMEM : 0;
}

int log_journal_send(const void *record, size_t len)
{
	struct iovec iov[LOG_JOURNAL_FIELDS_MAX];
	const char *p = record, *end = p + len;
	size_t n = 0;

	while (p < end) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		size_t field = nul ? (size_t)(nul - p) : (size_t)(end - p);

		if (n == ELEMENTSOF(iov))
			return -E2BIG;
		iov[n++] = (struct iovec){ .iov_base = (void *)p, .iov_len = field };
		p += field + 1;
	}
	return sd_journal_sendv(iov, (int)n);
}

bool log_stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd sets JOURNAL_STREAM=<dev>:<inode> of the stream it connected. */
	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}
