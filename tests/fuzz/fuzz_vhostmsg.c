/* SPDX-License-Identifier: MIT */
/*
 * A byte stream as a session of vhost-user messages of both channels, run
 * through every decoder and validator and one shared-memory tracker, as the
 * tap would. Nothing may crash or read past a payload (each payload sits in
 * its own allocation of exactly its size), and the tracker's books must
 * balance after every step: mapped bytes equal the sum of live lengths, a
 * valid map adds exactly its length, a valid unmap removes exactly its
 * length, a refused apply changes nothing.
 *
 * Records, until the input runs out:
 *   u8 ctl    bit 0 channel (0 frontend, 1 backend), bit 1 in_process,
 *             bits 2-3 kind: 0 message, 1 region {u8 shmid; u64 size},
 *             2 reset, 3 message the front-end accepts even when invalid
 *   message:  12-byte header, u8 fd count (low 4 bits), header.size payload bytes
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The harness is not in the library's directory; its header is found from here. */
#include "fuzz.h"
#include "../../vhostmsg/vhostmsg.h"

enum record_kind {
	RECORD_MESSAGE,
	RECORD_REGION,
	RECORD_RESET,
	RECORD_ACCEPTED_MESSAGE,
};

struct input {
	const uint8_t *p;
	size_t left;
};

static bool take(struct input *in, void *out, size_t n)
{
	if (in->left < n)
		return false;
	memcpy(out, in->p, n);
	in->p += n;
	in->left -= n;
	return true;
}

struct learnt {
	struct vhostmsg_shmem *s;
	int calls;
};

static void learn(void *ud, uint8_t shmid, uint64_t size)
{
	struct learnt *l = ud;

	vhostmsg_shmem_set_region(l->s, shmid, size);
	CHECK(vhostmsg_shmem_known(l->s, shmid));
	l->calls++;
}

static void check_books(const struct vhostmsg_shmem *s)
{
	uint64_t sum_n = 0, sum_b = 0, n, b;

	CHECK(vhostmsg_shmem_verify(s) == 0);
	for (unsigned i = 0; i < VHOSTMSG_MAX_SHMEM_REGIONS; i++) {
		vhostmsg_shmem_stats(s, (uint8_t)i, &n, &b);
		CHECK(b >= n); /* every live mapping has len > 0 */
		sum_n += n;
		sum_b += b;
	}
	vhostmsg_shmem_totals(s, &n, &b);
	CHECK(n == sum_n && b == sum_b);
	CHECK(n <= VHOSTMSG_MAX_MAPPINGS);
}

static bool is_unmap(uint32_t request)
{
	return request == VHOSTMSG_BACKEND_SHMEM_UNMAP ||
	       request == VHOSTMSG_BACKEND_SHMEM_UNMAP_LEGACY;
}

