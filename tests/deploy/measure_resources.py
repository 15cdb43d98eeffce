#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What the exporter costs a hypervisor node, for the DaemonSet's resource
requests and limits (deploy/kubernetes/daemonset/daemonset.yaml).

usage: measure_resources.py KVMTEST_VMM [VMS [VCPUS [SECONDS]]]

Prints the exporter's resident memory (VmRSS and peak VmHWM) idle and with
VMS fixture VMs of VCPUS vCPUs handed off, and the CPU it uses while scraped
once a second and once every 15 seconds for SECONDS each, in millicores
(CPU seconds per wall second x 1000). Figures, not a pass/fail test: run with
`meson test -C build --benchmark daemonset_resources`.
"""
import contextlib
import os
import sys
import tempfile
import time

import deploy_common as dc

kc = dc.kc


def status(pid, key):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])  # kB
    return 0


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def run(ex, interval, seconds):
    """Scrapes every INTERVAL for SECONDS; returns (millicores, samples per scrape)."""
    c0, t0 = cpu_seconds(ex.pid), time.monotonic()
    n = samples = 0
    while time.monotonic() - t0 < seconds:
        text = ex.scrape()
        samples = sum(1 for l in text.splitlines() if l and not l.startswith('#'))
        n += 1
        time.sleep(max(0.0, t0 + n * interval - time.monotonic()))
    wall = time.monotonic() - t0
    return 1000 * (cpu_seconds(ex.pid) - c0) / wall, samples


def main():
    kc.require_kvm()
    fixture = kc.fixture_path(sys.argv)
    vms = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    vcpus = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 30
    with tempfile.TemporaryDirectory(prefix='kvmstats-measure-') as tmp:
        sock = os.path.join(tmp, 'handoff.sock')
        with kc.Exporter(['--no-kvm.procfs', f'--kvm.handoff-socket={sock}',
                          f'--kvm.handoff-max-connections={max(256, vms)}']) as ex:
            time.sleep(1)
            idle_rss = status(ex.pid, 'VmRSS')
            idle_mc, _ = run(ex, 15, min(seconds, 30))
            with contextlib.ExitStack() as fixtures:
                # kvmtest_vmm runs up to 64 VMs: several of them for more.
                for i, start in enumerate(range(0, vms, 64)):
                    fixtures.enter_context(kc.Fixture(
                        fixture, min(64, vms - start), vcpus, 1, timeout=300,
                        extra=['--handoff', sock, '--name', f'm{i}']))
                fds = sum(kc.count_stats_fds(ex.pid))
                fast_mc, samples = run(ex, 1, seconds)
                slow_mc, _ = run(ex, 15, seconds)
                rss, hwm = status(ex.pid, 'VmRSS'), status(ex.pid, 'VmHWM')
    print(f'idle (no VMs): VmRSS {idle_rss} kB, CPU {idle_mc:.2f} millicores scraped every 15 s')
    print(f'{vms} VMs x {vcpus} vCPUs: {fds} stats fds, {samples} samples per scrape')
    print(f'  VmRSS {rss} kB, VmHWM {hwm} kB')
    print(f'  CPU scraped every 1 s: {fast_mc:.1f} millicores; every 15 s: {slow_mc:.2f} millicores')


if __name__ == '__main__':
    main()
