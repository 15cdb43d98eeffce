/* SPDX-License-Identifier: MIT */
/*
 * The hand-off socket: a SOCK_SEQPACKET listener on the main thread's epoll,
 * one connection per VM. This file is the transport (credentials, datagrams,
 * fds, answers, connection bookkeeping); handoff_msg.c checks the JSON and
 * handoff_apply.c the fds.
 *
 * Everything a peer controls is bounded: connections, one datagram of at
 * most 64 KiB with at most 64 fds in flight at a time, one answer per
 * message (a peer that does not read its answers is dropped), and nothing
 * kept between messages but the fds the VM holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sources/handoff_apply.h"
#include "log/log.h"
#include "macro.h"
#include "util/clock.h"
#include "sources/handoff.h"

#define ACCEPTS_PER_WAKEUP 32
#define WARN_BURST         10 /* warnings about peers per WARN_INTERVAL; the rest at debug */
#define WARN_INTERVAL      10.0

struct conn {
	struct handoff_peer peer;
};

struct handoff_source {
	struct collector *c;
	int epoll_fd;
	int listen_fd;
	int reserve_fd; /* closed to accept-and-drop a connection when out of fds */
	bool paused;    /* out of fds without a reserve: not watching the socket */
	char *path;
	dev_t dev; /* of the socket file we bound, to unlink only our own */
	ino_t ino;
	uint32_t *allow_uids, *allow_gids;
	size_t n_allow_uids, n_allow_gids;
	unsigned max_connections;
	struct conn **by_fd; /* indexed by connection fd */
	size_t cap_by_fd;
	size_t n_conns;
	pid_t *pids; /* peer pids of connections with a registered VM, sorted */
	size_t n_pids;
	uint8_t *buf; /* one datagram, HANDOFF_MAX_MESSAGE + 1 bytes */
	double warn_start;
	unsigned warn_count, warn_suppressed;
	/* Self-metrics; written and read under the collector's lock. */
	size_t stat_connections; /* n_conns, as scrapes see it */
	uint64_t stat_messages;
	uint64_t stat_rejected[HANDOFF_REJECT__MAX];
};

/* Peers may provoke warnings at will: a few per interval are shown, the rest go to debug. */
static enum log_level peer_warn_level(struct handoff_source *h)
{
	double now = monotonic_seconds();

	if (now - h->warn_start > WARN_INTERVAL) {
		if (h->warn_suppressed)
			log_warn("hand-off warnings were rate-limited", "suppressed=%u",
				 h->warn_suppressed);
		h->warn_start = now;
		h->warn_count = h->warn_suppressed = 0;
	}
	if (h->warn_count < WARN_BURST) {
		h->warn_count++;
		return LOG_LEVEL_WARN;
	}
	h->warn_suppressed++;
	return LOG_LEVEL_DEBUG;
}

/* Quotes and backslashes escaped, for a quoted logfmt value in a log tail. */
static const char *logfmt_value(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			buf[o++] = '\\';
		buf[o++] = *s;
	}
	buf[o] = '\0';
	return buf;
}

static void count_reject(struct handoff_source *h, enum handoff_reject reason)
{
	pthread_mutex_lock(&h->c->lock);
	h->stat_rejected[reason]++;
	pthread_mutex_unlock(&h->c->lock);
}

static size_t pid_index(const struct handoff_source *h, pid_t pid, bool *found)
{
	size_t lo = 0, hi = h->n_pids;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->pids[mid] < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < h->n_pids && h->pids[lo] == pid;
	return lo;
}

/* pids has room for one per connection, and only registered connections are listed. */
static void pid_insert(struct handoff_source *h, pid_t pid)
{
	bool found;
	size_t k = pid_index(h, pid, &found);

	memmove(&h->pids[k + 1], &h->pids[k], (h->n_pids - k) * sizeof(*h->pids));
	h->pids[k] = pid;
	h->n_pids++;
}

static void pid_remove(struct handoff_source *h, pid_t pid)
{
	bool found;
	size_t k = pid_index(h, pid, &found);

	if (!found)
		return;
	memmove(&h->pids[k], &h->pids[k + 1], (h->n_pids - k - 1) * sizeof(*h->pids));
	h->n_pids--;
}

