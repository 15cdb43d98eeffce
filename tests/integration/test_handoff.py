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
import fcntl
import json
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib.handoff_oracle import (NAME, LABELS, SOURCE, check_copies, check_exact,  # noqa: E402
                                 fixture_args, label_of, self_value)
from lib.kvm_vm import PyVM  # noqa: E402
from lib.wait import poll  # noqa: E402

VMS, VCPUS, HLT = 3, 4, 20


def check_fds(ex, want, what):
    got = kc.count_stats_fds(ex.pid)
    kc.log(f'  exporter stats fds {what}: {got}, expected {want}')
    return [] if got == want else [f'{what}: exporter holds {got} stats fds (vm, vcpu), '
                                   f'expected {want}']


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


def vms_seen(ex):
    return {dict(k[1]).get('vm') for k in kc.Exposition(ex.scrape()).samples
            if k[0] == kc.INFO_FAMILY}


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
            if not poll(lambda: f'pid-{me}' in vms_seen(ex), 5):
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
            if not poll(lambda: vms_seen(ex) >= {f'pid-{me}'} and
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
