"""What the exporter must show for VMs that kvmtest_vmm hands off (docs/handoff.md)."""

import ctypes
import os
import platform

from lib import kvm_common as kc

SYS_KCMP = {'x86_64': 312, 'aarch64': 272}.get(platform.machine())
KCMP_FILE = 0
_libc = ctypes.CDLL(None, use_errno=True)

NAME = 'hv'
LABELS = {'tenant': 'acme', 'az': 'z1'}
SOURCE = 'handoff'

def label_of(d):
    return f'{NAME}-{d["index"]}'


def fixture_args(sock):
    args = ['--handoff', sock, '--name', NAME]
    for k, v in LABELS.items():
        args += ['--label', f'{k}={v}']
    return args


def expected(dumps, per_vcpu):
    samples, families = {}, {kc.INFO_FAMILY: 'gauge'}
    for d in dumps:
        vm = [f for f in d['files'] if f.kind == 'vm']
        vcpus = sorted((f for f in d['files'] if f.kind == 'vcpu'), key=lambda f: f.vcpu)
        s, f = kc.expected_vm(label_of(d), vm[0], vcpus, per_vcpu)
        samples.update(s)
        families.update(f)
    return samples, families


def check_info(expo, dumps):
    problems = []
    infos = [(dict(k[1]), v) for k, v in expo.samples.items() if k[0] == kc.INFO_FAMILY]
    for d in dumps:
        vm = label_of(d)
        mine = [(ld, v) for ld, v in infos if ld.get('vm') == vm]
        if len(mine) != 1:
            problems.append(f'kvm_vm_info{{vm="{vm}"}}: {len(mine)} series, expected 1')
            continue
        ld, v = mine[0]
        want = {'vm': vm, 'pid': str(d['pid']), 'vmm': 'kvmtest_vmm',  # no uuid: left out
                'kvm_id': f'kvm-{d["pid"]}', 'source': SOURCE, **LABELS}
        if ld != want or v[0] != 1:
            problems.append(f'kvm_vm_info{{vm="{vm}"}}: {ld} {v[1]}, expected {want} 1')
    return problems


def self_value(expo, name, **labels):
    v = expo.samples.get((name, tuple(sorted(labels.items()))))
    return None if v is None else v[0]


def check_exact(text, dumps, per_vcpu, what):
    expo = kc.Exposition(text)
    samples, families = expected(dumps, per_vcpu)
    problems = kc.compare(expo, samples, families, {label_of(d) for d in dumps})
    problems += check_info(expo, dumps)
    for name, want in (('kvmstats_exporter_vms', len(dumps)),
                       ('kvmstats_exporter_handoff_connections', len(dumps))):
        got = self_value(expo, name, **({'source': SOURCE} if name.endswith('vms') else {}))
        if got != want:
            problems.append(f'{name} = {got}, expected {want}')
    return kc.report(problems, what)


def stats_fds(pid):
    out = []
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            link = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:
            continue
        if link.startswith('anon_inode:kvm-vm-stats') or link.startswith('anon_inode:kvm-vcpu-stats:'):
            out.append(int(fd))
    return out


def check_copies(ex, pids, what):
    """Each stats file the fixture holds is held exactly once by the exporter (kcmp)."""
    if SYS_KCMP is None:
        return []
    mine = stats_fds(ex.pid)
    problems, files = [], 0
    for pid in pids:
        for fd in stats_fds(pid):
            files += 1
            n = sum(1 for efd in mine if _libc.syscall(SYS_KCMP, ex.pid, pid, KCMP_FILE, efd, fd) == 0)
            if n != 1:
                problems.append(f'{what}: pid {pid} fd {fd} is held {n} times by the exporter')
    kc.log(f'  {what}: {files} fixture stats files, {len(problems)} not held exactly once')
    return problems[:10]