bool handoff_source_is_peer(const struct handoff_source *h, pid_t pid)
{
	bool found = false;

	if (h && pid > 0)
		pid_index(h, pid, &found);
	return found;
}

static void conn_close(struct handoff_source *h, struct conn *conn, const char *why)
{
	int fd = conn->peer.conn_fd;

	if (conn->peer.vm) {
		log_info("VM gone", "vm=%s pid=%d reason=\"%s\"", conn->peer.vm->name,
			 (int)conn->peer.pid, why);
		pid_remove(h, conn->peer.pid);
	}
	/*
	 * The VM goes first: the scrape's liveness check polls the connection fd.
	 * The connection count changes in the same locked step, so that no scrape
	 * sees the VM gone but its connection still counted.
	 */
	pthread_mutex_lock(&h->c->lock);
	handoff_peer_forget_locked(h->c, &conn->peer);
	h->stat_connections = h->n_conns - 1;
	pthread_mutex_unlock(&h->c->lock);
	epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
	safe_close(fd);
	h->by_fd[fd] = NULL;
	h->n_conns--;
	if (h->paused) {
		/* An fd is free again: watch the socket once more. */
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = h->listen_fd };

		h->reserve_fd = eventfd(0, EFD_CLOEXEC);
		h->paused = epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, h->listen_fd, &ev) < 0;
	}
	free(conn);
}

static bool listed(const uint32_t *list, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == id)
			return true;
	return false;
}

static bool peer_allowed(const struct handoff_source *h, int fd, const struct ucred *cred)
{
	gid_t groups_stack[64];
	_cleanup_free_ gid_t *groups_heap = NULL;
	gid_t *groups = groups_stack;
	socklen_t len = sizeof(groups_stack);

	if (listed(h->allow_uids, h->n_allow_uids, cred->uid) ||
	    listed(h->allow_gids, h->n_allow_gids, cred->gid))
		return true;
	if (h->n_allow_gids == 0)
		return false;
	/* Supplementary groups, as the peer had them at connect(). */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
		if (errno != ERANGE || len > 65536 * sizeof(gid_t))
			return false;
		groups = groups_heap = malloc(len);
		if (!groups || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
			return false;
	}
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (listed(h->allow_gids, h->n_allow_gids, groups[i]))
			return true;
	return false;
}

static int conn_add(struct handoff_source *h, int fd, const struct ucred *cred)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = fd };
	struct conn *conn;

	if ((size_t)fd >= h->cap_by_fd) {
		size_t cap = (size_t)fd * 2 + 16;
		struct conn **p = reallocarray(h->by_fd, cap, sizeof(*p));

		if (!p)
			return -ENOMEM;
		memset(p + h->cap_by_fd, 0, (cap - h->cap_by_fd) * sizeof(*p));
		h->by_fd = p;
		h->cap_by_fd = cap;
	}
	conn = calloc(1, sizeof(*conn));
	if (!conn)
		return -ENOMEM;
	if (epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(conn);
		return -errno;
	}
	conn->peer = (struct handoff_peer){ .pid = cred->pid, .uid = cred->uid, .conn_fd = fd };
	h->by_fd[fd] = conn;
	h->n_conns++;
	pthread_mutex_lock(&h->c->lock);
	h->stat_connections = h->n_conns;
	pthread_mutex_unlock(&h->c->lock);
	return 0;
}

/*
 * Out of fds (accept4 says EMFILE even with nothing pending): take a pending
 * connection with the reserve fd's slot and drop it, so that epoll does not
 * spin. False when none was pending.
 */
static bool drop_pending(struct handoff_source *h)
{
	int fd;

	h->reserve_fd = safe_close(h->reserve_fd);
	fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	safe_close(fd);
	h->reserve_fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0)
		return false;
	count_reject(h, HANDOFF_REJECT_BOUNDS);
	log_msg(peer_warn_level(h),
		"hand-off connection dropped: the exporter is out of file descriptors", NULL);
	return true;
}

