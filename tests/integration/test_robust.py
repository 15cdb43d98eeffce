#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Robustness runs against real KVM VMs (tests/tools/kvmfleet), bounded in time.

  test_robust.py KVMFLEET churn [--mode procfs|handoff] [--vms N] [--vcpus M] [--churn C]
  test_robust.py KVMFLEET load  [--seconds S] [--connections C]
  test_robust.py KVMFLEET slow  [--seconds S] [--clients N]
  test_robust.py KVMFLEET soak  [--scrapes N]

churn: C VMM processes killed and replaced, one after another at 10 Hz, while
       a client scrapes at 10 Hz: every scrape answers 200 with every VM's
       kvm_vm_info exactly once; afterwards the exporter holds exactly the live
       VMs' stats fds (its fd count back to where it was before the churn), and
       no kvm_vm_info names a dead process.
load:  wrk (Debian package) with C connections for S seconds on /metrics: no
       socket error, every answer a 200 or the 503 of --web.max-requests, and
       the exporter's RSS at the end within 4 MiB of its RSS half way through.
slow:  N connections from 127.0.0.1 that idle or trickle a request one byte
       at a time; meanwhile scrapes from 127.0.0.2 must each answer within 1 s.
soak:  N scrapes back to back (the three forms Prometheus uses, in turn): fd
       count unchanged and RSS within 1 MiB from a tenth of the way to the end.

The short forms (meson, suite kvm) use a few VMs and seconds; the long forms
are in docs/performance.md. EXPORTER comes from the environment.
Exit 77 without /dev/kvm (or without wrk for load).
"""

import argparse
import ctypes
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib.kvm_common import Exporter, count_stats_fds, fail, log, require_kvm, skip  # noqa: E402
from lib.fleet import Fleet, handoff_exporter, http_get  # noqa: E402

FORMS = [
    ('application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2', True),
    ('text/plain;version=0.0.4', True),
    ('text/plain;version=0.0.4', False),
]
INFO_PID = re.compile(r'^kvm_vm_info\{[^}]*\bpid="(\d+)"', re.M)


def tcp_inodes():
    inodes = set()
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(name) as f:
                inodes |= {line.split()[9] for line in list(f)[1:]}
        except OSError:
            pass
    return inodes


def exporter_fds(pid):
    """The exporter's fds but its TCP sockets (HTTP connections come and go)."""
    tcp, n = tcp_inodes(), 0
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            link = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:
            continue
        m = re.fullmatch(r'socket:\[(\d+)\]', link)
        if not (m and m.group(1) in tcp):
            n += 1
    return n


def sanitized():
    """Whether the exporter is built with ASan, whose quarantine keeps freed memory in RSS."""
    with open(os.environ.get('EXPORTER', ''), 'rb') as f:
        return b'__asan_init' in f.read()


def rss_kib(pid):
    with open(f'/proc/{pid}/status') as f:
        return int(re.search(r'^VmRSS:\s+(\d+)', f.read(), re.M).group(1))


# --- churn ---------------------------------------------------------------------
def held_vms(text, pids):
    """kvm_vm_info pids among the fleet's (procfs also sees VMMs of others)."""
    got = [int(p) for p in INFO_PID.findall(text)]
    return [p for p in got if p in pids] if pids is not None else got


