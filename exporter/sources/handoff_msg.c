/* SPDX-License-Identifier: MIT */
/*
 * Hand-off messages: strict validation of the JSON a peer sends. Anything
 * not in docs/handoff.md is refused, so that a later protocol version can
 * give meaning to new keys without old exporters silently ignoring them.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expo/escape.h"
#include "sources/handoff_msg.h"
#include "macro.h"
#include "util/utf8.h"

static const char *const reject_names[HANDOFF_REJECT__MAX] = {
	[HANDOFF_REJECT_PEER] = "peer",       [HANDOFF_REJECT_JSON] = "json",
	[HANDOFF_REJECT_VERSION] = "version", [HANDOFF_REJECT_ROLE] = "role",
	[HANDOFF_REJECT_FD] = "fd",           [HANDOFF_REJECT_NAME] = "name",
	[HANDOFF_REJECT_BOUNDS] = "bounds",   [HANDOFF_REJECT_TRUNCATED] = "truncated",
};

/* Label names the exporter writes itself, or that Prometheus gives meaning to. */
static const char *const reserved_labels[] = {
	"vm", "vcpu", "le", "uuid", "pid", "vmm", "kvm_id", "source", "quantile", "job", "instance",
};

const char *handoff_reject_to_string(enum handoff_reject r)
{
	return (unsigned)r < HANDOFF_REJECT__MAX ? reject_names[r] : "unknown";
}

/*
 * Copies at most 48 bytes of a peer's string for an error message, cut at a
 * character boundary and with control characters as '?', so that the answer
 * stays one line of valid UTF-8.
 */
static const char *clip(const char *s, char *buf, size_t size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), o = 0, max = size - 4;

	for (size_t i = 0; i < len;) {
		uint32_t cp = 0;
		size_t n = utf8_decode(p + i, len - i, &cp);

		if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
			cp = '?';
			n = n ? n : 1;
		}
		if (o + (cp == '?' ? 1 : n) > max) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (cp == '?')
			buf[o++] = '?';
		else
			memcpy(buf + o, p + i, n), o += n;
		i += n;
	}
	buf[o] = '\0';
	return buf;
}

struct parse {
	struct handoff_msg *msg;
	enum handoff_reject reason;
	char *why;
	size_t why_len;
};

_printf_(3, 4) static int refuse(struct parse *p, enum handoff_reject reason, const char *fmt, ...)
{
	va_list ap;

	p->reason = reason;
	va_start(ap, fmt);
	vsnprintf(p->why, p->why_len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Only the given keys may appear in obj (`where` names it in the error). */
static int check_keys(struct parse *p, json_t *obj, const char *where, const char *const *allowed,
		      size_t n_allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		bool ok = false;
		char c[52];

		for (size_t i = 0; i < n_allowed; i++)
			ok = ok || strcmp(key, allowed[i]) == 0;
		if (!ok)
			return refuse(p, HANDOFF_REJECT_JSON, "unknown key \"%s\" in %s",
				      clip(key, c, sizeof(c)), where);
	}
	return 0;
}

static int parse_roles(struct parse *p, json_t *arr, const char *key, size_t max)
{
	struct handoff_msg *m = p->msg;
	size_t i;
	json_t *v;

	if (!json_is_array(arr))
		return refuse(p, HANDOFF_REJECT_JSON, "\"%s\" must be an array of roles", key);
	if (json_array_size(arr) > max)
		return refuse(p, HANDOFF_REJECT_BOUNDS,
			      "\"%s\" has %zu entries, at most %zu are allowed", key,
			      json_array_size(arr), max);
	json_array_foreach(arr, i, v)
	{
		const char *s = json_string_value(v);
		char c[52];
		int role;

		if (!s)
			return refuse(p, HANDOFF_REJECT_ROLE, "\"%s[%zu]\" is not a string", key,
				      i);
		if (handoff_role_parse(s, &role) < 0)
			return refuse(p, HANDOFF_REJECT_ROLE,
				      "\"%s[%zu]\" is \"%s\", not a role: expected \"vm\" or "
				      "\"vcpu:N\" "
				      "with 0 <= N <= %d",
				      key, i, clip(s, c, sizeof(c)), HANDOFF_MAX_VCPU_INDEX);
		for (size_t j = 0; j < m->n_roles; j++)
			if (m->roles[j] == role)
				return refuse(p, HANDOFF_REJECT_ROLE,
					      "\"%s[%zu]\" repeats role \"%s\"", key, i, s);
		m->roles[m->n_roles++] = role;
	}
	return 0;
}

static bool label_reserved(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(reserved_labels); i++)
		if (strcmp(name, reserved_labels[i]) == 0)
			return true;
	return false;
}

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct handoff_label *)a)->name,
		      ((const struct handoff_label *)b)->name);
}