static void accept_connections(struct handoff_source *h)
{
	for (unsigned i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		struct ucred cred = { 0 };
		socklen_t len = sizeof(cred);
		int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
			if (h->reserve_fd < 0)
				h->reserve_fd = eventfd(0, EFD_CLOEXEC);
			if (h->reserve_fd >= 0) {
				if (drop_pending(h))
					continue;
				return;
			}
			/* Not even a reserve: stop watching (level-triggered epoll would spin). */
			log_warn("out of file descriptors; hand-off connections wait until one "
				 "closes",
				 NULL);
			epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, h->listen_fd, NULL);
			h->paused = true;
			return;
		}
		if (fd < 0 && (errno == ECONNABORTED || errno == EINTR || errno == EPROTO))
			continue;
		if (fd < 0)
			return; /* EAGAIN, or nothing we can do now: level-triggered epoll retries
				 */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    !peer_allowed(h, fd, &cred)) {
			count_reject(h, HANDOFF_REJECT_PEER);
			log_msg(peer_warn_level(h), "hand-off connection refused: peer not allowed",
				"pid=%d uid=%u gid=%u", (int)cred.pid, (unsigned)cred.uid,
				(unsigned)cred.gid);
			safe_close(fd);
			continue;
		}
		if (h->n_conns >= h->max_connections) {
			count_reject(h, HANDOFF_REJECT_BOUNDS);
			log_msg(peer_warn_level(h),
				"hand-off connection refused: "
				"--kvm.handoff-max-connections reached",
				"pid=%d uid=%u max=%u", (int)cred.pid, (unsigned)cred.uid,
				h->max_connections);
			safe_close(fd);
			continue;
		}
		if (conn_add(h, fd, &cred) < 0) {
			count_reject(h, HANDOFF_REJECT_BOUNDS);
			safe_close(fd);
		}
	}
}

/* One datagram back; a peer that cannot take it (not reading, gone) is dropped. */
static bool answer(struct conn *conn, const char *error)
{
	char text[HANDOFF_MAX_ANSWER];
	int len = handoff_build_answer(text, sizeof(text), error);
	ssize_t n;

	if (len < 0)
		return false;
	n = send(conn->peer.conn_fd, text, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
	return n == len;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		safe_close(fds[i]);
}

static void refused(struct handoff_source *h, struct conn *conn, enum handoff_reject reason,
		    const char *why)
{
	char q[512];

	count_reject(h, reason);
	log_msg(peer_warn_level(h), "hand-off message refused",
		"pid=%d uid=%u reason=%s err=\"%s\"", (int)conn->peer.pid, (unsigned)conn->peer.uid,
		handoff_reject_to_string(reason), logfmt_value(why, q, sizeof(q)));
}

/* Receives and handles one datagram; false when the connection is to be closed. */
static bool conn_receive(struct handoff_source *h, struct conn *conn)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(HANDOFF_MAX_FDS_PER_MSG * sizeof(int))];
	} control;
	struct iovec iov = { .iov_base = h->buf, .iov_len = HANDOFF_MAX_MESSAGE + 1 };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	int fds[HANDOFF_MAX_FDS_PER_MSG];
	enum handoff_reject reason;
	struct handoff_msg m;
	size_t n_fds = 0;
	char why[512];
	ssize_t n;

	n = recvmsg(conn->peer.conn_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (n_fds < ELEMENTSOF(fds))
				fds[n_fds++] = fd;
			else
				safe_close(fd);
		}
	}
	/* A datagram of 0 bytes without fds cannot be told from the end of the stream. */
	if (n == 0 && n_fds == 0 && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return false;

	pthread_mutex_lock(&h->c->lock);
	h->stat_messages++;
	pthread_mutex_unlock(&h->c->lock);

	if (mh.msg_flags & MSG_CTRUNC) {
		close_fds(fds, n_fds);
		snprintf(why, sizeof(why),
			 "the fds attached to the message did not all arrive (at most %u per "
			 "message, or the exporter is out of file descriptors); disconnecting",
			 HANDOFF_MAX_FDS_PER_MSG);
		refused(h, conn, HANDOFF_REJECT_TRUNCATED, why);
		answer(conn, why);
		return false;
	}
	if ((mh.msg_flags & MSG_TRUNC) || (size_t)n > HANDOFF_MAX_MESSAGE) {
		close_fds(fds, n_fds);
		snprintf(why, sizeof(why), "the message is longer than %u bytes",
			 HANDOFF_MAX_MESSAGE);
		refused(h, conn, HANDOFF_REJECT_TRUNCATED, why);
		return answer(conn, why);
	}

	if (handoff_msg_parse(h->buf, (size_t)n, conn->peer.vm != NULL, &m, &reason, why,
			      sizeof(why)) < 0) {
		close_fds(fds, n_fds);
		refused(h, conn, reason, why);
		return answer(conn, why);
	}
	if (handoff_apply(h->c, &conn->peer, &m, fds, n_fds, &reason, why, sizeof(why)) < 0) {
		refused(h, conn, reason, why);
		handoff_msg_release(&m);
		return answer(conn, why);
	}
	if (m.kind == HANDOFF_MSG_REGISTER)
		pid_insert(h, conn->peer.pid);
	if (m.kind == HANDOFF_MSG_REGISTER)
		log_info("VM found", "vm=%s pid=%d source=handoff fds=%zu", conn->peer.vm->name,
			 (int)conn->peer.pid, vm_n_files(conn->peer.vm));
	else
		log_debug("hand-off VM changed", "vm=%s pid=%d fds=%zu", conn->peer.vm->name,
			  (int)conn->peer.pid, vm_n_files(conn->peer.vm));
	handoff_msg_release(&m);
	return answer(conn, NULL);
}

