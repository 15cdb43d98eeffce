#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The exporter's container next to real KVM VMs (tests/kvm/kvmtest_vmm)
running outside it, as the sidecar and as the DaemonSet run it. The image is
built with deploy/container/build; every value is checked exactly with the
independent translation in tests/integration/lib/kvm_common.py.

usage: test_sidecar.py KVMTEST_VMM sidecar|daemonset

sidecar    The container read-only as nobody with no capability and no procfs
           discovery; the hand-off socket in a volume shared with the host;
           the fixture's VMs hand their stats fds across. Every value on the
           container's /metrics is exact; kvm_vm_info names the hand-off
           source, the VM's KVM id and the hand-off labels; the container
           holds exactly the VMs' stats fds, and none once they exit.
daemonset  The DaemonSet's privileges: host PID namespace, root, every
           capability dropped but SYS_PTRACE and DAC_READ_SEARCH, read-only
           root, the runtime's default seccomp profile. procfs discovery finds
           the fixture's VMs with exact values. As user 65534 without
           capabilities (what Kubernetes gives a non-root container, which is
           why the DaemonSet runs as root) it must see none of them and say
           so (procfs_scan_success 0).
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


def part_sidecar(fixture, image, problems):
    with tempfile.TemporaryDirectory(prefix='kvmstats-sidecar-') as vol:
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


DAEMONSET_OPTS = ['--pid=host', '--cap-add=SYS_PTRACE', '--cap-add=DAC_READ_SEARCH',
                  '--security-opt=no-new-privileges']


def scrape_until(ct, vms, timeout=20):
    """The container's exposition once all VMS are in it (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        expo = kc.Exposition(ct.get('/metrics')[1])
        seen = {dict(k[1]).get('vm') for k in expo.samples if k[0] == kc.INFO_FAMILY}
        if vms <= seen or time.monotonic() > deadline:
            return expo
        time.sleep(0.2)


def part_daemonset(fixture, image, problems):
    # The fixture's VMs exist before the container starts: its first /proc
    # scan, which it finishes before it listens, finds them. Other VMMs on the
    # host (other test runs) are found too and make that scan longer.
    args = ['--kvm.handoff-socket=']
    with kc.Fixture(fixture, VMS, VCPUS, HLT, irqchip=True) as fx:
        vms = fx.vm_labels()
        with cc.Container(image, args, run_opts=DAEMONSET_OPTS + ['--user=0:0'],
                          ready_timeout=180) as ct:
            expo = scrape_until(ct, vms)
            samples, families = kc.expected_from_dumps(fx.dumps, per_vcpu=False)
            p = kc.compare(expo, samples, families, vms, exporter_pid=ct.pid)
            p += kc.check_info(expo, fx.dumps)
            mine = sum(sum(kc.count_stats_fds(pid)) for pid in fx.pids)
            kc.log(f'  as root: {len(samples)} expected samples of {VMS} VMs; fixture holds '
                   f'{mine} stats fds; container {kc.count_stats_fds(ct.pid)}')
            if not kc.report(p, 'procfs discovery from the container, DaemonSet privileges'):
                problems.append('procfs discovery as root')
        # What a non-root container gets in Kubernetes, whatever capabilities
        # its securityContext adds (Kubernetes sets no ambient capabilities;
        # podman does, so it is asked for none here): no capability at all.
        with cc.Container(image, args, run_opts=['--pid=host', '--user=65534:65534'],
                          ready_timeout=180) as ct:
            expo = kc.Exposition(ct.get('/metrics')[1])
            seen = {dict(k[1]).get('vm') for k in expo.samples if k[0] == kc.INFO_FAMILY} & vms
            ok = self_metric(expo, 'kvmstats_exporter_procfs_scan_success')
            eff = int(cc.proc_status(ct.pid)['CapEff'], 16)
            kc.log(f'  as 65534 without capabilities: CapEff {eff:#x}, {len(seen)} of the '
                   f'fixture\'s VMs seen, procfs_scan_success {ok}')
            if seen or ok != 0 or eff != 0:
                problems.append(f'as 65534 without capabilities: {len(seen)} VMs seen, '
                                f'procfs_scan_success {ok}, CapEff {eff:#x}')


def main():
    kc.require_kvm()
    fixture = kc.fixture_path(sys.argv)
    parts = {'sidecar': part_sidecar, 'daemonset': part_daemonset}
    if len(sys.argv) != 3 or sys.argv[2] not in parts:
        dc.fail(f'usage: {sys.argv[0]} KVMTEST_VMM {"|".join(parts)}')
    env = dc.podman_env()
    problems = []
    with cc.Image(env) as image:
        parts[sys.argv[2]](fixture, image, problems)
    if problems:
        dc.fail(f'{sys.argv[2]}: ' + '; '.join(problems))


if __name__ == '__main__':
    main()
