# SPDX-License-Identifier: MIT
"""vhost-user peers of the tests' own (stdlib only), for the tap's tests.

- framing: send_msg() / recv_msg() of whole messages with their fds;
- BlkBackend: a scripted backend that answers a real QEMU 7.2 frontend the
  way a vhost-user-blk backend does (features, protocol features with
  BACKEND_REQ, REPLY_ACK and CONFIG, one queue, a virtio-blk config), keeps
  the backend channel QEMU passes, and sends on it whatever a test scripts;
- Sniffer: a relay that counts the requests passing through it, an
  independent count to hold the tap's counters against;
- Frontend: a minimal frontend for fault tests.

The numbers below are the vhost-user spec's (QEMU docs/interop/vhost-user.rst)
and crosvm's; this file does not share code with the tap on purpose.
"""

import collections
import os
import socket
import struct
import threading
import time

HDR = struct.Struct('=III')  # request, flags, size
HDR_SIZE = HDR.size
VERSION, REPLY, NEED_REPLY = 0x1, 0x4, 0x8
MAX_FDS_RECV = 16

# Frontend requests.
GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
SET_MEM_TABLE, GET_VRING_BASE = 5, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 15, 16, 17
SET_BACKEND_REQ_FD, GET_CONFIG, SET_CONFIG = 21, 24, 25
GET_INFLIGHT_FD, GET_MAX_MEM_SLOTS = 31, 36
# Backend requests.
SHMEM_MAP, SHMEM_UNMAP, EXTERNAL_MAP = 9, 10, 1007

# Feature bits.
F_PROTOCOL_FEATURES = 30
F_VERSION_1 = 32
PF_MQ, PF_REPLY_ACK, PF_BACKEND_REQ, PF_CONFIG = 0, 3, 5, 9

# What a frontend request's name is in the tap's `request` label.
FRONTEND_NAMES = {
    1: 'get_features', 2: 'set_features', 3: 'set_owner', 4: 'reset_owner',
    5: 'set_mem_table', 6: 'set_log_base', 7: 'set_log_fd', 8: 'set_vring_num',
    9: 'set_vring_addr', 10: 'set_vring_base', 11: 'get_vring_base', 12: 'set_vring_kick',
    13: 'set_vring_call', 14: 'set_vring_err', 15: 'get_protocol_features',
    16: 'set_protocol_features', 17: 'get_queue_num', 18: 'set_vring_enable',
    19: 'send_rarp', 20: 'net_set_mtu', 21: 'set_backend_req_fd', 22: 'iotlb_msg',
    23: 'set_vring_endian', 24: 'get_config', 25: 'set_config', 31: 'get_inflight_fd',
    32: 'set_inflight_fd', 34: 'reset_device', 36: 'get_max_mem_slots', 37: 'add_mem_reg',
    38: 'rem_mem_reg', 39: 'set_status', 40: 'get_status',
}
BACKEND_NAMES = {9: 'shmem_map', 10: 'shmem_unmap', 1007: 'external_map'}


