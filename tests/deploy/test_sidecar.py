#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The sidecar pattern end to end: the exporter in its container (built with
deploy/container/build, run read-only as nobody with no capability and no
procfs discovery), the hand-off socket in a volume shared with the host, and
real KVM VMs outside the container (tests/kvm/kvmtest_vmm) handing their stats
fds across.

usage: test_sidecar.py KVMTEST_VMM

1. Every value of every fixture VM on the container's /metrics is exact (the
   independent translation in tests/integration/kvm_common.py), aggregated
   per VM; kvm_vm_info names the hand-off source, the VM's KVM id and the
   hand-off labels; the container's process holds exactly the VMs' stats fds.
2. When the VMs exit, their series leave /metrics and the container's
   process holds no stats fd: a VM's kernel state is not kept alive across the
   container boundary.
"""
import os
import sys
import tempfile
import time

import container_common as cc
import deploy_common as dc

kc = dc.kc
VMS, VCPUS, HLT = 2, 3, 12
NAME = 'side'
LABELS = {'pod': 'vmm-1'}


def expected(dumps):
    samples, families = {}, {kc.INFO_FAMILY: 'gauge'}
    for d in dumps:
        vm = [f for f in d['files'] if f.kind == 'vm']
        vcpus = sorted((f for f in d['files'] if f.kind == 'vcpu'), key=lambda f: f.vcpu)
        s, f = kc.expected_vm(f'{NAME}-{d["index"]}', vm[0], vcpus, per_vcpu=False)
        samples.update(s)
        families.update(f)
    return samples, families


def check_info(expo, dumps):
    problems = []
    infos = {dict(k[1]).get('vm'): (dict(k[1]), v[0]) for k, v in expo.samples.items()
             if k[0] == kc.INFO_FAMILY}
    for d in dumps:
        vm = f'{NAME}-{d["index"]}'
        if vm not in infos:
            problems.append(f'no kvm_vm_info for {vm}')
            continue
        labels, value = infos[vm]
        want = {'source': 'handoff', 'kvm_id': f'kvm-{d["pid"]}', **LABELS}
        got = {k: labels.get(k) for k in want}
        if got != want or value != 1:
            problems.append(f'kvm_vm_info{{vm="{vm}"}}: {labels} {value}, expected {want} 1')
    return problems


def self_metric(expo, name, **labels):
    v = expo.samples.get((name, tuple(sorted(labels.items()))))
    return None if v is None else v[0]


def main():
    kc.require_kvm()
    fixture = kc.fixture_path(sys.argv)
    env = dc.podman_env()
    problems = []
    with cc.Image(env) as image, tempfile.TemporaryDirectory(prefix='kvmstats-sidecar-') as vol:
        if os.geteuid() == 0:
            os.chown(vol, 65534, 65534)
        sock = os.path.join(vol, 'handoff.sock')
        with cc.Container(image, ['--no-kvm.procfs'],
                          run_opts=['-v', f'{vol}:/run/kvmstats_exporter']) as ct:
            if not os.path.exists(sock):
                dc.fail(f'the container made no hand-off socket in the volume: {ct.logs()}')
            args = ['--handoff', sock, '--name', NAME]
            for k, v in LABELS.items():
                args += ['--label', f'{k}={v}']
            with kc.Fixture(fixture, VMS, VCPUS, HLT, irqchip=True, extra=args) as fx:
                status, text = ct.get('/metrics')
                expo = kc.Exposition(text)
                samples, families = expected(fx.dumps)
                vms = {f'{NAME}-{d["index"]}' for d in fx.dumps}
                p = kc.compare(expo, samples, families, vms)
                p += check_info(expo, fx.dumps)
                n = self_metric(expo, 'kvmstats_exporter_vms', source='handoff')
                if n != VMS:
                    p.append(f'kvmstats_exporter_vms{{source="handoff"}} = {n}, expected {VMS}')
                held = kc.count_stats_fds(ct.pid)
                if held != (VMS, VMS * VCPUS):
                    p.append(f'the container holds {held} stats fds (vm, vcpu), '
                             f'expected {(VMS, VMS * VCPUS)}')
                kc.log(f'  {len(samples)} expected samples of {VMS} VMs x {VCPUS} vCPUs; '
                       f'container holds {held} stats fds')
                if not kc.report(p, 'exact values on the container\'s /metrics'):
                    problems.append('exact values')
            # The fixture's VMs are gone: their connections closed.
            deadline = time.monotonic() + 10
            while True:
                expo = kc.Exposition(ct.get('/metrics')[1])
                left = [k for k in expo.samples if k[0].startswith('kvm_')]
                held = kc.count_stats_fds(ct.pid)
                if (not left and held == (0, 0)) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if left or held != (0, 0):
                problems.append(f'after the VMs exited: {len(left)} kvm_ series, '
                                f'{held} stats fds still held by the container')
            else:
                kc.log('  ok: VMs gone, no series and no stats fd left in the container')
    if problems:
        dc.fail('sidecar: ' + '; '.join(problems))


if __name__ == '__main__':
    main()