bool handoff_source_dispatch(struct handoff_source *h, int fd, uint32_t events)
{
	struct conn *conn;

	if (!h || fd < 0)
		return false;
	if (fd == h->listen_fd) {
		accept_connections(h);
		return true;
	}
	if ((size_t)fd >= h->cap_by_fd || !(conn = h->by_fd[fd]))
		return false;
	/*
	 * The event may be stale: another fd of that number (a VMM's pidfd)
	 * was closed earlier in the same epoll_wait batch and the number
	 * reused by accept(). So the flags are not trusted to close a
	 * connection: recvmsg() itself tells the end of the stream (0 bytes)
	 * or an error, and a live peer's pending message is answered.
	 */
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)) && !conn_receive(h, conn))
		conn_close(h, conn, "hand-off connection closed");
	return true;
}

/* Binds the socket file, replacing only a stale socket (nobody listening). */
/* A socket systemd passed must be what we would have made: listening, SOCK_SEQPACKET. */
static int adopt_socket(struct handoff_source *h, int fd, char *why, size_t why_len)
{
	int type = 0, listening = 0, flags;
	socklen_t len = sizeof(type);

	h->listen_fd = fd; /* ours now, closed by handoff_source_free() on any failure */
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET) {
		snprintf(why, why_len,
			 "the socket systemd passed is not SOCK_SEQPACKET "
			 "(use ListenSequentialPacket=)");
		return -EPROTOTYPE;
	}
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) {
		snprintf(why, why_len, "the socket systemd passed is not listening");
		return -EINVAL;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		snprintf(why, why_len, "cannot make the passed socket non-blocking: %s",
			 strerror(errno));
		return -errno;
	}
	return 0;
}

