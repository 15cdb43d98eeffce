/* SPDX-License-Identifier: MIT */
/*
 * The proxies of the tap: listening sockets, one supervisor thread each that
 * accepts a frontend and runs its session, start and stop.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "expo/escape.h"
#include "log/log.h"
#include "macro.h"
#include "vhost/proxy.h"
#include "vhost/session.h"
#include "vhost/tap.h"

#define LISTEN_BACKLOG 8

/* Whether a live process listens on path (connect succeeds). */
static bool socket_live(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return true; /* cannot tell: do not remove it */
	live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno != ECONNREFUSED;
	close(fd);
	return live;
}

/*
 * Binds and listens on path. A socket file nobody listens on (left by a
 * crash) is replaced; anything else in the way is an error.
 */
static int listen_unix(const char *path, int *ret_fd, char *why, size_t why_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(why, why_len, "listen=%s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot make a socket: %s", strerror(-r));
		return r;
	}
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno == EADDRINUSE) {
		if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
			snprintf(why, why_len, "listen=%s: exists and is not a socket", path);
			close(fd);
			return -EEXIST;
		}
		if (socket_live(&sa)) {
			snprintf(why, why_len, "listen=%s: another process listens there", path);
			close(fd);
			return -EADDRINUSE;
		}
		(void)unlink(path);
		r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	}
	if (r < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		r = -errno;
		snprintf(why, why_len, "listen=%s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* Removes the listening socket file if it is still ours. */
static void unlink_if_ours(int fd, const char *path)
{
	struct stat mine, st;

	if (fstat(fd, &mine) == 0 && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_ino == mine.st_ino && st.st_dev == mine.st_dev)
		(void)unlink(path);
}

static void *proxy_main(void *arg)
{
	struct vhost_proxy *p = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = p->listen_fd, .events = POLLIN },
			{ .fd = p->stop_fd, .events = POLLIN },
		};
		int fd;

		if (poll(pfd, ELEMENTSOF(pfd), -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("vhost-user proxy stops", "proxy=%s err=\"%s\"", p->cfg.name,
				  strerror(errno));
			return NULL;
		}
		if (pfd[1].revents & POLLIN)
			return NULL;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				log_warn("vhost-user frontend waits: out of fds", "proxy=%s",
					 p->cfg.name);
				(void)poll(&pfd[1], 1, 100);
			}
			continue;
		}
		vhost_session_run(p, fd);
	}
}

static int proxy_init(struct vhost_proxy *p, const struct vhost_proxy_config *cfg,
		      enum vhost_policy policy, int stop_fd)
{
	struct outbuf b = { 0 };

	*p = (struct vhost_proxy){ .policy = policy, .listen_fd = -1, .stop_fd = stop_fd };
	pthread_mutex_init(&p->lock, NULL);
	p->cfg = (struct vhost_proxy_config){ .trusted = cfg->trusted };
	p->cfg.name = strdup(cfg->name);
	p->cfg.listen = strdup(cfg->listen);
	p->cfg.backend = strdup(cfg->backend);
	if (cfg->n_regions > 0) {
		p->cfg.regions = calloc(cfg->n_regions, sizeof(*p->cfg.regions));
		if (p->cfg.regions) {
			memcpy(p->cfg.regions, cfg->regions,
			       cfg->n_regions * sizeof(*p->cfg.regions));
			p->cfg.n_regions = cfg->n_regions;
		}
	}
	escape_puts(&b, cfg->name, ESCAPE_LABEL_VALUE);
	outbuf_putc(&b, '\0');
	p->name_escaped = b.data;
	if (!p->cfg.name || !p->cfg.listen || !p->cfg.backend || b.failed ||
	    (cfg->n_regions > 0 && !p->cfg.regions))
		return -ENOMEM;
	/* Declared regions are exported from the start, at 0. */
	for (size_t i = 0; i < cfg->n_regions; i++)
		vhost_stats_see_shmid(&p->stats, cfg->regions[i].shmid);
	return 0;
}

static void proxy_release(struct vhost_proxy *p)
{
	if (p->thread_started)
		pthread_join(p->thread, NULL);
	if (p->listen_fd >= 0)
		unlink_if_ours(p->listen_fd, p->cfg.listen);
	safe_close(p->listen_fd);
	vhostmsg_shmem_free(p->tracker);
	vhost_proxy_config_release(&p->cfg);
	free(p->name_escaped);
	pthread_mutex_destroy(&p->lock);
}

struct vhost_taps *vhost_taps_free(struct vhost_taps *t)
{
	uint64_t one = 1;

	if (!t)
		return NULL;
	/* Never read: stays readable, so every proxy and session sees it. */
	if (t->stop_fd >= 0)
		(void)!write(t->stop_fd, &one, sizeof(one));
	for (size_t i = 0; i < t->n; i++)
		proxy_release(&t->proxies[i]);
	free(t->proxies);
	safe_close(t->stop_fd);
	free(t);
	return NULL;
}

int vhost_taps_start(const struct vhost_proxy_config *cfgs, size_t n, enum vhost_policy policy,
		     struct vhost_taps **ret, char *why, size_t why_len)
{
	struct vhost_taps *t = calloc(1, sizeof(*t));
	int r = 0;

	if (!t || !(t->proxies = calloc(n ? n : 1, sizeof(*t->proxies)))) {
		free(t);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	t->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (t->stop_fd < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot make an eventfd: %s", strerror(-r));
		vhost_taps_free(t);
		return r;
	}
	/* Every socket first, so that a failure leaves no thread running. */
	for (; t->n < n; t->n++) {
		struct vhost_proxy *p = &t->proxies[t->n];
		char msg[256];

		r = proxy_init(p, &cfgs[t->n], policy, t->stop_fd);
		if (r < 0) {
			snprintf(why, why_len, "out of memory");
			t->n++;
			break;
		}
		r = listen_unix(cfgs[t->n].listen, &p->listen_fd, msg, sizeof(msg));
		if (r < 0) {
			snprintf(why, why_len, "--vhost.proxy name=%s: %s", cfgs[t->n].name, msg);
			t->n++;
			break;
		}
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = -pthread_create(&t->proxies[i].thread, NULL, proxy_main, &t->proxies[i]);
		if (r < 0)
			snprintf(why, why_len, "cannot start a thread: %s", strerror(-r));
		else
			t->proxies[i].thread_started = true;
	}
	if (r < 0) {
		vhost_taps_free(t);
		return r;
	}
	for (size_t i = 0; i < n; i++)
		log_info("vhost-user proxy listening",
			 "proxy=%s listen=\"%s\" backend=\"%s\" policy=%s", cfgs[i].name,
			 cfgs[i].listen, cfgs[i].backend, vhost_policy_name(policy));
	*ret = t;
	return 0;
}
