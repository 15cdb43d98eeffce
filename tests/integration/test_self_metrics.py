#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Self-metrics: per-source read metrics always; the rest only without
--web.disable-exporter-metrics. Needs no /dev/kvm (saved stats files)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402

DATA = os.path.join(os.environ.get('TESTS_SOURCE_DIR', ''), 'data')
BASE = ['--no-kvm.procfs', '--kvm.handoff-socket=',
        f'--kvm.stats-file={DATA}/x86_64-6.18-vm.bin',
        f'--kvm.stats-file={DATA}/x86_64-6.18-vcpu.bin']
ALWAYS = ['kvmstats_exporter_collector_duration_seconds{collector="file"}',
          'kvmstats_exporter_collector_success{collector="file"} 1']
OPTIONAL = ['kvmstats_exporter_build_info{', 'kvmstats_exporter_stats_fds 2',
            'kvmstats_exporter_vms{source="file"} 1']


def run(extra):
    r = kc.run_once(BASE + extra)
    if r.returncode != 0:
        kc.fail(f'--once {extra} exited {r.returncode}: {r.stderr}')
    return r.stdout


def main():
    full = run([])
    for s in ALWAYS + OPTIONAL:
        if s not in full:
            kc.fail(f'missing {s!r} in the default output')
    lean = run(['--web.disable-exporter-metrics'])
    for s in ALWAYS:
        if s not in lean:
            kc.fail(f'missing {s!r} with --web.disable-exporter-metrics')
    for s in OPTIONAL:
        if s in lean:
            kc.fail(f'{s!r} present with --web.disable-exporter-metrics')
    if 'kvm_vcpu_halt_exits_total{vm="pid-5702"} 50' not in lean:
        kc.fail('KVM series must not be affected by --web.disable-exporter-metrics')
    print('PASS')


if __name__ == '__main__':
    main()