static int bind_socket(struct handoff_source *h, const struct handoff_config *cfg, char *why,
		       size_t why_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;

	if (strlen(cfg->path) >= sizeof(sa.sun_path)) {
		snprintf(why, why_len, "path longer than %zu bytes", sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, cfg->path, strlen(cfg->path));
	if (cfg->create_parent) {
		_cleanup_free_ char *dir = strdup(cfg->path);

		if (!dir)
			return -ENOMEM;
		if (mkdir(dirname(dir), 0755) < 0 && errno != EEXIST) {
			snprintf(why, why_len, "cannot create its directory: %s", strerror(errno));
			return -errno;
		}
	}
	if (lstat(cfg->path, &st) == 0) {
		_cleanup_close_ int probe = -1;

		if (!S_ISSOCK(st.st_mode)) {
			snprintf(why, why_len, "the path exists and is not a socket");
			return -EEXIST;
		}
		probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (probe >= 0 &&
		    (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN)) {
			snprintf(why, why_len, "another process is listening on it");
			return -EADDRINUSE;
		}
		if (unlink(cfg->path) < 0 && errno != ENOENT) {
			snprintf(why, why_len, "cannot remove the stale socket: %s",
				 strerror(errno));
			return -errno;
		}
	}
	h->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (h->listen_fd < 0 || bind(h->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(why, why_len, "%s", strerror(errno));
		return -errno;
	}
	/* Peers are checked by their credentials, not by file mode. */
	if (chmod(cfg->path, 0666) < 0 || stat(cfg->path, &st) < 0 ||
	    listen(h->listen_fd, SOMAXCONN) < 0) {
		int r = -errno;

		snprintf(why, why_len, "%s", strerror(errno));
		unlink(cfg->path);
		return r;
	}
	h->dev = st.st_dev;
	h->ino = st.st_ino;
	return 0;
}

static uint32_t *copy_ids(const uint32_t *ids, size_t n)
{
	uint32_t *p = calloc(n + 1, sizeof(*p));

	if (p && n > 0)
		memcpy(p, ids, n * sizeof(*p));
	return p;
}

int handoff_source_new(struct collector *c, int epoll_fd, const struct handoff_config *cfg,
		       struct handoff_source **ret, char *why, size_t why_len)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct handoff_source *h = calloc(1, sizeof(*h));
	int r;

	if (!h) {
		safe_close(cfg->listen_fd);
		return -ENOMEM;
	}
	*h = (struct handoff_source){ .c = c,
				      .epoll_fd = epoll_fd,
				      .listen_fd = -1,
				      .max_connections = cfg->max_connections };
	h->reserve_fd = eventfd(0, EFD_CLOEXEC);
	h->path = strdup(cfg->path);
	h->allow_uids = copy_ids(cfg->allow_uids, cfg->n_allow_uids);
	h->allow_gids = copy_ids(cfg->allow_gids, cfg->n_allow_gids);
	h->n_allow_uids = cfg->n_allow_uids;
	h->n_allow_gids = cfg->n_allow_gids;
	h->pids = calloc(cfg->max_connections + 1, sizeof(*h->pids));
	h->buf = malloc(HANDOFF_MAX_MESSAGE + 1);
	if (!h->path || !h->allow_uids || !h->allow_gids || !h->pids || !h->buf) {
		safe_close(cfg->listen_fd);
		snprintf(why, why_len, "out of memory");
		handoff_source_free(h);
		return -ENOMEM;
	}
	r = cfg->listen_fd >= 0 ? adopt_socket(h, cfg->listen_fd, why, why_len)
				: bind_socket(h, cfg, why, why_len);
	if (r < 0) {
		handoff_source_free(h);
		return r;
	}
	ev.data.fd = h->listen_fd;
	if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, h->listen_fd, &ev) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot watch the socket: %s", strerror(errno));
		handoff_source_free(h);
		return r;
	}
	*ret = h;
	return 0;
}

struct handoff_source *handoff_source_free(struct handoff_source *h)
{
	struct stat st;

	if (!h)
		return NULL;
	for (size_t fd = 0; fd < h->cap_by_fd; fd++)
		if (h->by_fd[fd])
			conn_close(h, h->by_fd[fd], "exporter shutting down");
	safe_close(h->listen_fd);
	safe_close(h->reserve_fd);
	/* Only our own socket file: another instance may have replaced it since. */
	if (h->ino != 0 && stat(h->path, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino)
		unlink(h->path);
	free(h->by_fd);
	free(h->pids);
	free(h->buf);
	free(h->allow_uids);
	free(h->allow_gids);
	free(h->path);
	free(h);
	return NULL;
}

void handoff_source_write_metrics(void *userdata, struct family_writer *w)
{
	const struct handoff_source *h = userdata;

	family_write_u64(w, "kvmstats_exporter_handoff_connections", FAMILY_GAUGE,
			 "Open connections on the hand-off socket.", h->stat_connections);
	family_write_u64(w, "kvmstats_exporter_handoff_messages", FAMILY_COUNTER,
			 "Messages received on hand-off connections, accepted or not.",
			 h->stat_messages);
	family_begin(w, "kvmstats_exporter_handoff_rejected", FAMILY_COUNTER, NULL,
		     "Hand-off messages and connections refused, by reason.");
	for (unsigned r = 0; r < HANDOFF_REJECT__MAX; r++) {
		family_sample(w, NULL);
		family_label(w, "reason", handoff_reject_to_string(r));
		family_value_u64(w, h->stat_rejected[r]);
	}
}
