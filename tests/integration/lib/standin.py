"""A strict hand-off server in Python (the exporter's side of docs/handoff.md), for the shim's tests."""

import json
import os
import re
import selectors
import socket
import sys
import threading
import time

from lib import kvm_common as kc


# --- the exporter side of docs/handoff.md, in Python ----------------------------
def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError('duplicate key')
    return dict(pairs)


def _text_ok(s, limit):
    return isinstance(s, str) and 0 < len(s.encode()) <= limit and \
        not any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in s)


class StandIn:
    """A strict hand-off server in a thread.

    mode 'ok' accepts what the protocol allows and records anything else as a
    problem of the shim; 'refuse' answers every registration ok:false; 'mute'
    reads messages and never answers.
    """

    class Conn:
        def __init__(self, sock):
            self.sock = sock
            self.registered = False
            self.name = self.uuid = None
            self.pid = None
            self.roles = {}   # role -> fd
            self.threads = {}  # role -> tid ("threads" messages)
            self.ids = {}     # role -> stats file id
            self.held = []    # fds kept without an answer (mute)

    def __init__(self, path, mode='ok'):
        self.path, self.mode = path, mode
        self.lock = threading.Lock()
        self.problems, self.refusals = [], []
        self.registrations = 0
        self.conns = {}
        self.disconnects = []  # (name, monotonic time)
        if os.path.exists(path):
            os.unlink(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(64)
        self.wake_r, self.wake_w = os.pipe()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        sel.register(self.wake_r, selectors.EVENT_READ)
        while not self.stopping:
            for key, _ in sel.select():
                if key.fileobj is self.listener:
                    c, _ = self.listener.accept()
                    sel.register(c, selectors.EVENT_READ)
                    conn = StandIn.Conn(c)
                    creds = c.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
                    conn.pid = int.from_bytes(creds[:4], sys.byteorder)
                    with self.lock:
                        self.conns[c] = conn
                elif key.fileobj is self.wake_r:
                    continue
                else:
                    c = key.fileobj
                    try:
                        msg, fds, flags, _ = socket.recv_fds(c, 70000, 256)
                    except OSError:
                        msg, fds, flags = b'', [], 0
                    if not msg:
                        sel.unregister(c)
                        self._drop(c)
                        continue
                    with self.lock:
                        self._handle(self.conns[c], msg, fds, flags)
        for c in list(self.conns):
            self._drop(c)
        self.listener.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _drop(self, c):
        with self.lock:
            conn = self.conns.pop(c)
            for fd in list(conn.roles.values()) + conn.held:
                os.close(fd)
            conn.roles, conn.held = {}, []
            if conn.registered:
                self.disconnects.append((conn.name, time.monotonic()))
        c.close()

    def _answer(self, conn, ok, error=None):
        msg = {'ok': True} if ok else {'ok': False, 'error': error}
        conn.sock.send(json.dumps(msg).encode())

    def _refuse(self, conn, fds, why):
        if self.mode == 'ok':
            self.problems.append(f'shim sent a message the protocol forbids: {why}')
        self.refusals.append(why)
        for fd in fds:
            os.close(fd)
        self._answer(conn, False, why)

    def _handle(self, conn, raw, fds, flags):
        if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
            return self._refuse(conn, fds, 'truncated datagram or ancillary data')
        try:
            obj = json.loads(raw.decode('utf-8'), object_pairs_hook=_no_duplicate_keys)
        except (ValueError, UnicodeDecodeError) as e:
            return self._refuse(conn, fds, f'not JSON: {e}')
        if not isinstance(obj, dict):
            return self._refuse(conn, fds, 'not an object')
        if not conn.registered:
            self.registrations += 1
            if set(obj) != {'version', 'vm', 'fds'}:
                return self._refuse(conn, fds, f'registration keys {sorted(obj)}')
            if obj['version'] != 1 or isinstance(obj['version'], bool):
                return self._refuse(conn, fds, f'version {obj["version"]!r}')
            vm = obj['vm']
            if not isinstance(vm, dict) or not set(vm) <= {'name', 'uuid', 'labels'} \
                    or 'name' not in vm:
                return self._refuse(conn, fds, f'vm object {vm!r}')
            if not _text_ok(vm['name'], 253):
                return self._refuse(conn, fds, f'vm.name {vm["name"]!r}')
            if 'uuid' in vm and not _text_ok(vm['uuid'], 64):
                return self._refuse(conn, fds, f'vm.uuid {vm["uuid"]!r}')
            if any(c.registered and c.name == vm['name'] for c in self.conns.values()):
                return self._refuse(conn, fds, f'name {vm["name"]!r} is taken')
            if self.mode == 'refuse':
                for fd in fds:
                    os.close(fd)
                return self._answer(conn, False, 'refused by the test')
        elif set(obj) == {'threads'}:
            return self._threads(conn, obj['threads'], fds)
        elif set(obj) != {'fds'}:
            return self._refuse(conn, fds, f'later message keys {sorted(obj)} (expected fds)')
        roles = obj['fds']
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            return self._refuse(conn, fds, f'fds {roles!r}')
        if len(roles) != len(fds) or len(fds) > 64:
            return self._refuse(conn, fds, f'{len(roles)} roles for {len(fds)} fds')
        if len(set(roles)) != len(roles) or set(roles) & set(conn.roles):
            return self._refuse(conn, fds, f'repeated role in {roles}')
        ids = {}
        for role, fd in zip(roles, fds):
            m = re.fullmatch(r'vcpu:(0|[1-9][0-9]*)', role)
            if role != 'vm' and not m:
                return self._refuse(conn, fds, f'unknown role {role!r}')
            try:
                f = kc.parse_blob(os.pread(fd, 1 << 20, 0))
            except Exception as e:  # noqa: BLE001 - anything unreadable is refused
                return self._refuse(conn, fds, f'{role}: not a KVM stats fd ({e})')
            want = r'kvm-\d+' if role == 'vm' else rf'kvm-\d+/vcpu-{m.group(1)}'
            if not re.fullmatch(want, f.id):
                return self._refuse(conn, fds, f'{role}: stats file id {f.id!r}')
            ids[role] = f.id
        if self.mode == 'mute':
            conn.held += fds
            return None
        if not conn.registered:
            conn.registered, conn.name, conn.uuid = True, obj['vm']['name'], obj['vm'].get('uuid')
        conn.roles.update(zip(roles, fds))
        conn.ids.update(ids)
        return self._answer(conn, True)

    def _threads(self, conn, threads, fds):
        """docs/handoff.md "Threads": held vCPU roles, threads of the peer, none twice."""
        if fds:
            return self._refuse(conn, fds, f'{len(fds)} fds attached to a threads message')
        if not isinstance(threads, dict) or not threads:
            return self._refuse(conn, fds, f'threads {threads!r}')
        for role, tid in threads.items():
            if role not in conn.roles or role == 'vm':
                return self._refuse(conn, fds, f'threads: role {role!r} not held')
            if not isinstance(tid, int) or isinstance(tid, bool) or \
                    not os.path.exists(f'/proc/{conn.pid}/task/{tid}'):
                return self._refuse(conn, fds, f'threads: {tid!r} is not a thread of the peer')
        if len(set(threads.values())) != len(threads):
            return self._refuse(conn, fds, f'threads: a thread named twice in {threads}')
        conn.threads.update(threads)
        return self._answer(conn, True)

    def threads(self, name):
        """{role: tid} the VM's peer named in "threads" messages."""
        with self.lock:
            for c in self.conns.values():
                if c.registered and c.name == name:
                    return dict(c.threads)
        return {}

    def vm(self, name):
        """A snapshot of the registered VM of that name: (pid, uuid, roles set, ids), or None."""
        with self.lock:
            for c in self.conns.values():
                if c.registered and c.name == name:
                    return c.pid, c.uuid, set(c.roles), dict(c.ids)
        return None

    def read(self, name):
        """{role: StatsFile} read from the fds the server holds for the VM."""
        with self.lock:
            for c in self.conns.values():
                if c.registered and c.name == name:
                    return {r: kc.parse_blob(os.pread(fd, 1 << 20, 0)) for r, fd in c.roles.items()}
        kc.fail(f'VM {name} is not registered with the stand-in')

    def stop(self):
        self.stopping = True
        os.write(self.wake_w, b'x')
        self.thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.stopping:
            self.stop()
