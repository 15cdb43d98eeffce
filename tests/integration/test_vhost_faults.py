#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Faults through the tap: peers that die mid-message, messages beyond the bounds, fds.

usage: test_vhost_faults.py

Two proxies: "a" between a frontend and a backend the test drives by hand
(vhost_user.Frontend and a raw listening socket), "b" between a frontend of
the test and vhost_user.EchoBackend, whose session stays open all along.

Each case on "a": the backend dies mid-message; the frontend dies
mid-message; a frontend message above VHOSTMSG_MAX_PAYLOAD; a backend-channel
message above it; 9 and 20 fds on one message (the bound is 8); fds that the
request does not announce (relayed under observe, counted); no backend
listening; a second frontend while one is served; and, not a fault, region
sizes learnt from the backend's GET_SHMEM_CONFIG reply and a mapping tracked
in them; a frontend that reconnects.

After every case: the partial message never reached the other peer, the
session of "a" ended (or went on) as it must, proxy "b" still relays a
request/reply round trip and one on its backend channel, /metrics answers,
and the exporter's fd count is back to its baseline. At the end every counter
of "a" is exact.

Needs no QEMU and no /dev/kvm.
"""
import collections
import os
import shutil
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib import vhost_user as vb  # noqa: E402

V, NR, REPLY = vb.VERSION, vb.NEED_REPLY, vb.REPLY
MAX_PAYLOAD = 4096
GET_SHMEM_CONFIG = 44


class Case:
    def __init__(self, exporter, work, problems):
        self.exporter, self.work, self.problems = exporter, work, problems

    def check(self, cond, msg):
        if not cond:
            self.problems.append(msg)


def sample(exporter, name, **labels):
    expo = kc.Exposition(exporter.scrape())
    return expo.samples.get((name, tuple(sorted(labels.items()))), (None,))[0]


def wait_metric(exporter, want, name, **labels):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sample(exporter, name, **labels) == want:
            return True
        time.sleep(0.05)
    return False


def eof_without_data(sock, timeout=10):
    """True when the peer closes without sending a byte more."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b''
    except ConnectionResetError:
        return True
    except OSError:
        return False


def memfds(n):
    return [os.memfd_create('fault') for _ in range(n)]


def close_all(fds):
    for fd in fds:
        os.close(fd)


class Backend:
    """The real backend of proxy a: a listening socket the test answers by hand."""

    def __init__(self, path):
        self.path = path
        self.listener = vb.listen_unix(path)
        self.listener.settimeout(10)

    def accept(self):
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        return conn

    def close(self):
        self.listener.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def session(tap, backend):
    """A frontend connected through proxy a, and the backend's side of it."""
    f = vb.Frontend(tap)
    return f, backend.accept()


def open_channel(f, conn):
    """The frontend passes a backend channel; the backend acks it. The backend's end."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    f.channel = mine
    f.channel.settimeout(10)
    f.send(vb.SET_BACKEND_REQ_FD, V | NR, b'', [theirs.fileno()])
    theirs.close()
    m = vb.recv_msg(conn)
    assert m and m.request == vb.SET_BACKEND_REQ_FD and len(m.fds) == 1, m
    vb.send_msg(conn, m.request, V | REPLY, vb.u64(0))
    ack = vb.recv_msg(f.sock)
    assert ack and ack.u64() == 0, ack
    return socket.socket(fileno=m.fds.pop())


def round_trip(f, conn):
    """GET_FEATURES through proxy a: the session still relays."""
    f.send(vb.GET_FEATURES)
    m = vb.recv_msg(conn)
    if not m or m.request != vb.GET_FEATURES:
        return False
    vb.send_msg(conn, vb.GET_FEATURES, V | REPLY, vb.u64(42))
    r = vb.recv_msg(f.sock)
    return bool(r and r.u64() == 42)


class HealthyProxy:
    """Proxy b's frontend, its session open all along, with a backend channel."""

    def __init__(self, tap, echo):
        self.f = vb.Frontend(tap)
        ack = self.f.open_backend_channel()
        assert ack and ack.u64() == 0, ack
        deadline = time.monotonic() + 10
        while not echo.channels and time.monotonic() < deadline:
            time.sleep(0.02)
        self.echo = echo

    def works(self):
        r = self.f.request(vb.GET_FEATURES)
        if not r or r.u64() != vb.BlkBackend.FEATURES:
            return False
        # A backend request with NEED_REPLY, answered by us as the frontend.
        vb.send_msg(self.echo.channels[-1], 77, V | NR)
        m = vb.recv_msg(self.f.channel)
        if not m or m.request != 77:
            return False
        vb.send_msg(self.f.channel, 77, V | REPLY, vb.u64(0))
        r = vb.recv_msg(self.echo.channels[-1])
        return bool(r and r.u64() == 0)


