#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A VMM that dies must vanish from /metrics, and the exporter must close its stats fds.

usage: test_kvm_release.py KVMTEST_VMM

An open stats fd keeps the dead VM's kernel state alive, so a leak here costs
the host memory. Counts the exporter's fds by their /proc links
(anon_inode:kvm-vm-stats, anon_inode:kvm-vcpu-stats:N) around a SIGKILL of one
VM process, and checks that a VM started later appears within about one
rescan interval.
"""

import sys
import time

import kvm_common as kc

VCPUS = 2
RESCAN = 0.2           # --kvm.rescan-interval
APPEAR_LIMIT = 1.0     # seconds; "about one rescan interval" plus scheduling slack


def vms_in(text):
    return {dict(k[1]).get('vm') for k in kc.Exposition(text).samples if k[0].startswith('kvm_')}


def expected_fds(exporter_pid):
    """One dup per stats fd open anywhere else (ours plus any other VMM on the host)."""
    return kc.stats_fds_elsewhere({exporter_pid})


def check_fds(ex, what, wait=0.0):
    """Compares now; on a mismatch keeps looking for `wait` seconds to tell slow from leaked."""
    want, got = expected_fds(ex.pid), kc.count_stats_fds(ex.pid)
    kc.log(f'  exporter stats fds {what}: vm={got[0]} vcpu={got[1]} (expected {want[0]}/{want[1]})')
    if got == want:
        return []
    t0 = time.monotonic()
    while time.monotonic() - t0 < wait:
        time.sleep(0.05)
        if kc.count_stats_fds(ex.pid) == expected_fds(ex.pid):
            return [f'{what}: exporter held {got} stats fds (vm, vcpu) instead of {want}; '
                    f'released {time.monotonic() - t0:.2f}s later, not by the scrape']
    return [f'{what}: exporter holds {kc.count_stats_fds(ex.pid)} stats fds (vm, vcpu), '
            f'expected {expected_fds(ex.pid)}']


def wait_for(ex, labels, timeout):
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
        t, _ = wait_for(ex, fx.vm_labels(), 10)
        if t is None:
            kc.fail(f'fixture VMs {sorted(fx.vm_labels())} never appeared: {ex.log_text()}')
        problems += check_fds(ex, 'with 2 VMs (2*(1+vcpus) of ours)')

        victim = fx.pids[0]
        label = kc.ASSUMED_VM_LABEL.format(pid=victim)
        kc.log(f'  SIGKILL VM process {victim}')
        fx.kill_vm(victim)
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
            t, _ = wait_for(ex, fx2.vm_labels(), 10)
            kc.log(f'  new VM appeared after {t if t is None else round(t, 3)}s '
                   f'(rescan interval {RESCAN}s, limit {APPEAR_LIMIT}s)')
            if t is None or t > APPEAR_LIMIT:
                problems.append(f'new VM appeared after {t}s, limit {APPEAR_LIMIT}s')
            problems += check_fds(ex, 'with the new VM')
        fx.close()
        # Everything of ours is gone now; give the exporter one scrape to notice.
        ex.scrape()
        problems += check_fds(ex, 'after all fixture VMs exited', wait=3)
    if not kc.report(problems, 'VM release and discovery'):
        sys.exit(1)
    kc.log('PASS')


if __name__ == '__main__':
    main()
