/* SPDX-License-Identifier: MIT */
/* One frontend connection through the tap, supervised by its proxy's thread. */
#pragma once

#include "vhost/proxy.h"

/*
 * Serves one frontend connection (takes frontend_fd) until either peer
 * hangs up, the session breaks, or the proxy must stop. Blocks; called by
 * the proxy's supervisor thread.
 */
void vhost_session_run(struct vhost_proxy *p, int frontend_fd);