def run_cases(exporter, tap, backend, expected, c):
    # 1. The backend dies in the middle of a reply.
    f, conn = session(tap, backend)
    f.send(vb.GET_FEATURES)
    c.check(vb.recv_msg(conn).request == vb.GET_FEATURES, 'GET_FEATURES not relayed')
    conn.sendall(vb.HDR.pack(vb.GET_FEATURES, V | REPLY, 8)[:6])
    conn.close()
    c.check(eof_without_data(f.sock), 'backend died mid-message: the frontend got data or no EOF')
    f.close()
    expected[('frontend', 'truncated')] += 1
    yield 'the backend dies mid-message'

    # 2. The frontend dies in the middle of a request.
    f, conn = session(tap, backend)
    f.sock.sendall(vb.HDR.pack(vb.SET_FEATURES, V, 8) + b'\0' * 4)
    f.close()
    c.check(eof_without_data(conn), 'frontend died mid-message: the backend got data or no EOF')
    conn.close()
    expected[('frontend', 'truncated')] += 1
    yield 'the frontend dies mid-message'

    # 3. A frontend message larger than the bound.
    f, conn = session(tap, backend)
    c.check(round_trip(f, conn), 'no round trip before the oversized message')
    f.send(vb.SET_CONFIG, V, b'\0' * 64, size=MAX_PAYLOAD + 1)  # the rest never comes
    c.check(eof_without_data(conn), 'oversized message: the backend got data or no EOF')
    c.check(eof_without_data(f.sock), 'oversized message: the frontend kept its session')
    f.close()
    conn.close()
    expected[('frontend', 'too_large')] += 1
    yield 'a frontend message above the bound'

    # 4. A backend-channel message larger than the bound.
    f, conn = session(tap, backend)
    ch = open_channel(f, conn)
    ch.sendall(vb.HDR.pack(vb.EXTERNAL_MAP, V | NR, 1 << 20) + b'\0' * 64)
    c.check(eof_without_data(f.channel), 'oversized backend request reached the frontend')
    c.check(eof_without_data(conn), 'oversized backend request: the session went on')
    for s in (ch, conn):
        s.close()
    f.close()
    expected[('backend', 'too_large')] += 1
    yield 'a backend-channel message above the bound'

    # 5. More fds than any message may carry: 9 (read, then refused) and 20 (cut).
    for n in (9, 20):
        f, conn = session(tap, backend)
        fds = memfds(n)
        f.send(vb.SET_MEM_TABLE, V, b'\0' * 8, fds)
        close_all(fds)
        c.check(eof_without_data(conn), f'{n} fds: the backend got data or no EOF')
        c.check(eof_without_data(f.sock), f'{n} fds: the frontend kept its session')
        f.close()
        conn.close()
        expected[('frontend', 'fd_count')] += 1
        yield f'{n} fds on one message'

    # 6. Fds a request does not announce: counted, relayed (observe), session goes on.
    f, conn = session(tap, backend)
    fds = memfds(2)
    f.send(vb.SET_OWNER, V, b'', fds)
    close_all(fds)
    m = vb.recv_msg(conn)
    c.check(m and m.request == vb.SET_OWNER and len(m.fds) == 2,
            f'SET_OWNER with 2 fds not relayed with them: {m}')
    if m:
        m.close_fds()
    ch = open_channel(f, conn)
    fds = memfds(3)
    vb.send_msg(ch, vb.SHMEM_MAP, V, vb.map_payload(0, 0, 0, 4096, 1), fds)
    close_all(fds)
    m = vb.recv_msg(f.channel)
    c.check(m and m.request == vb.SHMEM_MAP and len(m.fds) == 3,
            f'SHMEM_MAP with 3 fds not relayed with them: {m}')
    if m:
        m.close_fds()
    c.check(round_trip(f, conn), 'no round trip after unannounced fds')
    ch.close()
    conn.close()
    f.close()
    expected[('frontend', 'fd_count')] += 1
    expected[('backend', 'fd_count')] += 1
    yield 'fds the requests do not announce'

    # 7. A second frontend while one is served is turned away; the first goes on.
    f, conn = session(tap, backend)
    g = vb.Frontend(tap)
    c.check(eof_without_data(g.sock), 'a second frontend was not turned away')
    g.close()
    c.check(round_trip(f, conn), 'the first frontend stopped working')
    f.close()
    conn.close()
    yield 'a second frontend at the same time'

    # 8. No backend listening: the frontend is closed, nothing is counted.
    backend.listener.close()
    os.unlink(backend.path)
    f = vb.Frontend(tap)
    c.check(eof_without_data(f.sock), 'no backend: the frontend was not closed')
    f.close()
    backend.listener = vb.listen_unix(backend.path)
    backend.listener.settimeout(10)
    expected['no_session'] += 1
    yield 'no backend listening'

    # 9. Not a fault: region sizes learnt from the backend's GET_SHMEM_CONFIG reply
    #    ({u32 nregions; u32 padding; u64 sizes[256]}), then mappings tracked in them.
    f, conn = session(tap, backend)
    f.send(GET_SHMEM_CONFIG)
    m = vb.recv_msg(conn)
    c.check(m and m.request == GET_SHMEM_CONFIG, f'GET_SHMEM_CONFIG not relayed: {m}')
    sizes = [0] * 256
    sizes[3] = 1 << 20
    vb.send_msg(conn, GET_SHMEM_CONFIG, V | REPLY,
                struct.pack('=II256Q', 1, 0, *sizes))
    r = vb.recv_msg(f.sock)
    c.check(r and r.request == GET_SHMEM_CONFIG and len(r.payload) == 8 + 8 * 256,
            f'GET_SHMEM_CONFIG reply not relayed: {r}')
    ch = open_channel(f, conn)
    for shmid, accepted in ((3, True), (4, False)):
        fds = memfds(1)
        vb.send_msg(ch, vb.SHMEM_MAP, V | NR, vb.map_payload(shmid, 0, 0, 64 << 10, 1), fds)
        close_all(fds)
        m = vb.recv_msg(f.channel)
        c.check(m and m.request == vb.SHMEM_MAP, f'SHMEM_MAP to shmid {shmid} not relayed')
        if m:
            m.close_fds()
        vb.send_msg(f.channel, vb.SHMEM_MAP, V | REPLY, vb.u64(0))
        r = vb.recv_msg(ch)
        c.check(r and r.u64() == 0, f'reply to SHMEM_MAP of shmid {shmid} not relayed')
    expected[('backend', 'unknown_shmid')] += 1  # shmid 4: no such region
    c.check(sample(exporter, 'vhost_user_shmem_mappings', proxy='a', shmid='3') == 1 and
            sample(exporter, 'vhost_user_shmem_mapped_bytes', proxy='a', shmid='3') == 64 << 10,
            'the mapping in the learnt region 3 is not tracked')
    ch.close()
    conn.close()
    f.close()
    yield 'regions learnt from GET_SHMEM_CONFIG'

    # 10. A frontend that reconnects gets a fresh session.
    for _ in range(2):
        f, conn = session(tap, backend)
        c.check(round_trip(f, conn), 'a reconnecting frontend is not served')
        f.close()
        c.check(eof_without_data(conn), 'the backend did not see the frontend go')
        conn.close()
    yield 'a frontend reconnects twice'


