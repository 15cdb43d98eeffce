/* SPDX-License-Identifier: MIT */
/*
 * State shared by the ioctl hook (kvmstats_preload.c), which runs on the
 * VMM's threads, and the hand-off thread (preload_handoff.c).
 *
 * The table of VMs is the queue between them: the hook appends stats fds
 * under the mutex and pokes the eventfd; the thread hands out what is
 * pending. Everything under the mutex is memory bookkeeping only: no thread
 * holds it across I/O, so the hook never waits for a socket. Only the hand-off
 * thread closes the stats fds and sockets in the table (and a fork child its
 * own copies), so the thread may use those fd numbers without the mutex.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#define PRELOAD_MAX_VMS        64    /* VMs tracked per process */
#define PRELOAD_MAX_VCPUS      1024  /* vCPUs tracked per VM */
#define PRELOAD_IO_TIMEOUT_MS  2000  /* send, connect and answer, on the hand-off thread */
#define PRELOAD_RETRY_MS       1000  /* reconnecting to an absent or restarted exporter */
#define PRELOAD_REFUSED_MAX_MS 30000 /* backoff ceiling when a registration is refused */
#define PRELOAD_LIVENESS_MS    2000  /* how often the thread looks for VMs the VMM closed */
#define PRELOAD_DEFAULT_SOCKET "/run/kvmstats_exporter/handoff.sock"
#define PRELOAD_LOG_PREFIX     "kvmstats_preload"

/* Where a stats fd stands with the current connection. */
enum preload_fd_state {
	PRELOAD_FD_PENDING = 0, /* not yet on this connection */
	PRELOAD_FD_SENT,        /* accepted by the exporter */
	PRELOAD_FD_REFUSED,     /* refused on this connection; offered again on the next */
};

/* One line each, once (until the hand-off works again for the connection kinds). */
enum preload_failure {
	PRELOAD_FAIL_CONNECT = 1u << 0,      /* exporter absent, wrong path, not allowed */
	PRELOAD_FAIL_LOST = 1u << 1,         /* connection closed, reset or timed out */
	PRELOAD_FAIL_REFUSED = 1u << 2,      /* registration answered ok:false */
	PRELOAD_FAIL_REFUSED_FDS = 1u << 3,  /* some later fds answered ok:false */
	PRELOAD_FAIL_STATS_FD = 1u << 4,     /* KVM_GET_STATS_FD failed in the hook */
	PRELOAD_FAIL_LIMIT_VMS = 1u << 5,    /* more than PRELOAD_MAX_VMS */
	PRELOAD_FAIL_LIMIT_VCPUS = 1u << 6,  /* more than PRELOAD_MAX_VCPUS in one VM */
	PRELOAD_FAIL_LIMIT_NOFILE = 1u << 7, /* stats fd not kept: near RLIMIT_NOFILE */
	PRELOAD_FAIL_NOMEM = 1u << 8,        /* allocation failed in the hook */
	PRELOAD_FAIL_NAME = 1u << 9,         /* KVMSTATS_VM_NAME unusable */
};

#define PRELOAD_FAIL_CONNECTION (PRELOAD_FAIL_CONNECT | PRELOAD_FAIL_LOST | PRELOAD_FAIL_REFUSED)

struct preload_vcpu {
	int id;       /* the vCPU id given to KVM_CREATE_VCPU */
	int fd;       /* the VMM's vCPU fd for the liveness check; -1 once reused */
	int stats_fd; /* ours, kept open in the VMM */
	enum preload_fd_state state;
	int run_tid;                     /* the thread seen calling KVM_RUN on it, 0 until then */
	enum preload_fd_state tid_state; /* of run_tid with the current connection */
};

struct preload_vm {
	bool used;
	bool stale;      /* the VMM closed its VM and vCPU fds: retire */
	int vm_fd;       /* the VMM's VM fd, -1 once its number names another VM */
	unsigned number; /* 1 for the first VM of the process, 2 for the next... */
	int stats_fd;    /* -1 when KVM_GET_STATS_FD failed */
	enum preload_fd_state stats_state;
	struct preload_vcpu *vcpus;
	size_t n_vcpus;
	size_t cap_vcpus;

	/* Written by the hand-off thread only (under the mutex). */
	int sock;              /* connection to the exporter, -1 when none */
	uint64_t next_attempt; /* CLOCK_MONOTONIC ms of the next connection attempt */
	unsigned backoff_ms;   /* after a refused registration */
	bool threads_refused;  /* the exporter refused a "threads" message (predates it) */
};

enum preload_thread_state {
	PRELOAD_THREAD_NONE = 0,
	PRELOAD_THREAD_RUNNING,
	PRELOAD_THREAD_FAILED,
};

struct preload_state {
	pthread_mutex_t lock;

	/* Set once by preload_init(), read-only afterwards. */
	bool disabled; /* KVMSTATS_PRELOAD_DISABLE: pure pass-through */
	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	bool socket_path_too_long;
	char env_name[256]; /* KVMSTATS_VM_NAME, "" when unset */
	bool env_name_invalid;

	/* Under the lock. */
	bool forked_child; /* a fork() child: it holds none of the parent's state */
	enum preload_thread_state thread;
	int efd; /* eventfd the hook pokes; -1 before the thread starts */
	unsigned vms_created;
	unsigned hook_failures; /* enum preload_failure bits raised by the hook */
	int stats_fd_errno;     /* errno of the first failed KVM_GET_STATS_FD */
	struct preload_vm vms[PRELOAD_MAX_VMS];
};

extern struct preload_state preload;

/* Starts the hand-off thread with every signal blocked; 0 or -errno. */
int preload_thread_start(void);

/* Writes one "kvmstats_preload[pid]: ..." line to stderr in one write(). */
void preload_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