static void run_map(struct vhostmsg_shmem *s, const struct vhostmsg_map *m, bool in_process,
		    bool accept_anyway)
{
	uint32_t mask = vhostmsg_shmem_check_all(s, m, in_process);
	enum vhostmsg_reason r = vhostmsg_shmem_check(s, m, in_process);
	uint64_t n0, b0, tn0, tb0, n1, b1, tn1, tb1;
	bool unmap = is_unmap(m->request);
	int ret;

	CHECK(mask < VHOSTMSG_REASON_BIT(VHOSTMSG_REASON__MAX));
	CHECK((mask == 0) == (r == VHOSTMSG_VALID));
	if (mask)
		CHECK(mask & VHOSTMSG_REASON_BIT(r) && !(mask & (VHOSTMSG_REASON_BIT(r) - 1)));
	CHECK(vhostmsg_reason_name(r));
	/* Only these rules apply to mapping requests. */
	CHECK(!(mask & (VHOSTMSG_REASON_BIT(VHOSTMSG_BAD_VERSION) |
			VHOSTMSG_REASON_BIT(VHOSTMSG_RESERVED_FLAGS) |
			VHOSTMSG_REASON_BIT(VHOSTMSG_SIZE_MISMATCH) |
			VHOSTMSG_REASON_BIT(VHOSTMSG_TOO_LARGE) |
			VHOSTMSG_REASON_BIT(VHOSTMSG_FD_COUNT))));
	CHECK(!(mask & VHOSTMSG_REASON_BIT(VHOSTMSG_NOT_MAPPED)) || unmap);
	CHECK(!(mask & VHOSTMSG_REASON_BIT(VHOSTMSG_OVERLAP)) || !unmap);
	CHECK(!(mask & VHOSTMSG_REASON_BIT(VHOSTMSG_OUT_OF_PROCESS)) ||
	      (m->request == VHOSTMSG_BACKEND_EXTERNAL_MAP && !in_process));
	CHECK((m->len == 0) == !!(mask & VHOSTMSG_REASON_BIT(VHOSTMSG_LEN_ZERO)));

	if (mask && !accept_anyway)
		return;

	vhostmsg_shmem_stats(s, m->shmid, &n0, &b0);
	vhostmsg_shmem_totals(s, &tn0, &tb0);
	ret = vhostmsg_shmem_apply(s, m);
	vhostmsg_shmem_stats(s, m->shmid, &n1, &b1);
	vhostmsg_shmem_totals(s, &tn1, &tb1);
	check_books(s);

	if (ret < 0) {
		CHECK(ret == -ENOSPC || ret == -EINVAL || ret == -ENOMEM);
		CHECK(n0 == n1 && b0 == b1 && tn0 == tn1 && tb0 == tb1);
		if (ret == -EINVAL)
			CHECK(mask & (VHOSTMSG_REASON_BIT(VHOSTMSG_LEN_ZERO) |
				      VHOSTMSG_REASON_BIT(VHOSTMSG_OVERFLOW)));
		if (ret == -ENOSPC)
			CHECK(tn0 + 2 > VHOSTMSG_MAX_MAPPINGS); /* an apply adds at most 2 */
		return;
	}
	/* Other shmids are untouched. */
	CHECK(tb1 - b1 == tb0 - b0 && tn1 - n1 == tn0 - n0);
	if (mask)
		return;

	/* A valid request moves the books by exactly its length. */
	if (unmap) {
		CHECK(b1 == b0 - m->len && n1 < n0);
		/* The range is free now. */
		CHECK(vhostmsg_shmem_check_all(s, m, in_process) &
		      VHOSTMSG_REASON_BIT(VHOSTMSG_NOT_MAPPED));
	} else {
		CHECK(b1 == b0 + m->len && n1 == n0 + 1);
		CHECK(vhostmsg_shmem_check_all(s, m, in_process) &
		      VHOSTMSG_REASON_BIT(VHOSTMSG_OVERLAP));
		/* And exactly that range can be unmapped. */
		struct vhostmsg_map u = *m;
		u.request = VHOSTMSG_BACKEND_SHMEM_UNMAP;
		CHECK(!(vhostmsg_shmem_check_all(s, &u, in_process) &
			VHOSTMSG_REASON_BIT(VHOSTMSG_NOT_MAPPED)));
	}
}