static int parse_labels(struct parse *p, json_t *obj)
{
	struct handoff_msg *m = p->msg;
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return refuse(p, HANDOFF_REJECT_JSON, "\"vm.labels\" must be an object");
	if (json_object_size(obj) > HANDOFF_MAX_LABELS)
		return refuse(p, HANDOFF_REJECT_BOUNDS,
			      "\"vm.labels\" has %zu labels, at most %u are allowed",
			      json_object_size(obj), HANDOFF_MAX_LABELS);
	json_object_foreach(obj, key, v)
	{
		char c[52];

		if (strlen(key) > HANDOFF_MAX_LABEL_NAME || !escape_label_name_valid(key))
			return refuse(p, HANDOFF_REJECT_NAME,
				      "label name \"%s\" is not valid: it must match "
				      "[a-zA-Z_][a-zA-Z0-9_]*, not start with \"__\" and be at "
				      "most %u bytes",
				      clip(key, c, sizeof(c)), HANDOFF_MAX_LABEL_NAME);
		if (label_reserved(key))
			return refuse(p, HANDOFF_REJECT_NAME,
				      "label name \"%s\" is reserved for the exporter's own labels",
				      key);
		if (!json_is_string(v) ||
		    !handoff_text_valid(json_string_value(v), json_string_length(v),
					HANDOFF_MAX_LABEL_VALUE))
			return refuse(p, HANDOFF_REJECT_NAME,
				      "the value of label \"%s\" must be a string of at most %u "
				      "bytes of "
				      "printable UTF-8",
				      key, HANDOFF_MAX_LABEL_VALUE);
		m->labels[m->n_labels] =
			(struct handoff_label){ .name = strdup(key),
						.value = strdup(json_string_value(v)) };
		if (!m->labels[m->n_labels].name || !m->labels[m->n_labels].value) {
			free(m->labels[m->n_labels].name);
			free(m->labels[m->n_labels].value);
			return -ENOMEM;
		}
		m->n_labels++;
	}
	qsort(m->labels, m->n_labels, sizeof(*m->labels), label_cmp);
	return 0;
}

static int parse_vm(struct parse *p, json_t *vm)
{
	static const char *const keys[] = { "name", "uuid", "labels" };
	struct handoff_msg *m = p->msg;
	json_t *name, *uuid, *labels;
	int r;

	if (!json_is_object(vm))
		return refuse(p, HANDOFF_REJECT_JSON, "\"vm\" must be an object");
	r = check_keys(p, vm, "\"vm\"", keys, ELEMENTSOF(keys));
	if (r < 0)
		return r;
	name = json_object_get(vm, "name");
	uuid = json_object_get(vm, "uuid");
	labels = json_object_get(vm, "labels");
	if (!name)
		return refuse(p, HANDOFF_REJECT_NAME, "\"vm.name\" is missing");
	if (!json_is_string(name) || json_string_length(name) == 0 ||
	    !handoff_text_valid(json_string_value(name), json_string_length(name),
				HANDOFF_MAX_NAME))
		return refuse(p, HANDOFF_REJECT_NAME,
			      "\"vm.name\" must be a string of 1 to %u bytes of printable UTF-8 "
			      "without control characters",
			      HANDOFF_MAX_NAME);
	if (uuid && (!json_is_string(uuid) ||
		     !handoff_text_valid(json_string_value(uuid), json_string_length(uuid),
					 HANDOFF_MAX_UUID)))
		return refuse(p, HANDOFF_REJECT_NAME,
			      "\"vm.uuid\" must be a string of at most %u bytes of printable UTF-8",
			      HANDOFF_MAX_UUID);
	m->name = strdup(json_string_value(name));
	if (!m->name)
		return -ENOMEM;
	if (uuid && json_string_length(uuid) > 0 && !(m->uuid = strdup(json_string_value(uuid))))
		return -ENOMEM;
	return labels ? parse_labels(p, labels) : 0;
}

static int parse_register(struct parse *p, json_t *root)
{
	static const char *const keys[] = { "version", "vm", "fds" };
	json_t *version = json_object_get(root, "version"), *vm = json_object_get(root, "vm");
	json_t *fds = json_object_get(root, "fds");
	int r;

	if (json_object_get(root, "remove"))
		return refuse(p, HANDOFF_REJECT_VERSION,
			      "the VM is not registered yet: \"remove\" is only valid after the "
			      "first "
			      "message");
	if (!version)
		return refuse(p, HANDOFF_REJECT_VERSION,
			      "\"version\" is missing: the first message registers the VM and must "
			      "carry \"version\": %d, \"vm\" and \"fds\"",
			      HANDOFF_VERSION);
	if (!json_is_integer(version) || json_integer_value(version) != HANDOFF_VERSION)
		return refuse(p, HANDOFF_REJECT_VERSION,
			      "\"version\" must be the number %d: this exporter speaks hand-off "
			      "protocol version %d",
			      HANDOFF_VERSION, HANDOFF_VERSION);
	r = check_keys(p, root, "the first message", keys, ELEMENTSOF(keys));
	if (r < 0)
		return r;
	if (!vm)
		return refuse(p, HANDOFF_REJECT_JSON, "\"vm\" is missing from the first message");
	if (!fds)
		return refuse(p, HANDOFF_REJECT_JSON, "\"fds\" is missing from the first message");
	p->msg->kind = HANDOFF_MSG_REGISTER;
	r = parse_vm(p, vm);
	if (r < 0)
		return r;
	return parse_roles(p, fds, "fds", HANDOFF_MAX_FDS_PER_MSG);
}

