/* SPDX-License-Identifier: MIT */
/*
 * kvmstats_exporter: wires the sources to the collector and the collector to
 * HTTP (or to stdout with --once). The main thread owns every change to the
 * set of VMs: rescans, VMM exits, canary bursts; HTTP threads only scrape.
 */
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "config.h"
#include "cli.h"
#include "collector.h"
#include "http/http.h"
#include "log/log.h"
#include "macro.h"
#include "systemd/sdnotify.h"
#include "sources/canary_source.h"
#include "sources/file.h"
#include "sources/handoff.h"
#include "sources/procfs.h"
#include "process_metrics.h"
#include "stats_filter.h"
#include "vhost/tap.h"

struct daemon {
	struct options opts;
	struct collector collector;
	struct stats_filter stats_filter; /* --kvm.stats-include/-exclude */
	struct process_metrics process;   /* process_* from /proc/self */
	struct procfs_source procfs;
	struct handoff_source *handoff;
	struct canary_source canary;
	struct vhost_taps *vhost; /* --vhost.proxy: the tap's proxies, or NULL */
	int epoll_fd;
	int signal_fd;
	int timer_fd;
	int canary_event_fd;
	struct sdnotify_fds passed_fds; /* sockets from systemd, until taken */
	struct sdnotify_watchdog *watchdog;
	size_t status_vms; /* the VM count STATUS= last said */
};