def churn(a, fleet_path):
    # Every VMM process the fleet ever made, to tell the fleet's dead VMs from strangers.
    with tempfile.TemporaryDirectory(prefix='robust-') as tmp:
        if a.mode == 'handoff':
            exp, sock = handoff_exporter(tmp, a.vms)
        else:
            exp, sock = Exporter(['--kvm.handoff-socket=', '--kvm.rescan-interval=200ms']), None
        with exp:
            base_fds = exporter_fds(exp.pid)  # without the fleet (hand-off mode)
            with Fleet(fleet_path, a.vms, a.vcpus, handoff=sock, churn=a.churn,
                       churn_hz=10) as fl:
                before = set(fl.pids)
                wait_fleet(exp, fl, a.vms, a.mode)
                held_fds = exporter_fds(exp.pid)
                scrapes, errors, stop = [0], [], threading.Event()

                def scraper():
                    while not stop.is_set():
                        t0 = time.monotonic()
                        try:
                            status, body = http_get('127.0.0.1', exp.port)
                            if status != 200:
                                errors.append(f'status {status}')
                            elif body.count(b'\nkvm_vm_info{') == 0:
                                errors.append('no kvm_vm_info')
                            else:
                                pids = INFO_PID.findall(body.decode())
                                if len(pids) != len(set(pids)):
                                    errors.append('a VM listed twice')
                        except OSError as e:
                            errors.append(f'scrape failed: {e}')
                        scrapes[0] += 1
                        stop.wait(max(0.0, 0.1 - (time.monotonic() - t0)))

                th = threading.Thread(target=scraper)
                th.start()
                fl.start_churn()
                line = fl.readline(a.churn / 10 * 3 + 60)
                stop.set()
                th.join()
                if line.strip() != f'churned {a.churn}':
                    fail(f'kvmfleet said {line!r} instead of "churned {a.churn}"')
                if errors:
                    fail(f'{len(errors)} of {scrapes[0]} scrapes failed during the churn: '
                         f'{errors[:5]}')
                live = set(fl.read_pids())
                log(f'  {a.churn} VMs replaced in {a.mode} mode, {scrapes[0]} scrapes at '
                    f'10 Hz, all 200')
                text = wait_fleet(exp, fl, a.vms, a.mode)
                dead = [p for p in INFO_PID.findall(text) if int(p) in before - live]
                if dead:
                    fail(f'dead VM processes still exported: {dead[:5]}')
                # procfs also takes the VMs of other VMMs on this host, which may come and
                # go: there the check is on the fleet's own stats fds, by the creator pid
                # in each held file's id: exactly the live VMMs' ones, none of a dead one.
                want_fleet = len(live) * (a.vcpus + 1)
                deadline = time.monotonic() + 15
                while True:
                    if a.mode == 'handoff':
                        got, want = exporter_fds(exp.pid), held_fds
                        ok = got == want and stats_fds_match(exp.pid, fl.read_pids())
                    else:
                        got, dead = fleet_fds_held(exp, fl)
                        want = want_fleet
                        ok = got == want and dead == 0
                    if ok:
                        break
                    if time.monotonic() > deadline:
                        fail(f'after the churn the exporter holds {got} (expected {want}) '
                             + ('fds' if a.mode == 'handoff' else
                                f'stats fds of live fleet VMs and {dead} of dead ones'))
                    time.sleep(0.2)
                log(f'  after the churn: the exporter holds {got} '
                    + ('fds, as before it' if a.mode == 'handoff' else
                       'stats fds of the live fleet VMs, none of a dead one'))
                ever = fl.all_pids()
            # Fleet gone: every VM's fds released.
            deadline = time.monotonic() + 15
            while True:
                if a.mode == 'handoff':
                    left = exporter_fds(exp.pid) - base_fds
                else:
                    left = sum(1 for fd, p in exporter_stats_files(exp.pid)
                               if p in ever and not held_by_another(exp.pid, fd))
                if left == 0:
                    break
                if time.monotonic() > deadline:
                    fail(f'{left} fds of the fleet still held by the exporter with the fleet gone')
                time.sleep(0.2)
            log('  fleet gone: the exporter holds none of its fds' + (
                f', back to {base_fds} fds' if a.mode == 'handoff' else ''))


def stats_fd_links(pid):
    """{fd number: link} of a process's KVM stats fds."""
    out, d = {}, f'/proc/{pid}/fd'
    for fd in os.listdir(d):
        try:
            link = os.readlink(f'{d}/{fd}')
        except OSError:
            continue
        if link.startswith('anon_inode:kvm-') and '-stats' in link:
            out[int(fd)] = link
    return out


_libc = ctypes.CDLL(None, use_errno=True)
SYS_PIDFD_GETFD = 438
HEADER = struct.Struct('=6I')  # flags name_size num_desc id_offset desc_offset data_offset


SYS_KCMP, KCMP_FILE = 312, 0  # x86-64


def exporter_stats_files(exporter_pid):
    """(fd, creator pid from the file's id "kvm-<pid>...") of every stats fd the exporter holds."""
    out = []
    pidfd = os.pidfd_open(exporter_pid)
    try:
        for fd in stats_fd_links(exporter_pid):
            copy = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
            if copy < 0:
                continue  # closed meanwhile
            try:
                h = HEADER.unpack(os.pread(copy, HEADER.size, 0))
                file_id = os.pread(copy, h[1], h[3]).split(b'\0')[0].decode()
                out.append((fd, int(file_id[4:].split('/')[0])))
            finally:
                os.close(copy)
    finally:
        os.close(pidfd)
    return out


def held_by_another(exporter_pid, fd):
    """Whether a live process other than the exporter holds the same open file as its fd."""
    for p in os.listdir('/proc'):
        if not p.isdigit() or int(p) == exporter_pid:
            continue
        try:
            fds = stats_fd_links(int(p))
        except OSError:
            continue
        for f in fds:
            if _libc.syscall(SYS_KCMP, exporter_pid, int(p), KCMP_FILE, fd, f) == 0:
                return True
    return False