/* {"vcpu:N": tid, ...}: the thread that runs each vCPU, as the peer knows it. */
static int parse_threads(struct parse *p, json_t *obj)
{
	struct handoff_msg *m = p->msg;
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return refuse(p, HANDOFF_REJECT_JSON,
			      "\"threads\" must be an object of \"vcpu:N\": thread id");
	if (json_object_size(obj) > HANDOFF_MAX_FDS_PER_VM - 1)
		return refuse(p, HANDOFF_REJECT_BOUNDS,
			      "\"threads\" has %zu entries, at most %u are allowed",
			      json_object_size(obj), HANDOFF_MAX_FDS_PER_VM - 1);
	json_object_foreach(obj, key, v)
	{
		json_int_t tid = json_integer_value(v);
		char c[52];
		int role;

		if (handoff_role_parse(key, &role) < 0 || role == HANDOFF_ROLE_VM)
			return refuse(p, HANDOFF_REJECT_ROLE,
				      "\"threads\" key \"%s\" is not \"vcpu:N\" with 0 <= N <= %d",
				      clip(key, c, sizeof(c)), HANDOFF_MAX_VCPU_INDEX);
		if (!json_is_integer(v) || tid < 1 || tid > INT32_MAX)
			return refuse(p, HANDOFF_REJECT_JSON,
				      "\"threads\".\"%s\" must be a thread id (an integer from 1 "
				      "to 2147483647)",
				      key);
		m->roles[m->n_roles] = role;
		m->tids[m->n_roles++] = (int)tid;
	}
	return 0;
}

static int parse_later(struct parse *p, json_t *root)
{
	static const char *const keys[] = { "fds", "remove", "threads" };
	json_t *fds = json_object_get(root, "fds"), *remove = json_object_get(root, "remove");
	json_t *threads = json_object_get(root, "threads");
	int r;

	if (json_object_get(root, "version") || json_object_get(root, "vm"))
		return refuse(p, HANDOFF_REJECT_VERSION,
			      "the VM is already registered: later messages carry only \"fds\", "
			      "\"remove\" or \"threads\"");
	r = check_keys(p, root, "the message", keys, ELEMENTSOF(keys));
	if (r < 0)
		return r;
	if (!!fds + !!remove + !!threads != 1)
		return refuse(p, HANDOFF_REJECT_JSON,
			      "a later message carries exactly one of \"fds\", \"remove\" and "
			      "\"threads\"");
	if (threads) {
		p->msg->kind = HANDOFF_MSG_THREADS;
		return parse_threads(p, threads);
	}
	if (fds) {
		p->msg->kind = HANDOFF_MSG_ADD;
		return parse_roles(p, fds, "fds", HANDOFF_MAX_FDS_PER_MSG);
	}
	p->msg->kind = HANDOFF_MSG_REMOVE;
	return parse_roles(p, remove, "remove", HANDOFF_MAX_FDS_PER_VM);
}

/* jansson's error text may quote the peer's bytes: keep printable ASCII only. */
static void describe_json_error(struct parse *p, const json_error_t *err)
{
	char text[sizeof(err->text)];
	size_t i;

	for (i = 0; err->text[i] && i + 1 < sizeof(text); i++)
		text[i] = err->text[i] >= 0x20 && err->text[i] < 0x7f ? err->text[i] : '?';
	text[i] = '\0';
	refuse(p, HANDOFF_REJECT_JSON, "the message is not valid JSON (byte %d: %s)", err->position,
	       text);
}

int handoff_msg_parse(const void *buf, size_t len, bool registered, struct handoff_msg *ret,
		      enum handoff_reject *ret_reason, char *why, size_t why_len)
{
	struct parse p = { .msg = ret, .why = why, .why_len = why_len };
	json_error_t err;
	json_t *root;
	int r;

	*ret = (struct handoff_msg){ 0 };
	if (len > HANDOFF_MAX_MESSAGE) {
		r = refuse(&p, HANDOFF_REJECT_TRUNCATED, "the message is longer than %u bytes",
			   HANDOFF_MAX_MESSAGE);
		goto out;
	}
	/* Any value, so that a non-object is named as such; trailing bytes are refused. */
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (!root) {
		describe_json_error(&p, &err);
		r = -EINVAL;
		goto out;
	}
	if (!json_is_object(root))
		r = refuse(&p, HANDOFF_REJECT_JSON, "the message must be a JSON object");
	else
		r = registered ? parse_later(&p, root) : parse_register(&p, root);
	json_decref(root);
out:
	if (r == -ENOMEM)
		refuse(&p, HANDOFF_REJECT_BOUNDS, "the exporter is out of memory");
	if (r < 0) {
		handoff_msg_release(ret);
		*ret_reason = p.reason;
	}
	return r;
}

void handoff_msg_release(struct handoff_msg *m)
{
	free(m->name);
	free(m->uuid);
	for (size_t i = 0; i < m->n_labels; i++) {
		free(m->labels[i].name);
		free(m->labels[i].value);
	}
	*m = (struct handoff_msg){ 0 };
}
