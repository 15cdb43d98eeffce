#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The hand-off shim in a VMM that does what QEMU never does.

    test_shim_lifecycle.py SHIM.so SHIM_VMM

tests/integration/shim_vmm.c runs under the shim against the strict stand-in
server of test_qemu_shim.py: every ioctl returns what the raw system call
returns (errno included); two VMs in one process are registered as "lc" and
"lc-2", the second with 70 vCPUs (two add messages); destroying a VM (closing
its fds) makes the shim release its stats fds and close its connection;
closing only a VM fd keeps the VM (its vCPUs live on) even when the number
comes back for a new VM; a fork() child holds none of the shim's fds.
SKIP (77) without /dev/kvm.
"""
import os
import selectors
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib.standin import StandIn  # noqa: E402
from lib.wait import wait_for  # noqa: E402

B_VCPUS = 70


class Vmm:
    def __init__(self, path, shim, sock):
        env = {k: v for k, v in os.environ.items() if not k.startswith('KVMSTATS_')}
        prefix = os.environ.get('SHIM_PRELOAD_PREFIX')
        env.update(LD_PRELOAD=f'{prefix}:{shim}' if prefix else shim,
                   KVMSTATS_HANDOFF_SOCKET=sock, KVMSTATS_VM_NAME='lc')
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        self.pid = self.proc.pid

    def cmd(self, line, timeout=30):
        self.proc.stdin.write(line.encode() + b'\n')
        self.proc.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            kc.fail(f'shim_vmm: no answer to {line} in {timeout}s')
        answer = self.proc.stdout.readline().decode().strip()
        if not answer.startswith('ok'):
            kc.fail(f'shim_vmm {line}: {answer!r}; stderr: {self.stderr_text()}')
        kc.log(f'  {line}: {answer}')
        return dict(kv.split('=') for kv in answer.split()[1:])

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors='replace')

    def stats_fds(self):
        return sum(kc.count_stats_fds(self.pid))


def roles(server, name):
    vm = server.vm(name)
    return vm[2] if vm else set()


def main():
    if len(sys.argv) != 3:
        kc.fail('usage: test_shim_lifecycle.py SHIM.so SHIM_VMM')
    kc.require_kvm()
    shim, vmm_path = os.path.abspath(sys.argv[1]), sys.argv[2]
    a_roles = {'vm', 'vcpu:0', 'vcpu:1'}
    b_roles = {'vm'} | {f'vcpu:{i}' for i in range(B_VCPUS)}
    with tempfile.TemporaryDirectory(prefix='shim-lc-') as tmp:
        sock = os.path.join(tmp, 'h.sock')
        with StandIn(sock) as server:
            vmm = Vmm(vmm_path, shim, sock)
            try:
                vmm.cmd('setup')
                kc.log('  ok: ioctl results and errno identical to the raw system call')
                wait_for('"lc" and "lc-2" registered with all their fds',
                         lambda: roles(server, 'lc') == a_roles
                         and roles(server, 'lc-2') == b_roles, 10)
                kc.log(f'  ok: "lc" {len(a_roles)} fds, "lc-2" {len(b_roles)} fds')
                if vmm.stats_fds() != 3 + 1 + B_VCPUS:
                    kc.fail(f'shim_vmm holds {vmm.stats_fds()} stats fds')

                vmm.cmd('close-b')
                took = wait_for('the shim releasing destroyed VM "lc-2"',
                                lambda: any(n == 'lc-2' for n, _ in server.disconnects)
                                and vmm.stats_fds() == 3, 6)
                kc.log(f'  ok: "lc-2" disconnected and its {1 + B_VCPUS} stats fds closed '
                       f'{took:.2f}s after the VMM closed it')

                vmm.cmd('close-a-vm')
                time.sleep(3)  # more than the shim's liveness period
                if roles(server, 'lc') != a_roles or vmm.stats_fds() != 3:
                    kc.fail('"lc" was released although its vCPU fds are open')
                c = vmm.cmd('create-c')
                wait_for('"lc-3" registered', lambda: roles(server, 'lc-3') == {'vm', 'vcpu:0'},
                         10)
                time.sleep(3)
                if roles(server, 'lc') != a_roles:
                    kc.fail(f'"lc" lost when its old VM fd number came back (C={c})')
                kc.log('  ok: "lc" kept (vCPUs alive) next to the new "lc-3"')

                child = vmm.cmd('fork')
                if child != {'child_stats_fds': '0', 'child_sockets': '0'}:
                    kc.fail(f'the fork child holds shim fds: {child}')
                time.sleep(0.5)
                if roles(server, 'lc') != a_roles or roles(server, 'lc-3') != {'vm', 'vcpu:0'}:
                    kc.fail('the parent\'s registrations changed after the fork child exited')
                kc.log('  ok: the fork child holds no stats fd and no socket of the shim')

                vmm.cmd('exit')
                vmm.proc.wait(10)
                wait_for('both connections closed after the VMM exited',
                         lambda: {'lc', 'lc-3'} <= {n for n, _ in server.disconnects}, 5)
                lines = [ln for ln in vmm.stderr_text().splitlines()
                         if ln.startswith('kvmstats_preload')]
                if lines:
                    kc.fail('shim lines although nothing failed:\n' + '\n'.join(lines))
                if 'Sanitizer' in vmm.stderr_text() or 'runtime error' in vmm.stderr_text():
                    kc.fail('sanitizer report:\n' + vmm.stderr_text())
                if server.problems:
                    kc.fail('protocol problems:\n  ' + '\n  '.join(server.problems))
            finally:
                if vmm.proc.poll() is None:
                    vmm.proc.kill()
                    vmm.proc.wait()
    print('PASS: shim transparent for ioctl results and errno; several VMs, batches, '
          'destroyed VMs, fd reuse and fork handled')


if __name__ == '__main__':
    main()
