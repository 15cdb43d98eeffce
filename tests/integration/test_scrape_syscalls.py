#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A scrape makes no ioctl and exactly one pread per held stats fd.

strace follows every thread of a running exporter while it serves a few
scrapes of real VMs, then the trace is counted. The VMs reach the exporter by
hand-off with procfs discovery off, so that other VMs on the host (other
tests, other users) can neither add fds nor start a rescan in the window.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402

SCRAPES = 3


def main():
    kc.require_kvm()
    if not shutil.which('strace'):
        kc.skip('strace is not installed (Debian package strace)')
    fixture_bin = kc.fixture_path(sys.argv)
    with tempfile.TemporaryDirectory() as sockdir:
        sock = os.path.join(sockdir, 'handoff.sock')
        with kc.Exporter(['--no-kvm.procfs', f'--kvm.handoff-socket={sock}']) as ex, \
                kc.Fixture(fixture_bin, vms=2, vcpus=3, hlt=5,
                           extra=['--handoff', sock, '--name', 'sys']):
            trace_scrapes(ex)


def trace_scrapes(ex):
    """Counts ioctl and pread64 calls of every exporter thread over SCRAPES scrapes."""
    fds = sum(kc.count_stats_fds(ex.pid))
    if fds != 2 * (1 + 3):
        kc.fail(f'exporter holds {fds} stats fds, expected {2 * (1 + 3)}')
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'trace')
        st = subprocess.Popen(['strace', '-f', '-qq', '-e', 'trace=ioctl,pread64',
                               '-o', out, '-p', str(ex.pid)],
                              stderr=subprocess.PIPE)
        time.sleep(1.0)  # let strace attach to every thread
        for _ in range(SCRAPES):
            ex.scrape()
        time.sleep(0.2)
        st.terminate()
        st.wait(10)
        with open(out) as f:
            trace = f.read().splitlines()
    ioctls = [line for line in trace if 'ioctl(' in line]
    preads = [line for line in trace if 'pread64(' in line]
    kc.log(f'  {SCRAPES} scrapes of {fds} fds: {len(preads)} pread64, {len(ioctls)} ioctl')
    if ioctls:
        kc.fail('scrapes made ioctl calls:\n' + '\n'.join(ioctls[:5]))
    if len(preads) != SCRAPES * fds:
        kc.fail(f'expected {SCRAPES * fds} pread64 calls, saw {len(preads)}:\n'
                + '\n'.join(preads[:10]))
    print('PASS: no ioctl at scrape time; one pread per stats fd per scrape')


if __name__ == '__main__':
    main()