def fleet_fds_held(exp, fl):
    """(stats fds the exporter holds of live fleet VMMs, of fleet VMMs that are gone)."""
    ever, live = fl.all_pids(), set(fl.read_pids())
    files = [(fd, p) for fd, p in exporter_stats_files(exp.pid) if p in ever]
    # procfs also adopts stats fds that other processes hold (another exporter
    # on this host, say), and so the files of a VM whose VMM is gone for as long
    # as such a holder keeps them: only a file nobody else holds is a dead VM's.
    dead = [(fd, p) for fd, p in files if p not in live and not os.path.exists(f'/proc/{p}')
            and not held_by_another(exp.pid, fd)]
    if dead:
        log(f'  stats fds of gone VMMs held by the exporter alone: {dead}')
    return sum(1 for _, p in files if p in live), len(dead)


def stats_fds_match(exporter_pid, pids):
    """The exporter holds as many VM and vCPU stats fds as the processes pids together."""
    vm = vcpu = 0
    for p in pids:
        a, b = count_stats_fds(p)
        vm, vcpu = vm + a, vcpu + b
    return count_stats_fds(exporter_pid) == (vm, vcpu)


def wait_fleet(exp, fl, vms, mode, timeout=60):
    """Until the exporter lists exactly the fleet's live VMMs (and, by hand-off, nothing else)."""
    deadline = time.monotonic() + timeout
    while True:
        live = set(fl.read_pids())
        text = exp.scrape()
        pids = [int(p) for p in INFO_PID.findall(text)]
        ours = sorted(p for p in pids if p in live)
        if ours == sorted(live) and len(live) == vms and \
                (mode != 'handoff' or len(pids) == vms):
            return text
        if time.monotonic() > deadline:
            fail(f'exporter lists {len(ours)} of the fleet\'s {len(live)} VMMs '
                 f'({len(pids)} VMs in all) after {timeout}s')
        time.sleep(0.1)


# --- load ----------------------------------------------------------------------
WRK_SCRIPT = r'''
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do io.write(string.format("status %d %d\n", status, n)) end
  local e = summary.errors
  io.write(string.format("errors connect %d read %d write %d status %d timeout %d\n",
    e.connect, e.read, e.write, e.status, e.timeout))
end
'''


def load(a, fleet_path):
    wrk = shutil.which('wrk')
    if not wrk:
        skip('wrk is not installed (Debian package wrk)')
    with tempfile.TemporaryDirectory(prefix='robust-') as tmp:
        script = os.path.join(tmp, 'count.lua')
        with open(script, 'w') as f:
            f.write(WRK_SCRIPT)
        exp, sock = handoff_exporter(tmp, a.vms)
        with exp, Fleet(fleet_path, a.vms, a.vcpus, handoff=sock) as fl:
            wait_fleet(exp, fl, a.vms, 'handoff')
            rss = []

            def sample():
                time.sleep(a.seconds / 2)
                rss.append(rss_kib(exp.pid))

            th = threading.Thread(target=sample)
            th.start()
            cmd = [wrk, '-t', '2', '-c', str(a.connections), '-d', f'{a.seconds}s',
                   '--timeout', '10s', '-s', script, '-H', 'Accept-Encoding: gzip',
                   f'http://127.0.0.1:{exp.port}/metrics']
            log('  running: ' + ' '.join(cmd))
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.seconds + 60)
            th.join()
            rss.append(rss_kib(exp.pid))
            sys.stdout.write(r.stdout)
            if r.returncode != 0:
                fail(f'wrk exited with {r.returncode}: {r.stderr}')
            statuses = {int(s): int(n) for s, n in re.findall(r'^status (\d+) (\d+)$',
                                                             r.stdout, re.M)}
            m = re.search(r'^errors connect (\d+) read (\d+) write (\d+) status (\d+) '
                          r'timeout (\d+)$', r.stdout, re.M)
            if not m:
                fail('wrk printed no error summary')
            conn, rd, wr, _, to = (int(x) for x in m.groups())
            if conn or rd or wr or to:
                fail(f'socket errors: connect {conn}, read {rd}, write {wr}, timeout {to}')
            other = {s: n for s, n in statuses.items() if s not in (200, 503)}
            if other or not statuses.get(200):
                fail(f'answers by status: {statuses}')
            # 40 scrapes at once make as many buffers and malloc arenas; once all
            # are made (half way) the RSS must stay put.
            if sanitized():
                log(f'  RSS {rss[0]} -> {rss[-1]} KiB not judged: ASan keeps freed memory')
            elif rss[-1] > rss[0] + 4096:
                fail(f'exporter RSS grew from {rss[0]} KiB to {rss[-1]} KiB under load')
            log(f'  {sum(statuses.values())} answers ({statuses}), no socket error; RSS '
                f'{rss[0]} -> {rss[-1]} KiB')


