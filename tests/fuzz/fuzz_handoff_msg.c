/* SPDX-License-Identifier: MIT */
/*
 * Whatever a hand-off peer sends, the parser either accepts a message whose
 * every field is within the protocol's bounds, or refuses it with one line
 * of valid UTF-8 (it becomes the JSON answer) and a known reason.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "expo/escape.h"
#include "sources/handoff_msg.h"

static void check_accepted(const struct handoff_msg *m, bool registered)
{
	CHECK(registered == (m->kind != HANDOFF_MSG_REGISTER));
	if (m->kind == HANDOFF_MSG_REGISTER) {
		CHECK(m->name && m->name[0]);
		CHECK(handoff_text_valid(m->name, strlen(m->name), HANDOFF_MAX_NAME));
		CHECK(!m->uuid || handoff_text_valid(m->uuid, strlen(m->uuid), HANDOFF_MAX_UUID));
	} else {
		CHECK(!m->name && !m->uuid && m->n_labels == 0);
	}
	CHECK(m->n_labels <= HANDOFF_MAX_LABELS);
	for (size_t i = 0; i < m->n_labels; i++) {
		CHECK(escape_label_name_valid(m->labels[i].name));
		CHECK(strlen(m->labels[i].name) <= HANDOFF_MAX_LABEL_NAME);
		CHECK(handoff_text_valid(m->labels[i].value, strlen(m->labels[i].value),
					 HANDOFF_MAX_LABEL_VALUE));
		CHECK(i == 0 || strcmp(m->labels[i - 1].name, m->labels[i].name) < 0);
	}
	CHECK(m->n_roles <= (m->kind == HANDOFF_MSG_REMOVE    ? HANDOFF_MAX_FDS_PER_VM
			     : m->kind == HANDOFF_MSG_THREADS ? HANDOFF_MAX_FDS_PER_VM - 1
							      : HANDOFF_MAX_FDS_PER_MSG));
	for (size_t i = 0; m->kind == HANDOFF_MSG_THREADS && i < m->n_roles; i++)
		CHECK(m->roles[i] >= 0 && m->tids[i] >= 1);
	for (size_t i = 0; i < m->n_roles; i++) {
		CHECK(m->roles[i] == HANDOFF_ROLE_VM ||
		      (m->roles[i] >= 0 && m->roles[i] <= HANDOFF_MAX_VCPU_INDEX));
		for (size_t j = 0; j < i; j++)
			CHECK(m->roles[i] != m->roles[j]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int registered = 0; registered <= 1; registered++) {
		enum handoff_reject reason = HANDOFF_REJECT__MAX;
		struct handoff_msg m;
		char why[512] = "";

		if (handoff_msg_parse(data, size, registered, &m, &reason, why, sizeof(why)) == 0) {
			check_accepted(&m, registered);
			handoff_msg_release(&m);
			continue;
		}
		CHECK(reason < HANDOFF_REJECT__MAX);
		CHECK(why[0] != '\0');
		/* The answer's error: one line of valid UTF-8 without control characters. */
		CHECK(handoff_text_valid(why, strlen(why), sizeof(why)));
		CHECK(!m.name && m.n_labels == 0);
	}
	return 0;
}
