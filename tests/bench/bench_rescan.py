#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What one procfs rescan costs the exporter on a busy host, side by side in one run.

  bench_rescan.py KVMFLEET [--vms 10] [--vcpus 8] [--idle 2000] [--idle-files 16]
                  [--seconds 10] [--interval 100ms]

Two phases, each with its own fleet and exporter (procfs only, rescanning
every --interval): the fleet's VMs alone, then the same VMs beside --idle
ordinary processes holding --idle-files open files each. In each phase the
exporter is left alone for --seconds (no scrape but one at each end), and its
CPU time (/proc/PID/stat) is divided by the scans it made
(kvmstats_exporter_procfs_scans_total); the last scan's wall time
(kvmstats_exporter_procfs_scan_duration_seconds) is printed too.

EXPORTER from the environment. Exit 77 without /dev/kvm.
"""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
from lib.kvm_common import Exporter, fail, log, require_kvm  # noqa: E402
from lib.fleet import Fleet, exporter_vms  # noqa: E402

TICK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def metric(text, name):
    m = re.search(rf'^{name} (\S+)$', text, re.M)
    if not m:
        fail(f'{name} missing from the exposition')
    return float(m.group(1))


def processes():
    return sum(1 for p in os.listdir('/proc') if p.isdigit())


def phase(a, idle):
    with Fleet(a.kvmfleet, a.vms, a.vcpus, idle=idle, idle_files=a.idle_files) as fl:
        with Exporter(['--kvm.handoff-socket=', f'--kvm.rescan-interval={a.interval}']) as exp:
            deadline = time.monotonic() + 120
            while exporter_vms(exp.scrape()).get('procfs', 0) < a.vms:
                if time.monotonic() > deadline:
                    fail(f'exporter found fewer than {a.vms} VMs')
                time.sleep(0.2)
            text = exp.scrape()
            s0, c0 = metric(text, 'kvmstats_exporter_procfs_scans_total'), cpu_seconds(exp.pid)
            time.sleep(a.seconds)
            c1, text = cpu_seconds(exp.pid), exp.scrape()
            scans = metric(text, 'kvmstats_exporter_procfs_scans_total') - s0
            if scans < 1:
                fail('no rescan happened')
            last = metric(text, 'kvmstats_exporter_procfs_scan_duration_seconds')
            n = processes()
            print(f'{n} processes ({idle} idle with {a.idle_files} files each), {a.vms} VMs: '
                  f'{scans:.0f} scans, cpu {(c1 - c0) * 1e3 / scans:.2f} ms per scan, '
                  f'last scan {last * 1e3:.2f} ms wall', flush=True)
            return (c1 - c0) / scans


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kvmfleet')
    ap.add_argument('--vms', type=int, default=10)
    ap.add_argument('--vcpus', type=int, default=8)
    ap.add_argument('--idle', type=int, default=2000)
    ap.add_argument('--idle-files', type=int, default=16)
    ap.add_argument('--seconds', type=float, default=10)
    ap.add_argument('--interval', default='100ms')
    a = ap.parse_args()
    require_kvm()
    base = phase(a, 0)
    busy = phase(a, a.idle)
    print(f'rescan cpu with {a.idle} idle processes = {busy * 1e3:.2f} ms '
          f'({busy / base if base > 0 else float("inf"):.1f}x the fleet alone)')


if __name__ == '__main__':
    main()