class Msg:
    def __init__(self, request, flags, payload=b'', fds=()):
        self.request, self.flags, self.payload, self.fds = request, flags, payload, list(fds)

    @property
    def is_reply(self):
        return bool(self.flags & REPLY)

    def u64(self):
        return struct.unpack('=Q', self.payload)[0] if len(self.payload) == 8 else None

    def raw(self):
        return HDR.pack(self.request, self.flags, len(self.payload)) + self.payload

    def close_fds(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __repr__(self):
        return (f'Msg(request={self.request}, flags={self.flags:#x}, '
                f'size={len(self.payload)}, fds={len(self.fds)})')


def send_raw(sock, data, fds=()):
    """Sends bytes with fds attached to the first byte."""
    if fds:
        n = socket.send_fds(sock, [data], list(fds))
        data = data[n:]
    if data:
        sock.sendall(data)


def send_msg(sock, request, flags=VERSION, payload=b'', fds=(), size=None):
    """One message; size overrides the header's size field (for malformed ones)."""
    size = len(payload) if size is None else size
    send_raw(sock, HDR.pack(request, flags, size) + payload, fds)


def _recv_exact(sock, n, fds):
    buf = b''
    while len(buf) < n:
        data, got, _flags, _addr = socket.recv_fds(sock, n - len(buf), MAX_FDS_RECV)
        fds.extend(got)
        if not data:
            return buf
        buf += data
    return buf


def recv_msg(sock):
    """The next message, or None at end of stream (also mid-message)."""
    fds = []
    raw = _recv_exact(sock, HDR_SIZE, fds)
    if len(raw) < HDR_SIZE:
        for fd in fds:
            os.close(fd)
        return None
    request, flags, size = HDR.unpack(raw)
    payload = _recv_exact(sock, size, fds) if size else b''
    if len(payload) < size:
        for fd in fds:
            os.close(fd)
        return None
    return Msg(request, flags, payload, fds)


def u64(v):
    return struct.pack('=Q', v)


def listen_unix(path):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    return s


def connect_unix(path, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def map_payload(shmid, a, b, c, d=0):
    """SHMEM_MAP/UNMAP {u8 shmid; u8 pad[7]; u64 fd_offset; u64 shm_offset; u64 len; u64 flags},
    EXTERNAL_MAP {u8 shmid; u8 pad[7]; u64 shm_offset; u64 len; u64 ptr} (pass d=None)."""
    if d is None:
        return struct.pack('=B7xQQQ', shmid, a, b, c)
    return struct.pack('=B7xQQQQ', shmid, a, b, c, d)


class BlkBackend:
    """A scripted vhost-user-blk backend for one frontend connection."""

    PROTOCOL_FEATURES = (1 << PF_MQ) | (1 << PF_REPLY_ACK) | (1 << PF_BACKEND_REQ) | \
        (1 << PF_CONFIG)
    FEATURES = (1 << F_VERSION_1) | (1 << F_PROTOCOL_FEATURES)
    CAPACITY_SECTORS = 2048

    def __init__(self, path):
        self.path = path
        self.listener = listen_unix(path)
        self.conn = None
        self.channel = None  # the backend channel, once SET_BACKEND_REQ_FD came
        self.requests = []   # every frontend message received: (request, flags, size, nfds)
        self.channel_ready = threading.Event()
        self.config_done = threading.Event()
        self.closed = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _config(self, size):
        cfg = bytearray(max(size, 60))
        struct.pack_into('=Q', cfg, 0, self.CAPACITY_SECTORS)  # capacity
        struct.pack_into('=I', cfg, 20, 512)                    # blk_size
        struct.pack_into('=H', cfg, 34, 1)                      # num_queues
        return bytes(cfg[:size])

    def _answer(self, m):
        """The reply payload a blk backend sends, or None for none."""
        if m.request == GET_FEATURES:
            return u64(self.FEATURES)
        if m.request == GET_PROTOCOL_FEATURES:
            return u64(self.PROTOCOL_FEATURES)
        if m.request == GET_QUEUE_NUM:
            return u64(1)
        if m.request == GET_MAX_MEM_SLOTS:
            return u64(8)
        if m.request == GET_CONFIG:
            offset, size, flags = struct.unpack_from('=III', m.payload)
            return m.payload[:12] + self._config(size)
        if m.request == GET_VRING_BASE:
            return m.payload[:4] + struct.pack('=I', 0)
        if m.flags & NEED_REPLY:
            return u64(0)
        return None

    def _serve(self):
        try:
            self.listener.settimeout(60)
            self.conn, _ = self.listener.accept()
            self.conn.settimeout(None)
            while True:
                m = recv_msg(self.conn)
                if m is None:
                    break
                self.requests.append((m.request, m.flags, len(m.payload), len(m.fds)))
                if m.request == SET_BACKEND_REQ_FD and len(m.fds) == 1:
                    self.channel = socket.socket(fileno=m.fds.pop())
                    self.channel_ready.set()
                answer = self._answer(m)
                m.close_fds()
                if answer is not None:
                    send_msg(self.conn, m.request, VERSION | REPLY, answer)
                if m.request == GET_CONFIG:
                    self.config_done.set()
        except OSError as e:
            self.error = e
        finally:
            self.closed.set()

    def request_counts(self):
        """Frontend requests received, by number (replies excluded)."""
        return collections.Counter(r for r, f, _s, _n in self.requests if not f & REPLY)

    def send(self, request, flags=VERSION, payload=b'', fds=(), size=None):
        send_msg(self.channel, request, flags, payload, fds, size)

    def read_reply(self, timeout=10):
        self.channel.settimeout(timeout)
        try:
            return recv_msg(self.channel)
        finally:
            self.channel.settimeout(None)

    def close(self):
        for s in (self.channel, self.conn, self.listener):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        if os.path.exists(self.path):
            os.unlink(self.path)


class Sniffer:
    """Relays one frontend connection to a backend, counting the requests it relays."""

    def __init__(self, listen_path, backend_path):
        self.listener = listen_unix(listen_path)
        self.backend_path = backend_path
        self.path = listen_path
        self.frontend_requests = collections.Counter()
        self.backend_replies = collections.Counter()
        self.fds_relayed = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _pump(self, src, dst, counter):
        try:
            while True:
                m = recv_msg(src)
                if m is None:
                    break
                with self.lock:
                    if not m.is_reply:
                        counter[m.request] += 1
                    self.fds_relayed += len(m.fds)
                send_raw(dst, m.raw(), m.fds)
                m.close_fds()
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self):
        self.listener.settimeout(60)
        try:
            front, _ = self.listener.accept()
        except OSError:
            self.done.set()
            return
        front.settimeout(None)
        back = connect_unix(self.backend_path)
        t = threading.Thread(target=self._pump, args=(back, front, self.backend_replies),
                             daemon=True)
        t.start()
        self._pump(front, back, self.frontend_requests)
        t.join()
        front.close()
        back.close()
        self.done.set()

    def close(self):
        self.listener.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


class Frontend:
    """A minimal frontend: requests on the main channel, optionally a backend channel."""

    def __init__(self, path, timeout=10):
        self.sock = connect_unix(path)
        self.sock.settimeout(timeout)
        self.channel = None  # our end of the backend channel

    def send(self, request, flags=VERSION, payload=b'', fds=(), size=None):
        send_msg(self.sock, request, flags, payload, fds, size)

    def request(self, request, payload=b'', flags=VERSION):
        """A request that has a reply; returns the reply Msg (None at end of stream)."""
        self.send(request, flags, payload)
        return recv_msg(self.sock)

    def open_backend_channel(self):
        """SET_BACKEND_REQ_FD with NEED_REPLY; returns the ack Msg."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.channel = mine
        self.channel.settimeout(self.sock.gettimeout())
        self.send(SET_BACKEND_REQ_FD, VERSION | NEED_REPLY, b"", [theirs.fileno()])
        theirs.close()
        return recv_msg(self.sock)

    def close(self):
        for s in (self.channel, self.sock):
            if s is not None:
                s.close()


class EchoBackend:
    """Answers every request that wants a reply with u64 0 (GET_FEATURES with features);
    serves connections one after another until closed. Backend channel requests are
    answered too, from the thread that reads them."""

    def __init__(self, path):
        self.path = path
        self.listener = listen_unix(path)
        self.conns = []
        self.channels = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            while True:
                m = recv_msg(c)
                if m is None:
                    break
                if m.request == SET_BACKEND_REQ_FD and len(m.fds) == 1:
                    self.channels.append(socket.socket(fileno=m.fds.pop()))
                m.close_fds()
                if m.request == GET_FEATURES:
                    send_msg(c, m.request, VERSION | REPLY, u64(BlkBackend.FEATURES))
                elif m.flags & NEED_REPLY:
                    send_msg(c, m.request, VERSION | REPLY, u64(0))
        except OSError:
            pass
        c.close()

    def close(self):
        self.stop = True
        self.listener.close()
        for c in self.conns + self.channels:
            try:
                c.close()
            except OSError:
                pass
        if os.path.exists(self.path):
            os.unlink(self.path)


# QEMU arguments for vhost-user: guest memory the backend can map (memfd, shared).
SHARED_MEMORY = ['-object', 'memory-backend-memfd,id=mem,size=64M,share=on',
                 '-numa', 'node,memdev=mem']


def exporter_fds(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def settled_fds(pid, quiet=1.0, timeout=10):
    """The process's fd count once it has not changed for `quiet` seconds (an HTTP
    connection of the last scrape may take a moment to close)."""
    deadline = time.monotonic() + timeout
    n, since = exporter_fds(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        m = exporter_fds(pid)
        if m != n:
            n, since = m, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return n


def wait_fds(pid, baseline, timeout=10):
    """Waits until the process holds `baseline` fds again; returns the last count."""
    deadline = time.monotonic() + timeout
    while True:
        n = exporter_fds(pid)
        if n == baseline or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def exporter_log(exporter):
    """Everything the exporter wrote on stderr so far. pread: its stderr shares our file
    offset, which a seek would move under its writes."""
    fd = exporter.stderr.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors='replace')
