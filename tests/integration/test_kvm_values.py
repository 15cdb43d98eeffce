#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Real KVM VMs (kvmtest_vmm) -> exporter -> exact comparison with the VMs' own dumps.

usage: test_kvm_values.py KVMTEST_VMM [--irqchip]

3 VMs x 4 vCPUs, vCPU i halts 50+i times. Once the vCPUs have stopped every
value is frozen, so each exported sample must equal the value computed
independently from the fixture's dump, exactly, in aggregate and per-vCPU
mode, through --once and through HTTP. --irqchip makes the halts block in the
kernel so that the halt-polling and halt-wait histograms are non-zero.
"""

import sys
import time

from lib import kvm_common as kc

VMS, VCPUS, HLT = 3, 4, 50


def stat_values(dumps):
    """{(pid, file id, stat): values}: what must not change while the VMs are stopped."""
    return {(d['pid'], f.id, s.name): s.values for d in dumps for f in d['files'] for s in f.stats}


def check_halt_exits(dumps):
    """The fixture's own reading: vCPU i made exactly HLT+i halt exits."""
    problems = []
    for d in dumps:
        for f in d['files']:
            if f.kind != 'vcpu':
                continue
            got = [s.values[0] for s in f.stats if s.name == 'halt_exits']
            if got != [HLT + f.vcpu]:
                problems.append(f'{f.id}: halt_exits {got}, guest executed {HLT + f.vcpu} hlt')
    return problems


def check_exported_halt_exits(expo, dumps, per_vcpu):
    """halt_exits as exported, against the guest code (not only against the dump)."""
    problems = []
    for d in dumps:
        vm = kc.ASSUMED_VM_LABEL.format(pid=d['pid'])
        if per_vcpu:
            want = {(('vcpu', str(i)), ('vm', vm)): HLT + i for i in range(VCPUS)}
        else:
            want = {(('vm', vm),): VCPUS * HLT + VCPUS * (VCPUS - 1) // 2}
        for labels, n in want.items():
            got = expo.samples.get(('kvm_vcpu_halt_exits_total', labels))
            if got is None or got[0] != n:
                problems.append(f'kvm_vcpu_halt_exits_total{dict(labels)}: '
                                f'{got[1] if got else "missing"}, expected {n}')
    return problems


def check(text, dumps, per_vcpu, our_vms, exporter_pid, what):
    expo = kc.Exposition(text)
    expected, families = kc.expected_from_dumps(dumps, per_vcpu)
    problems = kc.compare(expo, expected, families, our_vms, exporter_pid)
    problems += kc.check_info(expo, dumps)
    problems += check_exported_halt_exits(expo, dumps, per_vcpu)
    return kc.report(problems, what), expo


def main():
    kc.require_kvm()
    fixture = kc.fixture_path(sys.argv)
    irqchip = '--irqchip' in sys.argv[2:]
    ok = True
    with kc.Fixture(fixture, VMS, VCPUS, HLT, irqchip=irqchip) as fx:
        before = fx.dumps
        ok &= kc.report(check_halt_exits(before), 'fixture halt_exits == H+i per vCPU')
        our_vms = fx.vm_labels()

        for per_vcpu in (False, True):
            mode = 'per-vCPU' if per_vcpu else 'aggregate'
            args = ['--kvm.per-vcpu'] if per_vcpu else []

            kc.log(f'{mode}, --once:')
            r = kc.run_once(args)
            if r.returncode != 0:
                kc.fail(f'--once {args} exited {r.returncode}: {r.stderr[-2000:]}')
            good, _ = check(r.stdout, before, per_vcpu, our_vms, None, f'{mode} --once')
            ok &= good

            kc.log(f'{mode}, HTTP:')
            with kc.Exporter(args) as ex:
                # Discovery may run in the background: wait until all our VMs show up.
                deadline = time.monotonic() + 15
                while True:
                    text = ex.scrape()
                    seen = {dict(k[1]).get('vm') for k in kc.Exposition(text).samples}
                    if our_vms <= seen or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                good, _ = check(text, before, per_vcpu, our_vms, ex.pid, f'{mode} HTTP')
                ok &= good
                # Frozen values and stable formatting: a second scrape is identical for our VMs.
                again = ex.scrape()
                mine = lambda t: sorted(l for l in t.splitlines() if any(
                    f'vm="{v}"' in l for v in our_vms))
                ok &= kc.report([] if mine(text) == mine(again) else
                                ['second scrape differs for the fixture VMs'],
                                f'{mode} HTTP second scrape identical')

        after = fx.refresh()
        a, b = stat_values(before), stat_values(after)
        diff = [f'{k}: {a.get(k)} -> {b.get(k)}' for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)]
        ok &= kc.report(diff[:10], f'fixture values frozen ({len(a)} stats compared)')
    if not ok:
        sys.exit(1)
    kc.log('PASS')


if __name__ == '__main__':
    main()