static int fail_line(const char *fmt, ...) _printf_(1, 2);
static int fail_line(const char *fmt, ...)
{
	va_list ap;

	fputs("kvmstats_exporter: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

/* After each scrape: ask the main thread for a canary burst (never blocks the scrape). */
static void canary_trigger(void *userdata)
{
	struct daemon *d = userdata;
	uint64_t one = 1;

	(void)!write(d->canary_event_fd, &one, sizeof(one));
}

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int setup_loop(struct daemon *d)
{
	struct itimerspec its = { 0 };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	d->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	d->canary_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->signal_fd < 0 || d->timer_fd < 0 || d->canary_event_fd < 0)
		return -errno;

	its.it_value.tv_sec = (time_t)(d->opts.rescan_usec / 1000000);
	its.it_value.tv_nsec = (long)(d->opts.rescan_usec % 1000000) * 1000;
	its.it_interval = its.it_value;
	if (d->opts.procfs && timerfd_settime(d->timer_fd, 0, &its, NULL) < 0)
		return -errno;

	if (epoll_add(d->epoll_fd, d->signal_fd) < 0 || epoll_add(d->epoll_fd, d->timer_fd) < 0 ||
	    epoll_add(d->epoll_fd, d->canary_event_fd) < 0)
		return -errno;
	return 0;
}

static bool daemon_ready(void *userdata)
{
	struct collector *c = userdata;
	bool ready;

	pthread_mutex_lock(&c->lock);
	ready = c->ready;
	pthread_mutex_unlock(&c->lock);
	return ready;
}

static int daemon_collect(void *userdata, struct outbuf *out, enum exposition_format fmt,
			  uint32_t collectors)
{
	return collector_collect_only(userdata, out, fmt, collectors);
}

/* STATUS= for systemctl status, when the number of VMs changed. */
static void notify_status(struct daemon *d, bool force)
{
	if (!force && d->status_vms == d->collector.n_vms)
		return;
	d->status_vms = d->collector.n_vms;
	(void)sdnotify_status("Serving %zu VMs", d->status_vms);
}

/* Serves until SIGTERM/SIGINT. */
static int run_loop(struct daemon *d)
{
	for (;;) {
		struct epoll_event events[16];
		int n = epoll_wait(d->epoll_fd, events, ELEMENTSOF(events), -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd;
			uint64_t count;

			if (fd == d->signal_fd) {
				struct signalfd_siginfo si;

				if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					log_info("shutting down", "signal=%u", si.ssi_signo);
					return 0;
				}
			} else if (fd == d->timer_fd) {
				(void)!read(fd, &count, sizeof(count));
				procfs_scan(&d->procfs);
			} else if (fd == d->canary_event_fd) {
				(void)!read(fd, &count, sizeof(count));
				if (d->canary.canary)
					canary_source_burst(&d->canary);
			} else if (fd == sdnotify_watchdog_fd(d->watchdog)) {
				/* Pings only while daemon_ready() can take the collector lock. */
				int r = sdnotify_watchdog_dispatch(d->watchdog);

				if (r < 0)
					log_warn("cannot ping the systemd watchdog", "err=\"%s\"",
						 strerror(-r));
			} else if (handoff_source_dispatch(d->handoff, fd, events[i].events)) {
				continue;
			} else if (!procfs_vm_exited(&d->procfs, fd)) {
				/* Not ours any more: stop it from waking us again. */
				epoll_ctl(d->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
			}
		}
		notify_status(d, false);
	}
}

static bool is_handoff_peer(void *userdata, pid_t pid)
{
	return handoff_source_is_peer(userdata, pid);
}

static void handoff_start(struct daemon *d)
{
	const struct options *o = &d->opts;
	struct handoff_config cfg = {
		.path = o->handoff_socket,
		/* Socket activation (FileDescriptorName=handoff) takes precedence over the path. */
		.listen_fd =
			sdnotify_fds_take_unix_listener(&d->passed_fds, "handoff", SOCK_SEQPACKET),
		.create_parent = strcmp(o->handoff_socket, CLI_DEFAULT_HANDOFF_SOCKET) == 0,
		.allow_uids = o->handoff_allow_uids,
		.n_allow_uids = o->n_handoff_allow_uids,
		.allow_gids = o->handoff_allow_gids,
		.n_allow_gids = o->n_handoff_allow_gids,
		.max_connections = o->handoff_max_connections,
	};
	char why[256];
	int r;

	/* --no-collector.handoff: not even a socket systemd passed (it is closed on release). */
	if (!(o->collectors & (1u << COLLECTOR_HANDOFF)))
		return;
	if (cfg.listen_fd == -EPROTOTYPE) {
		log_warn("the passed hand-off socket is not a listening unix SOCK_SEQPACKET "
			 "socket (use ListenSequentialPacket=); running without it",
			 "name=%s", "handoff");
		return;
	}
	if (cfg.listen_fd < 0 && o->handoff_socket[0] == '\0')
		return;
	if (cfg.listen_fd >= 0)
		cfg.path = "(passed by systemd)";
	r = handoff_source_new(&d->collector, d->epoll_fd, &cfg, &d->handoff, why, sizeof(why));
	if (r < 0) {
		/* An exporter without /run access still serves its other sources. */
		log_warn("cannot listen on the hand-off socket; running without it",
			 "path=%s err=\"%s\"", o->handoff_socket, why);
		return;
	}
	d->procfs.skip_pid = is_handoff_peer;
	d->procfs.skip_userdata = d->handoff;
	log_info("listening for hand-offs", "path=\"%s\"", cfg.path);
}

/*
 * The sources' self-metric families, in the order docs/metrics.md lists
 * them (whatever order the sources started in). 0 or -ENOMEM.
 */
static int register_self_metrics(struct daemon *d)
{
	struct collector *c = &d->collector;

	if (d->opts.procfs &&
	    collector_add_writer(c, COLLECTOR_WRITER_SELF, procfs_write_metrics, &d->procfs) < 0)
		return -ENOMEM;
	if (d->handoff && collector_add_writer(c, COLLECTOR_WRITER_SELF,
					       handoff_source_write_metrics, d->handoff) < 0)
		return -ENOMEM;
	if (d->opts.canary && collector_add_writer(c, COLLECTOR_WRITER_SELF,
						   canary_source_write_metrics, &d->canary) < 0)
		return -ENOMEM;
	/* process_*, as every client_golang exporter has them. */
	if (process_metrics_init(&d->process) < 0)
		log_warn("cannot read /proc/stat: process_start_time_seconds left out", "err=%s",
			 "btime");
	if (collector_add_writer(c, COLLECTOR_WRITER_SELF, process_metrics_write, &d->process) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * Every held stats fd is an fd: raise the soft limit to the hard one (the
 * HTTP server uses epoll, so fds above 1024 are fine).
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int write_once(struct daemon *d)
{
	struct outbuf out = { 0 };
	int r;

	r = collector_collect(&d->collector, &out, EXPOSITION_TEXT_004);
	if (r < 0) {
		outbuf_release(&out);
		return fail_line("collecting metrics failed: %s", strerror(-r));
	}
	if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
		outbuf_release(&out);
		return fail_line("writing to stdout failed: %s", strerror(errno));
	}
	outbuf_release(&out);
	return EXIT_SUCCESS;
}

/*
 * --web.systemd-socket: every listening stream socket systemd passed, except
 * the hand-off socket. 0 with at least one fd, or -errno after saying why.
 */
static int take_web_sockets(struct daemon *d, int **ret_fds, size_t *ret_n)
{
	if (sdnotify_fds_take_stream_listeners(&d->passed_fds, "handoff", ret_fds, ret_n) < 0) {
		fail_line("out of memory");
		return -ENOMEM;
	}
	if (*ret_n == 0) {
		fail_line("--web.systemd-socket: systemd passed no listening stream socket "
			  "(LISTEN_FDS unset or for another process; is the .socket unit active?)");
		return -ENOENT;
	}
	return 0;
}

/* Tells systemd we serve (Type=notify) and starts the watchdog pings if it asks for them. */
static int notify_ready(struct daemon *d)
{
	int r;

	notify_status(d, true);
	r = sdnotify_ready(NULL);
	if (r < 0)
		log_warn("cannot notify systemd", "err=\"%s\"", strerror(-r));
	r = sdnotify_watchdog_new(daemon_ready, &d->collector, &d->watchdog);
	if (r < 0) {
		log_warn("ignoring the systemd watchdog", "err=\"%s\"", strerror(-r));
		return 0;
	}
	if (d->watchdog && epoll_add(d->epoll_fd, sdnotify_watchdog_fd(d->watchdog)) < 0)
		return -errno;
	return 0;
}

/* Whether SIGTERM or SIGINT waits on the signalfd (left there for the main loop). */
static bool signal_pending(void *userdata)
{
	const struct daemon *d = userdata;
	struct pollfd pfd = { .fd = d->signal_fd, .events = POLLIN };

	return poll(&pfd, 1, 0) > 0;
}

static int daemon_run(struct daemon *d)
{
	struct http_server *http = NULL;
	_cleanup_free_ int *web_fds = NULL;
	size_t n_web_fds = 0;
	char why[512];
	sigset_t mask;
	int r;

	/* Block the signals before any thread starts, so only the signalfd sees them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Also unsets LISTEN_*: no thread may read the environment yet. */
	r = sdnotify_listen_fds(true, &d->passed_fds);
	if (r < 0)
		return fail_line("cannot use the sockets systemd passed (LISTEN_FDS): %s",
				 strerror(-r));

	r = collector_init(&d->collector, d->opts.per_vcpu);
	if (r < 0)
		return fail_line("out of memory");
	d->collector.disable_exporter_metrics = d->opts.disable_exporter_metrics;
	d->collector.collectors = d->opts.collectors;
	r = stats_filter_init(&d->stats_filter, d->opts.stats_include, d->opts.stats_exclude, why,
			      sizeof(why));
	if (r < 0)
		return fail_line("%s", why);
	d->collector.family_keep = stats_filter_keep;
	d->collector.family_keep_userdata = &d->stats_filter;
	d->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epoll_fd < 0 || setup_loop(d) < 0)
		return fail_line("cannot set up the event loop: %s", strerror(errno));

	/* --no-collector.file: the files named are not read at all. */
	for (size_t i = 0;
	     (d->opts.collectors & (1u << COLLECTOR_FILE)) && i < d->opts.n_stats_files; i++) {
		r = source_file_load(&d->collector, d->opts.stats_files[i], why, sizeof(why));
		if (r < 0)
			return fail_line("--kvm.stats-file=%s: %s", d->opts.stats_files[i], why);
	}

	if (d->opts.canary && canary_source_start(&d->canary, &d->collector) < 0)
		return fail_line("cannot start the canary VM");

	d->procfs = (struct procfs_source){ .collector = &d->collector,
					    .proc_root = "/proc",
					    .epoll_fd = d->epoll_fd,
					    .interrupted = signal_pending,
					    .interrupted_userdata = d };
	/* Before the first scan, so that VMMs handing off are not taken twice. */
	if (!d->opts.once)
		handoff_start(d);
	if (register_self_metrics(d) < 0)
		return fail_line("out of memory");
	if (d->opts.procfs) {
		r = procfs_scan(&d->procfs);
		if (r == -EINTR) {
			/* SIGTERM while a host with many processes was being scanned. */
			log_info("shutting down", "during=\"first /proc scan\"");
			return EXIT_SUCCESS;
		}
		if (r < 0)
			log_error("cannot scan /proc; procfs discovery is off", "err=\"%s\"",
				  strerror(-r));
	}
	d->collector.ready = true;

	if (d->opts.once)
		return write_once(d);

	/* After the signals are blocked: the relay threads inherit the mask. */
	if (d->opts.n_vhost_proxies > 0) {
		r = vhost_taps_start(d->opts.vhost_proxies, d->opts.n_vhost_proxies,
				     d->opts.vhost_policy, &d->vhost, why, sizeof(why));
		if (r < 0)
			return fail_line("%s", why);
		if (collector_add_writer(&d->collector, COLLECTOR_WRITER_FAMILIES,
					 vhost_taps_write_metrics, d->vhost) < 0)
			return fail_line("out of memory");
	}

	if (d->canary.canary) {
		d->collector.after_scrape = canary_trigger;
		d->collector.after_scrape_userdata = d;
	}
	if (d->opts.systemd_socket && take_web_sockets(d, &web_fds, &n_web_fds) < 0)
		return EXIT_FAILURE;
	if (d->passed_fds.n > 0)
		log_debug("closing the sockets systemd passed that are not used", "n=%zu",
			  d->passed_fds.n);
	sdnotify_fds_release(&d->passed_fds);
	struct http_config cfg = {
		.listen = d->opts.listen,
		.n_listen = d->opts.n_listen,
		.listen_fds = web_fds,
		.n_listen_fds = n_web_fds,
		.telemetry_path = d->opts.telemetry_path,
		.collect = daemon_collect,
		.collectors = collector_names,
		.n_collectors = COLLECTOR__MAX,
		.collectors_enabled = d->opts.collectors,
		.ready = daemon_ready,
		.userdata = &d->collector,
		.max_requests = d->opts.max_requests,
	};
	if (d->opts.web_config_file &&
	    http_config_load_web_config(&cfg, d->opts.web_config_file, why, sizeof(why)) < 0)
		return fail_line("%s", why);
	r = http_server_start(&cfg, &http, why, sizeof(why));
	if (r < 0) {
		http_config_release(&cfg);
		return fail_line("%s", why);
	}
	/* promhttp_metric_handler_*: the HTTP server counts, the collector writes. */
	if (collector_add_writer(&d->collector, COLLECTOR_WRITER_SELF, http_server_write_metrics,
				 http) < 0) {
		http_server_stop(http);
		http_config_release(&cfg);
		return fail_line("out of memory");
	}
	log_info("started", "version=%s vms=%zu per_vcpu=%s procfs=%s canary=%s", PROJECT_VERSION,
		 d->collector.n_vms, d->opts.per_vcpu ? "true" : "false",
		 d->opts.procfs ? "true" : "false", d->opts.canary ? "true" : "false");
	r = notify_ready(d);
	if (r < 0) {
		http_server_stop(http);
		collector_remove_writer(&d->collector, http_server_write_metrics, http);
		return fail_line("cannot watch the systemd watchdog timer: %s", strerror(-r));
	}

	r = run_loop(d);
	(void)sdnotify_stopping(NULL);
	/* In-flight scrapes finish; systemd's TimeoutStopSec= is longer. */
	http_server_drain(http, HTTP_DRAIN_TIMEOUT_MSEC);
	http_server_stop(http);
	collector_remove_writer(&d->collector, http_server_write_metrics, http);
	http_config_release(&cfg);
	collector_remove_writer(&d->collector, handoff_source_write_metrics, d->handoff);
	d->handoff = handoff_source_free(d->handoff);
	/* No scrape runs any more: the proxies can go. */
	collector_remove_writer(&d->collector, vhost_taps_write_metrics, d->vhost);
	d->vhost = vhost_taps_free(d->vhost);
	return r < 0 ? fail_line("event loop failed: %s", strerror(-r)) : EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	struct daemon d = {
		.epoll_fd = -1, .signal_fd = -1, .timer_fd = -1, .canary_event_fd = -1
	};
	int r;

	r = cli_parse(argc, argv, &d.opts);
	if (r < 0)
		return EXIT_FAILURE;
	if (r == CLI_EXIT_OK)
		return EXIT_SUCCESS;
	log_set_level(d.opts.log_level);
	log_set_format(d.opts.log_format);
	raise_fd_limit();

	r = daemon_run(&d);

	handoff_source_free(d.handoff);
	vhost_taps_free(d.vhost);
	sdnotify_watchdog_free(d.watchdog);
	sdnotify_fds_release(&d.passed_fds);
	collector_release(&d.collector);
	procfs_source_release(&d.procfs);
	canary_source_release(&d.canary);
	stats_filter_release(&d.stats_filter);
	safe_close(d.epoll_fd);
	safe_close(d.signal_fd);
	safe_close(d.timer_fd);
	safe_close(d.canary_event_fd);
	options_release(&d.opts);
	return r;
}
