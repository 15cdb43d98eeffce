#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The series counts docs/metrics.md documents ("Series budget"), with
--kvm.stats-include/--kvm.stats-exclude, on the saved stats files (no
/dev/kvm needed), and the filters' one-line refusal of a bad pattern."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402

DATA = os.path.join(os.environ.get('TESTS_SOURCE_DIR', ''), 'data')
BASE = ['--no-kvm.procfs', '--kvm.handoff-socket=', '--web.disable-exporter-metrics',
        f'--kvm.stats-file={DATA}/x86_64-6.18-vm.bin',
        f'--kvm.stats-file={DATA}/x86_64-6.18-vcpu.bin']
LEAN = '--kvm.stats-exclude=kvm_vcpu_halt_(poll_success|poll_fail|wait)_seconds'
INCLUDE = ('--kvm.stats-include=kvm_vcpu_(exits|halt_exits|io_exits|mmio_exits|'
           'halt_successful_poll|halt_attempted_poll)_total|kvm_vm_pages_.*')


def kvm_samples(extra):
    r = kc.run_once(BASE + extra)
    if r.returncode != 0:
        kc.fail(f'--once {extra} exited {r.returncode}: {r.stderr}')
    return [line for line in r.stdout.splitlines() if line.startswith('kvm_')]


def main():
    problems = []
    # One VM with one vCPU: per VM = 16 + per vCPU.
    for extra, want in (([], 157), (['--kvm.per-vcpu'], 16 + 141), ([LEAN], 58),
                        ([LEAN, '--kvm.per-vcpu'], 16 + 42), ([INCLUDE], 10)):
        got = kvm_samples(extra)
        kc.log(f'  {" ".join(extra) or "default"}: {len(got)} kvm_ samples')
        if len(got) != want:
            problems.append(f'{extra}: {len(got)} kvm_ samples, docs/metrics.md says {want}')
    lean = kvm_samples([LEAN])
    if any('_bucket' in s for s in lean):
        problems.append('lean configuration still has histogram buckets')
    if 'kvm_vcpu_halt_wait_seconds_total{vm="pid-5702"} 0.000128351' not in lean:
        problems.append('lean configuration lost the exact halt wait sum')
    r = kc.run_once(BASE + ['--kvm.stats-exclude=kvm_(vcpu'])
    lines = r.stderr.strip().splitlines()
    if r.returncode == 0 or len(lines) != 1 or '--kvm.stats-exclude' not in lines[0]:
        problems.append(f'a bad pattern: exit {r.returncode}, stderr {r.stderr!r}')
    kc.finish(problems, 'series budget')


if __name__ == '__main__':
    main()
