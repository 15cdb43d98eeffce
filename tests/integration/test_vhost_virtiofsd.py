#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""QEMU 7.2 with a vhost-user-fs-pci device through the tap to QEMU's virtiofsd.

usage: test_vhost_virtiofsd.py

virtiofsd (Debian: /usr/lib/qemu/virtiofsd, from qemu-system-common) shares a
directory; QEMU connects to it through a tap proxy. QEMU must start cleanly:
the device set-up (features, protocol features, the backend channel that
virtiofsd asks for, the virtqueues' eventfds) completes through the tap,
QEMU keeps running for a few seconds and answers QMP, and the tap counts the
set-up without flagging anything. After QEMU quits: proxy_connected 0, the
exporter's fd count back to baseline, and virtiofsd ends its session cleanly.

SKIP (77) without qemu-system-x86_64 or virtiofsd (KVM or TCG).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib import vhost_user as vb  # noqa: E402
from lib.qemu import Qemu, require_qemu  # noqa: E402

VIRTIOFSD = ['/usr/lib/qemu/virtiofsd', '/usr/libexec/virtiofsd', '/usr/bin/virtiofsd']
STAY_UP = 3  # seconds QEMU must keep running


def find_virtiofsd():
    for p in VIRTIOFSD:
        if os.access(p, os.X_OK):
            return p
    return shutil.which('virtiofsd')


def start_virtiofsd(binary, sock, share, work, sandbox):
    err = open(os.path.join(work, f'virtiofsd-{sandbox}.err'), 'w')
    # The C virtiofsd of QEMU 7.2; its sandbox needs namespaces, else chroot (we are root).
    proc = subprocess.Popen([binary, f'--socket-path={sock}', '-o', f'source={share}',
                             '-o', 'cache=none', '-o', f'sandbox={sandbox}'],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None and not os.path.exists(sock):
        time.sleep(0.05)
    return proc


def main():
    require_qemu()
    binary = find_virtiofsd()
    if not binary:
        kc.skip('virtiofsd is not installed (Debian 12: qemu-system-common)')
    kc.exporter_path()
    problems = []
    work = tempfile.mkdtemp(prefix='vt-')
    share = os.path.join(work, 'share')
    os.mkdir(share)
    with open(os.path.join(share, 'hello'), 'w') as f:
        f.write('hello through the tap\n')
    backend, tap = os.path.join(work, 'vfs.sock'), os.path.join(work, 'tap.sock')
    vfs = None
    try:
        args = [f'--vhost.proxy=name=fs,listen={tap},backend={backend}', '--no-kvm.procfs',
                '--kvm.handoff-socket=', '--log.level=debug']
        with kc.Exporter(args) as exporter:
            baseline = vb.settled_fds(exporter.pid)
            qemu = None
            for sandbox in ('namespace', 'chroot'):
                vfs = start_virtiofsd(binary, backend, share, work, sandbox)
                if vfs.poll() is not None:
                    continue
                qemu = Qemu(vb.SHARED_MEMORY + [
                    '-chardev', f'socket,id=c,path={tap}',
                    '-device', 'vhost-user-fs-pci,chardev=c,tag=share'], work, connect=False)
                time.sleep(STAY_UP)
                if qemu.alive() and vfs.poll() is None:
                    break
                kc.log(f'  QEMU or virtiofsd (sandbox={sandbox}) gave up: {qemu.stderr_text()}')
                qemu.quit()
                vfs.kill()
                vfs.wait()
                if os.path.exists(backend):
                    os.unlink(backend)
                qemu = None
            if qemu is None:
                kc.fail('virtiofsd or QEMU did not stay up with either sandbox: ' +
                        open(os.path.join(work, 'virtiofsd-chroot.err')).read() +
                        f'\nexporter: {exporter.log_text()}')
            status = qemu.qmp.cmd('query-status')
            if status.get('status') != 'running':
                problems.append(f'QEMU status {status}, expected running')
            kc.log(f'  QEMU up {STAY_UP}s with vhost-user-fs-pci through the tap; QMP: {status}')

            expo = kc.Exposition(exporter.scrape())
            problems += expo.errors
            counted = {dict(k[1])['request']: int(v[0]) for k, v in expo.samples.items()
                       if k[0] == 'vhost_user_messages_total' and
                       dict(k[1]).get('channel') == 'frontend'}
            kc.log(f'  requests: {sorted(counted.items())}')
            for want in ('get_features', 'get_protocol_features', 'set_owner',
                         'set_vring_call'):
                if counted.get(want, 0) == 0:
                    problems.append(f'no {want} counted')
            if 'set_backend_req_fd' in counted and \
                    'relaying the vhost-user backend channel' not in vb.exporter_log(exporter):
                problems.append('the backend channel was not interposed')
            invalid = {k: v[0] for k, v in expo.samples.items()
                       if k[0] == 'vhost_user_invalid_messages_total' and v[0] != 0}
            if invalid:
                problems.append(f'real peers flagged as invalid: {invalid}')
            got = expo.samples.get(('vhost_user_proxy_connected', (('proxy', 'fs'),)), (None,))[0]
            if got != 1:
                problems.append(f'vhost_user_proxy_connected = {got} while QEMU runs')

            rc = qemu.quit()
            if rc not in (0, None):
                problems.append(f'QEMU exited with {rc}: {qemu.stderr_text()}')
            try:
                vfs.wait(10)  # it serves one frontend, then exits
            except subprocess.TimeoutExpired:
                problems.append('virtiofsd did not end after QEMU quit')
            n = vb.wait_fds(exporter.pid, baseline)
            n = vb.settled_fds(exporter.pid) if n != baseline else n
            if n != baseline:
                problems.append(f'exporter holds {n} fds after QEMU quit, {baseline} before')
            expo = kc.Exposition(exporter.scrape())
            got = expo.samples.get(('vhost_user_proxy_connected', (('proxy', 'fs'),)), (None,))[0]
            if got != 0:
                problems.append(f'vhost_user_proxy_connected = {got} after QEMU quit')
            if problems:
                print(exporter.log_text(), file=sys.stderr)
    finally:
        if vfs is not None and vfs.poll() is None:
            vfs.kill()
            vfs.wait()
        shutil.rmtree(work, ignore_errors=True)
    ok = kc.report(problems, 'QEMU through the tap to virtiofsd starts cleanly')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