# --- slow clients --------------------------------------------------------------
def slow(a, fleet_path):
    with tempfile.TemporaryDirectory(prefix='robust-') as tmp:
        sock = os.path.join(tmp, 'handoff.sock')
        port_probe = socket.socket()
        port_probe.bind(('127.0.0.1', 0))
        port = port_probe.getsockname()[1]
        port_probe.close()
        exp = Exporter(['--no-kvm.procfs', f'--kvm.handoff-socket={sock}',
                        f'--web.listen-address=127.0.0.2:{port}'])
        with exp, Fleet(fleet_path, a.vms, a.vcpus, handoff=sock) as fl:
            wait_fleet(exp, fl, a.vms, 'handoff')
            stop = threading.Event()
            held, refused = [], [0]

            def hog():
                # Idle ones say nothing; trickling ones send a request a byte a second.
                while not stop.is_set() and len(held) < a.clients:
                    try:
                        s = socket.create_connection(('127.0.0.1', exp.port), timeout=5)
                        held.append(s)
                    except OSError:
                        refused[0] += 1
                        stop.wait(0.01)
                req = b'GET /metrics HTTP/1.1\r\nHost: x\r\n'
                i = 0
                while not stop.is_set():
                    for k, s in enumerate(held):
                        if k % 2:
                            try:
                                s.send(req[i % len(req):i % len(req) + 1])
                            except OSError:
                                pass
                    i += 1
                    stop.wait(1)

            th = threading.Thread(target=hog)
            th.start()
            worst, n = 0.0, 0
            deadline = time.monotonic() + a.seconds
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    status, body = http_get('127.0.0.2', port, timeout=5)
                except OSError as e:
                    stop.set()
                    th.join()
                    fail(f'scrape from 127.0.0.2 failed with {len(held)} slow clients: {e}')
                t = time.monotonic() - t0
                worst = max(worst, t)
                n += 1
                if status != 200 or t > 1.0:
                    stop.set()
                    th.join()
                    fail(f'scrape from 127.0.0.2 answered {status} in {t:.2f} s with '
                         f'{len(held)} slow clients from 127.0.0.1')
                time.sleep(0.2)
            stop.set()
            th.join()
            for s in held:
                s.close()
            log(f'  {len(held)} connections opened from 127.0.0.1, idle or trickling (the '
                f'exporter keeps at most 64 per address; {refused[0]} connects failed); '
                f'{n} scrapes from 127.0.0.2, all 200, '
                f'slowest {worst * 1e3:.1f} ms')


# --- soak ----------------------------------------------------------------------
def soak(a, fleet_path):
    with tempfile.TemporaryDirectory(prefix='robust-') as tmp:
        exp, sock = handoff_exporter(tmp, a.vms)
        with exp, Fleet(fleet_path, a.vms, a.vcpus, handoff=sock, guest='run') as fl:
            wait_fleet(exp, fl, a.vms, 'handoff')
            t0 = time.monotonic()
            ref = None
            for i in range(a.scrapes):
                accept, gz = FORMS[i % len(FORMS)]
                status, body = http_get('127.0.0.1', exp.port, accept, gz)
                if status != 200 or not body:
                    fail(f'scrape {i} answered {status}')
                if i == a.scrapes // 10:
                    ref = (exporter_fds(exp.pid), rss_kib(exp.pid))
            end = (exporter_fds(exp.pid), rss_kib(exp.pid))
            log(f'  {a.scrapes} scrapes in {time.monotonic() - t0:.1f} s; fds {ref[0]} -> '
                f'{end[0]}, RSS {ref[1]} -> {end[1]} KiB')
            if end[0] != ref[0]:
                fail(f'fd count moved from {ref[0]} to {end[0]}')
            if sanitized():
                log('  RSS not judged: ASan keeps freed memory')
            elif end[1] > ref[1] + 1024:
                fail(f'RSS grew from {ref[1]} KiB to {end[1]} KiB')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kvmfleet')
    ap.add_argument('run', choices=('churn', 'load', 'slow', 'soak'))
    ap.add_argument('--mode', default='procfs', choices=('procfs', 'handoff'))
    ap.add_argument('--vms', type=int, default=4)
    ap.add_argument('--vcpus', type=int, default=2)
    ap.add_argument('--churn', type=int, default=40)
    ap.add_argument('--seconds', type=int, default=5)
    ap.add_argument('--connections', type=int, default=50)
    ap.add_argument('--clients', type=int, default=200)
    ap.add_argument('--scrapes', type=int, default=2000)
    a = ap.parse_args()
    require_kvm()
    {'churn': churn, 'load': load, 'slow': slow, 'soak': soak}[a.run](a, a.kvmfleet)
    log('PASS')


if __name__ == '__main__':
    main()
