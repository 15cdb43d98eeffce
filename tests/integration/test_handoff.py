#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Real KVM VMs handed to the exporter over its hand-off socket (docs/handoff.md).

usage: test_handoff.py KVMTEST_VMM

1. Procfs discovery off: kvmtest_vmm --handoff registers each VM as hv-<index>
   with two extra labels. Every value is exact (as in test_kvm_values.py, with
   the hand-off name as the vm label), in aggregate and per-vCPU mode;
   kvm_vm_info says source="handoff" and carries the extra labels. Killing one
   VM's process closes its connection: its series are gone and the exporter's
   stats fds drop by its share by the next scrape.
2. Exporter restart: after SIGKILL the stale socket file is replaced by the
   next exporter; the fixture's VMs are not there any more, because the
   fixture does not reconnect (the LD_PRELOAD shim does, see
   test_qemu_shim.py); a VMM that registers again is served at once. SIGTERM
   removes the socket file; --once never creates it.
3. Procfs discovery on: a VM handed off is one VM (its hand-off name, no
   pid-<pid> twin) and each stats file is held once; a VM that procfs found
   first is replaced by its hand-off and comes back under procfs when the
   connection closes.
"""
import ctypes
import fcntl
import platform
import json
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvm_common as kc  # noqa: E402

VMS, VCPUS, HLT = 3, 4, 20
NAME = 'hv'
LABELS = {'tenant': 'acme', 'az': 'z1'}
SOURCE = 'handoff'
KVM_CREATE_VM, KVM_CREATE_VCPU, KVM_GET_STATS_FD = 0xAE01, 0xAE41, 0xAECE
SYS_KCMP = {'x86_64': 312, 'aarch64': 272}.get(platform.machine())
KCMP_FILE = 0
_libc = ctypes.CDLL(None, use_errno=True)


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


def check_fds(ex, want, what):
    got = kc.count_stats_fds(ex.pid)
    kc.log(f'  exporter stats fds {what}: {got}, expected {want}')
    return [] if got == want else [f'{what}: exporter holds {got} stats fds (vm, vcpu), '
                                   f'expected {want}']


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


def part_values(fixture, tmp):
    """Exact values in both modes; a killed VM is gone by the next scrape."""
    ok = True
    sock = os.path.join(tmp, 'values.sock')
    for per_vcpu in (False, True):
        mode = 'per-vCPU' if per_vcpu else 'aggregate'
        args = ['--no-kvm.procfs', f'--kvm.handoff-socket={sock}']
        args += ['--kvm.per-vcpu'] if per_vcpu else []
        with kc.Exporter(args) as ex, \
                kc.Fixture(fixture, VMS, VCPUS, HLT, extra=fixture_args(sock)) as fx:
            # The fixture says ready only after every VM's registration was answered.
            ok &= check_exact(ex.scrape(), fx.dumps, per_vcpu, f'{mode}: exact values')
            ok &= kc.report(check_fds(ex, (VMS, VMS * VCPUS), f'{mode}, {VMS} VMs'),
                            f'{mode}: one stats fd per file')
            if per_vcpu:
                continue
            victim = fx.dumps[0]
            kc.log(f'  SIGKILL VM process {victim["pid"]} ({label_of(victim)})')
            fx.kill_vm(victim['pid'])
            text = ex.scrape()
            problems = check_fds(ex, (VMS - 1, (VMS - 1) * VCPUS), 'after the kill')
            left = [kc.fmt_key(k) for k in kc.Exposition(text).samples
                    if dict(k[1]).get('vm') == label_of(victim)]
            if left:
                problems.append(f'{len(left)} series of the closed VM left, e.g. {left[0]}')
            ok &= kc.report(problems, 'connection closed: VM and its fds gone by the next scrape')
            ok &= check_exact(text, fx.dumps, per_vcpu, 'aggregate: the other VMs unchanged')
    return ok


def part_restart(fixture, tmp):
    ok = True
    sock = os.path.join(tmp, 'restart.sock')
    args = ['--no-kvm.procfs', f'--kvm.handoff-socket={sock}']
    ex1 = kc.Exporter(args)
    try:
        with kc.Fixture(fixture, 2, 2, 3, extra=fixture_args(sock)) as fx:
            ok &= check_exact(ex1.scrape(), fx.dumps, False, 'first exporter serves the VMs')
            kc.log('  SIGKILL the exporter: its socket file stays behind')
            ex1.proc.kill()
            ex1.proc.wait()
            problems = [] if os.path.exists(sock) else ['socket file gone after SIGKILL?']
            with kc.Exporter(args) as ex2:
                expo = kc.Exposition(ex2.scrape())
                ours = {dict(k[1]).get('vm') for k in expo.samples} & {label_of(d) for d in fx.dumps}
                alive = all(os.path.exists(f'/proc/{p}') for p in fx.pids)
                kc.log(f'  second exporter: fixture VMs seen {sorted(ours)}, fixture alive {alive}')
                if ours:
                    problems.append(f'VMs {sorted(ours)} of closed connections are served')
                if not alive:
                    problems.append('the fixture died with the exporter')
                if self_value(expo, 'kvmstats_exporter_handoff_connections') != 0:
                    problems.append('second exporter has hand-off connections already')
                ok &= kc.report(problems, 'restart: stale socket replaced, old registrations '
                                'gone (the fixture does not reconnect)')
                # What a reconnecting VMM (the shim) does: register again; served at once.
                with kc.Fixture(fixture, 1, 2, 3, extra=fixture_args(sock)) as fx2:
                    ok &= check_exact(ex2.scrape(), fx2.dumps, False,
                                      'restart: a VMM registering again is served')
            ok &= kc.report([] if not os.path.exists(sock) else
                            ['socket file still there after SIGTERM'],
                            'SIGTERM removes the socket file')
    finally:
        if ex1.proc.poll() is None:
            ex1.close()

    once_sock = os.path.join(tmp, 'once.sock')
    r = kc.run_once(['--no-kvm.procfs', f'--kvm.handoff-socket={once_sock}'])
    problems = [] if r.returncode == 0 else [f'--once exited {r.returncode}: {r.stderr}']
    if os.path.exists(once_sock):
        problems.append('--once created the hand-off socket')
    if 'kvmstats_exporter_handoff_' in r.stdout:
        problems.append('--once reports hand-off metrics')
    ok &= kc.report(problems, '--once skips the hand-off socket')
    return ok


class PyVM:
    """A VM made by this process (it alone can make stats fds), never run."""

    def __init__(self, vcpus):
        self.kvm = os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC)
        self.vm = fcntl.ioctl(self.kvm, KVM_CREATE_VM, 0)
        self.vcpus = [fcntl.ioctl(self.vm, KVM_CREATE_VCPU, i) for i in range(vcpus)]
        self.stats = {'vm': fcntl.ioctl(self.vm, KVM_GET_STATS_FD, 0)}
        for i, v in enumerate(self.vcpus):
            self.stats[f'vcpu:{i}'] = fcntl.ioctl(v, KVM_GET_STATS_FD, 0)

    def close(self):
        for fd in [*self.stats.values(), *self.vcpus, self.vm, self.kvm]:
            os.close(fd)


def vms_seen(ex):
    return {dict(k[1]).get('vm') for k in kc.Exposition(ex.scrape()).samples
            if k[0] == kc.INFO_FAMILY}


def wait_until(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def part_dedup(fixture, tmp):
    ok = True
    sock = os.path.join(tmp, 'dedup.sock')
    args = [f'--kvm.handoff-socket={sock}', '--kvm.rescan-interval=200ms']
    with kc.Exporter(args) as ex:
        with kc.Fixture(fixture, VMS, VCPUS, HLT, extra=fixture_args(sock)) as fx:
            time.sleep(0.6)  # three rescans
            seen = vms_seen(ex)
            problems = [f'procfs twin {n} of a hand-off VM' for n in
                        sorted(seen & {f'pid-{p}' for p in fx.pids})]
            problems += check_copies(ex, fx.pids, 'procfs + hand-off')
            ok &= kc.report(problems, 'procfs + hand-off: one VM, each file held once')
            ok &= check_exact(ex.scrape(), fx.dumps, False, 'procfs + hand-off: exact values')

        me = os.getpid()
        vm = PyVM(2)
        try:
            problems = []
            if not wait_until(lambda: f'pid-{me}' in vms_seen(ex), 5):
                kc.fail(f'procfs never found this process\'s VM (pid-{me}): {ex.log_text()}')
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(sock)
            msg = {'version': 1, 'vm': {'name': 'py-dedup'}, 'fds': list(vm.stats)}
            socket.send_fds(s, [json.dumps(msg).encode()], list(vm.stats.values()))
            answer = json.loads(s.recv(65536))
            if answer != {'ok': True}:
                problems.append(f'registration answered {answer}')
            seen = vms_seen(ex)
            if 'py-dedup' not in seen or f'pid-{me}' in seen:
                problems.append(f'after the hand-off the VMs are {sorted(seen)}')
            time.sleep(0.6)
            if f'pid-{me}' in vms_seen(ex):
                problems.append('procfs found the hand-off peer again')
            problems += check_copies(ex, [me], 'procfs VM replaced by its hand-off')
            s.close()
            if not wait_until(lambda: vms_seen(ex) >= {f'pid-{me}'} and
                              'py-dedup' not in vms_seen(ex), 5):
                problems.append(f'after closing, VMs are {sorted(vms_seen(ex))}')
            ok &= kc.report(problems, 'a procfs VM is replaced by its hand-off, and back')
        finally:
            vm.close()
    return ok


def main():
    kc.require_kvm()
    fixture = kc.fixture_path(sys.argv)
    with tempfile.TemporaryDirectory(prefix='handoff-') as tmp:
        ok = part_values(fixture, tmp)
        ok &= part_restart(fixture, tmp)
        ok &= part_dedup(fixture, tmp)
    if not ok:
        sys.exit(1)
    kc.log('PASS')


if __name__ == '__main__':
    main()
