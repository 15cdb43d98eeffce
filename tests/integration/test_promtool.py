#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`promtool check metrics` (Prometheus's own linter) on the exposition of real VMs.

usage: test_promtool.py KVMTEST_VMM

Any finding fails: promtool is what Prometheus users run on an exporter.
"""

import shutil
import subprocess
import sys

from lib import kvm_common as kc


def main():
    kc.require_kvm()
    fixture = kc.fixture_path(sys.argv)
    promtool = shutil.which('promtool')
    if not promtool:
        kc.skip('promtool not found (Debian package "prometheus")')
    ok = True
    # --irqchip: the histograms have real, non-zero buckets.
    with kc.Fixture(fixture, 2, 2, 10, irqchip=True):
        for args in ([], ['--kvm.per-vcpu']):
            r = kc.run_once(args)
            if r.returncode != 0:
                kc.fail(f'--once {args} exited {r.returncode}: {r.stderr[-2000:]}')
            p = subprocess.run([promtool, 'check', 'metrics'], input=r.stdout,
                               capture_output=True, text=True, timeout=60)
            findings = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
            n = sum(1 for l in r.stdout.splitlines() if l and not l.startswith('#'))
            kc.log(f'  --once {" ".join(args)}: {n} samples, promtool exit {p.returncode}, '
                   f'{len(findings)} findings')
            if p.returncode != 0 and not findings:
                findings = [f'promtool exited {p.returncode}']
            ok &= kc.report(findings[:20], f'promtool check metrics, --once {" ".join(args)}')
    if not ok:
        sys.exit(1)
    kc.log('PASS')


if __name__ == '__main__':
    main()
