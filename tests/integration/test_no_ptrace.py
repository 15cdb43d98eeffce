#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Without CAP_SYS_PTRACE the exporter says so once and keeps serving.

The exporter runs as root but with CAP_SYS_PTRACE removed from every
capability set (setpriv), next to real VMs it therefore cannot take fds from.
It must not fail: the canary (its own VM) is served, the VMs of other
processes are absent, the scan reports failure, and the log says why once.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402


def main():
    kc.require_kvm()
    if os.geteuid() != 0:
        kc.skip('needs root to drop CAP_SYS_PTRACE from a full capability set')
    setpriv = shutil.which('setpriv')
    if not setpriv:
        kc.skip('setpriv (util-linux) is not installed')
    fixture_bin = kc.fixture_path(sys.argv)
    with kc.Fixture(fixture_bin, vms=1, vcpus=1, hlt=3) as fx:
        cmd = [setpriv, '--inh-caps=-sys_ptrace', '--bounding-set=-sys_ptrace',
               kc.exporter_path(), '--once', '--kvm.canary', '--kvm.rescan-interval=1h']
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            kc.fail(f'exit {r.returncode} without CAP_SYS_PTRACE: {r.stderr}')
        warnings = [line for line in r.stderr.splitlines() if 'CAP_SYS_PTRACE' in line]
        if len(warnings) != 1:
            kc.fail(f'expected one log line naming CAP_SYS_PTRACE, got {len(warnings)}:\n'
                    + r.stderr)
        for pid in fx.pids:
            if f'vm="pid-{pid}"' in r.stdout:
                kc.fail(f'VM of pid {pid} exported although its fds cannot be taken')
        if 'kvm_vcpu_exits_total{vm="canary"}' not in r.stdout:
            kc.fail('canary series missing: the exporter stopped serving its own VM')
        for line, want in (('kvmstats_exporter_procfs_scan_success', '0'),
                           ('kvmstats_exporter_canary_up', '1')):
            got = [ln.split()[-1] for ln in r.stdout.splitlines() if ln.startswith(line + ' ')]
            if got != [want]:
                kc.fail(f'{line} = {got}, expected {want}')
    print('PASS: one CAP_SYS_PTRACE warning, canary served, scan reported unsuccessful')


if __name__ == '__main__':
    main()