static void run_message(struct vhostmsg_shmem *s, enum vhostmsg_channel ch, bool in_process,
			bool accept_anyway, const struct vhostmsg_header *h, const uint8_t *payload,
			unsigned n_fds)
{
	enum vhostmsg_reason r;
	unsigned min, max;
	uint64_t result;
	struct vhostmsg_map m;
	struct learnt l = { .s = s };
	int ret;

	(void)vhostmsg_request_name(ch, h->request);

	r = vhostmsg_check_size(ch, h, payload);
	CHECK(r == VHOSTMSG_VALID || r == VHOSTMSG_SIZE_MISMATCH);

	vhostmsg_expected_fds(ch, h, payload, &min, &max);
	CHECK(min <= max && max <= VHOSTMSG_MAX_FDS);
	r = vhostmsg_check_fds(ch, h, payload, n_fds);
	CHECK((r == VHOSTMSG_VALID) == (n_fds >= min && n_fds <= max));

	if (vhostmsg_needs_reply(ch, h, in_process ? ~0ull : 0))
		CHECK(!(h->flags & VHOSTMSG_FLAG_REPLY));

	ret = vhostmsg_reply_result(h, payload, &result);
	CHECK(ret == 0 ? (h->flags & VHOSTMSG_FLAG_REPLY) && h->size == 8
		       : ret == -EINVAL || ret == -EBADMSG);

	ret = vhostmsg_decode_shmem_regions(ch, h->request, h->flags & VHOSTMSG_FLAG_REPLY, payload,
					    h->size, learn, &l);
	CHECK(ret >= 0 ? ret == l.calls && ret <= (int)VHOSTMSG_MAX_SHMEM_REGIONS
		       : l.calls == 0 && (ret == -ENOMSG || ret == -EBADMSG));

	if (ch != VHOSTMSG_CHANNEL_BACKEND)
		return;
	ret = vhostmsg_decode_map(h, payload, n_fds, &m);
	if (ret < 0) {
		CHECK(ret == -VHOSTMSG_SIZE_MISMATCH || ret == -VHOSTMSG_FD_COUNT);
		/* The generic checks agree. */
		if (ret == -VHOSTMSG_SIZE_MISMATCH)
			CHECK(vhostmsg_check_size(ch, h, payload) == VHOSTMSG_SIZE_MISMATCH);
		else
			CHECK(vhostmsg_check_fds(ch, h, payload, n_fds) == VHOSTMSG_FD_COUNT);
		return;
	}
	if (ret == 0)
		return;
	CHECK(ret == 1 && m.request == h->request);
	CHECK(vhostmsg_check_size(ch, h, payload) == VHOSTMSG_VALID);
	CHECK(vhostmsg_check_fds(ch, h, payload, n_fds) == VHOSTMSG_VALID);
	run_map(s, &m, in_process, accept_anyway);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct vhostmsg_shmem *s = vhostmsg_shmem_new();
	uint8_t ctl;

	if (!s)
		return 0;
	while (take(&in, &ctl, 1)) {
		enum vhostmsg_channel ch =
			(ctl & 1) ? VHOSTMSG_CHANNEL_BACKEND : VHOSTMSG_CHANNEL_FRONTEND;
		bool in_process = ctl & 2;
		enum record_kind kind = (enum record_kind)((ctl >> 2) & 3);
		uint8_t raw[VHOSTMSG_HEADER_SIZE], back[VHOSTMSG_HEADER_SIZE], fds;
		struct vhostmsg_header h;
		uint8_t *payload = NULL;

		if (kind == RECORD_REGION) {
			uint8_t shmid;
			uint64_t len;
			if (!take(&in, &shmid, 1) || !take(&in, &len, sizeof(len)))
				break;
			vhostmsg_shmem_set_region(s, shmid, len);
			CHECK(vhostmsg_shmem_known(s, shmid));
			continue;
		}
		if (kind == RECORD_RESET) {
			vhostmsg_shmem_reset(s);
			check_books(s);
			continue;
		}

		if (!take(&in, raw, sizeof(raw)) || !take(&in, &fds, 1))
			break;
		vhostmsg_header_decode(raw, &h);
		vhostmsg_header_encode(&h, back);
		CHECK(memcmp(raw, back, sizeof(raw)) == 0);

		enum vhostmsg_reason r = vhostmsg_check_header(&h, fds & 15u);
		CHECK(r < VHOSTMSG_REASON__MAX && vhostmsg_reason_name(r));
		if (r == VHOSTMSG_TOO_LARGE || h.size > in.left)
			break; /* the tap drops such a connection */
		if (h.size) {
			payload = malloc(h.size);
			if (!payload)
				break;
			CHECK(take(&in, payload, h.size));
		}
		/* The tap relays what fails the header rules too: decode it all the same. */
		run_message(s, ch, in_process, kind == RECORD_ACCEPTED_MESSAGE, &h, payload,
			    fds & 15u);
		free(payload);
		check_books(s);
	}
	vhostmsg_shmem_free(s);
	return 0;
}
