#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A VMM that dies must vanish from /metrics, and the exporter must close its stats fds.

usage: test_kvm_release.py KVMTEST_VMM

An open stats fd keeps the dead VM's kernel state alive, so a leak here costs
the host memory. Counts the exporter's stats fds that are the fixture's files
around a SIGKILL of one VM process, and checks that a VM started later appears
within about one rescan interval. Other VMMs on the host start and stop at any
time, so their files are not counted: each fd the exporter holds is copied
with pidfd_getfd(2) and known by the id in its header (the fixture dumps name
every file's id), which also tells the files of a dead VM.
"""

import ctypes
import os
import sys
import time

from lib import kvm_common as kc

VCPUS = 2
RESCAN = 0.2           # --kvm.rescan-interval
APPEAR_LIMIT = 1.0     # seconds; "about one rescan interval" plus scheduling slack
RELEASE_LIMIT = 0.5   # seconds from the scrape that no longer shows a dead VM to its fds closed


def vms_in(text):
    return {dict(k[1]).get('vm') for k in kc.Exposition(text).samples if k[0].startswith('kvm_')}


SYS_PIDFD_GETFD = 438  # the same number on every architecture
_libc = ctypes.CDLL(None, use_errno=True)


def stats_file_id(pidfd, fd):
    """The id in the header of stats fd `fd` of the process behind pidfd; None if gone."""
    copy = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    if copy < 0:
        return None  # closed since it was listed
    try:
        _, name_size, _, id_off, _, _ = kc.HEADER.unpack(os.pread(copy, kc.HEADER.size, 0))
        return os.pread(copy, name_size, id_off).split(b'\0', 1)[0].decode()
    finally:
        os.close(copy)


def held_ids(pid):
    """[(id, kind)] of every stats fd the process holds."""
    out = []
    pidfd = os.pidfd_open(pid)
    try:
        for fd in os.listdir(f'/proc/{pid}/fd'):
            try:
                link = os.readlink(f'/proc/{pid}/fd/{fd}')
            except OSError:
                continue
            kind = ('vm' if link == 'anon_inode:kvm-vm-stats' else
                    'vcpu' if link.startswith('anon_inode:kvm-vcpu-stats:') else None)
            fid = stats_file_id(pidfd, int(fd)) if kind else None
            if fid is not None:
                out.append((fid, kind))
    finally:
        os.close(pidfd)
    return out


class Ours:
    """The stats files of every fixture VM of this test, alive or killed, by id."""

    def __init__(self):
        self.ids = set()
        self.live = {}  # pid -> (vm files, vcpu files)

    def add(self, fx):
        for d in fx.dumps:
            self.ids |= {f.id for f in d['files']}
            self.live[d['pid']] = (sum(f.kind == 'vm' for f in d['files']),
                                   sum(f.kind == 'vcpu' for f in d['files']))

    def gone(self, pid):
        self.live.pop(pid, None)

    def want(self):
        return tuple(sum(v[i] for v in self.live.values()) for i in (0, 1))

    def held(self, exporter_pid):
        ids = [(fid, kind) for fid, kind in held_ids(exporter_pid) if fid in self.ids]
        return (sum(k == 'vm' for _, k in ids), sum(k == 'vcpu' for _, k in ids))


OURS = Ours()


def check_fds(ex, what, wait=0.0):
    """Compares now; on a mismatch keeps looking for `wait` seconds to tell slow from leaked."""
    want, got = OURS.want(), OURS.held(ex.pid)
    kc.log(f'  exporter stats fds of the fixture {what}: vm={got[0]} vcpu={got[1]} '
           f'(expected {want[0]}/{want[1]})')
    if got == want:
        return []
    t0 = time.monotonic()
    while time.monotonic() - t0 < wait:
        time.sleep(0.01)
        if OURS.held(ex.pid) == want:
            late = time.monotonic() - t0
            # The scrape hides a dead VM at once; its fds are closed by the main
            # loop when the pidfd wakes it, which may come a moment after the scrape.
            if late <= RELEASE_LIMIT:
                kc.log(f'  released {late:.3f}s after the scrape (limit {RELEASE_LIMIT}s)')
                return []
            return [f'{what}: exporter held {got} of the fixture\'s stats fds (vm, vcpu) '
                    f'instead of {want}; released {late:.2f}s later, limit {RELEASE_LIMIT}s']
    return [f'{what}: exporter holds {OURS.held(ex.pid)} of the fixture\'s stats fds '
            f'(vm, vcpu), expected {want}']


def wait_listed(ex, labels, timeout):
    t0 = time.monotonic()
    while True:
        text = ex.scrape()
        if labels <= vms_in(text):
            return time.monotonic() - t0, text
        if time.monotonic() - t0 > timeout:
            return None, text
        time.sleep(0.02)


def main():
    kc.require_kvm()
    fixture = kc.fixture_path(sys.argv)
    problems = []
    with kc.Fixture(fixture, 2, VCPUS, 5) as fx, \
            kc.Exporter([f'--kvm.rescan-interval={int(RESCAN * 1000)}ms']) as ex:
        for pid in fx.pids:
            mine = kc.count_stats_fds(pid)
            if mine != (1, VCPUS):
                kc.fail(f'fixture VM {pid} holds {mine} stats fds, expected (1, {VCPUS})')
        OURS.add(fx)
        t, _ = wait_listed(ex, fx.vm_labels(), 10)
        if t is None:
            kc.fail(f'fixture VMs {sorted(fx.vm_labels())} never appeared: {ex.log_text()}')
        problems += check_fds(ex, 'with 2 VMs (2*(1+vcpus) of ours)')

        victim = fx.pids[0]
        label = kc.ASSUMED_VM_LABEL.format(pid=victim)
        kc.log(f'  SIGKILL VM process {victim}')
        fx.kill_vm(victim)
        OURS.gone(victim)
        text = ex.scrape()
        gone = [kc.fmt_key(k) for k in kc.Exposition(text).samples
                if dict(k[1]).get('vm') == label]
        if gone:
            problems.append(f'{len(gone)} series of the killed VM still exported by the next '
                            f'scrape, e.g. {gone[0]}')
        if fx.vm_labels() - vms_in(text):
            problems.append(f'surviving VM missing after the kill: {sorted(fx.vm_labels())}')
        problems += check_fds(ex, 'after the kill (1+vcpus of ours)', wait=3)

        with kc.Fixture(fixture, 1, 1, 3) as fx2:
            OURS.add(fx2)
            t, _ = wait_listed(ex, fx2.vm_labels(), 10)
            kc.log(f'  new VM appeared after {t if t is None else round(t, 3)}s '
                   f'(rescan interval {RESCAN}s, limit {APPEAR_LIMIT}s)')
            if t is None or t > APPEAR_LIMIT:
                problems.append(f'new VM appeared after {t}s, limit {APPEAR_LIMIT}s')
            problems += check_fds(ex, 'with the new VM')
        for pid in fx2.pids:
            OURS.gone(pid)
        fx.close()
        for pid in fx.pids:
            OURS.gone(pid)
        # Everything of ours is gone now; give the exporter one scrape to notice.
        ex.scrape()
        problems += check_fds(ex, 'after all fixture VMs exited', wait=3)
    if not kc.report(problems, 'VM release and discovery'):
        sys.exit(1)
    kc.log('PASS')


if __name__ == '__main__':
    main()