def main():
    kc.exporter_path()
    problems = []
    work = tempfile.mkdtemp(prefix='vt-')
    a_tap, a_be = f'{work}/a-tap.sock', f'{work}/a-be.sock'
    b_tap, b_be = f'{work}/b-tap.sock', f'{work}/b-be.sock'
    backend = Backend(a_be)
    echo = vb.EchoBackend(b_be)
    args = [f'--vhost.proxy=name=a,listen={a_tap},backend={a_be}',
            f'--vhost.proxy=name=b,listen={b_tap},backend={b_be}',
            '--no-kvm.procfs', '--kvm.handoff-socket=']
    expected = collections.Counter()
    try:
        with kc.Exporter(args) as exporter:
            healthy = HealthyProxy(b_tap, echo)
            c = Case(exporter, work, problems)
            baseline = vb.settled_fds(exporter.pid)
            kc.log(f'  exporter holds {baseline} fds with proxy b connected')
            cases = 0
            for what in run_cases(exporter, a_tap, backend, expected, c):
                cases += 1
                before = len(problems)
                if not wait_metric(exporter, 0, 'vhost_user_proxy_connected', proxy='a'):
                    problems.append(f'{what}: proxy a still connected')
                if not healthy.works():
                    problems.append(f'{what}: proxy b stopped relaying')
                if sample(exporter, 'vhost_user_proxy_connected', proxy='b') != 1:
                    problems.append(f'{what}: proxy b lost its session')
                n = vb.wait_fds(exporter.pid, baseline)
                n = vb.settled_fds(exporter.pid) if n != baseline else n
                if n != baseline:
                    problems.append(f'{what}: exporter holds {n} fds, baseline {baseline}')
                kc.log(f'  {"ok" if len(problems) == before else "FAIL"}: {what}')

            expo = kc.Exposition(exporter.scrape())
            problems += expo.errors
            sessions = cases - expected['no_session'] + 1  # the last case has two, case 8 none
            got = expo.samples.get(('vhost_user_proxy_connections_total', (('proxy', 'a'),)),
                                   (None,))[0]
            if got != sessions:
                problems.append(f'connections_total of a = {got}, expected {sessions}')
            for k, v in expo.samples.items():
                if k[0] != 'vhost_user_invalid_messages_total' or ('proxy', 'a') not in k[1]:
                    continue
                ld = dict(k[1])
                want = expected[(ld['channel'], ld['reason'])]
                if v[0] != want:
                    problems.append(f'{kc.fmt_key(k)} = {v[1]}, expected {want}')
            # Between sessions no mapping is live; the learnt region stays listed.
            if sample(exporter, 'vhost_user_shmem_mappings', proxy='a', shmid='3') != 0:
                problems.append('a mapping of an ended session is still counted')
            for k, v in expo.samples.items():
                if k[0] == 'vhost_user_invalid_messages_total' and ('proxy', 'b') in k[1] \
                        and v[0] != 0:
                    problems.append(f'proxy b: {kc.fmt_key(k)} = {v[1]}')
            healthy.f.close()
            if problems:
                print(exporter.log_text(), file=sys.stderr)
    finally:
        backend.close()
        echo.close()
        shutil.rmtree(work, ignore_errors=True)
    ok = kc.report(problems, 'faults through the tap')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
