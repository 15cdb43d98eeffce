#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""QEMU 7.2 boots from a vhost-user-blk disk served by qemu-storage-daemon through the tap.

usage: test_vhost_qemu_storage_daemon.py

    QEMU --(tap proxy "blk")--> Sniffer --> qemu-storage-daemon (vhost-user-blk export)

The disk holds one boot sector of ours (0x55AA signature) whose code writes a
marker to the serial port (0x3f8) and halts. SeaBIOS can only run it after
reading it from the disk over vhost-user, through the tap (the guest's
virtqueue, its memory table with the memfd fds, the kick and call eventfds
and the inflight fd all pass through it), so the marker in QEMU's serial file
proves the relay works with real peers.

The tap's counters are then held against two independent counts of the same
relayed messages: the Sniffer (tests/integration/lib/vhost_user.py), a relay of
the test's own between the tap and the daemon, and the tap's debug log line
per relayed message. After QEMU quits: proxy_connected 0, connections_total
1, and the exporter's fd count back to its baseline.

SKIP (77) without qemu-system-x86_64 or qemu-storage-daemon (KVM or TCG).
"""
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib.wait import poll  # noqa: E402
from lib import vhost_user as vb  # noqa: E402
from lib.qemu import Qemu, require_qemu  # noqa: E402

QSD = 'qemu-storage-daemon'
MARKER = b'VHOST-TAP-BOOT-OK'


def boot_sector():
    """16-bit code: print MARKER on COM1, then halt forever."""
    msg = MARKER + b'\r\n\0'
    code = bytearray()
    code += b'\xfa\xfc'              # cli; cld
    code += b'\x31\xc0\x8e\xd8'      # xor ax,ax; mov ds,ax
    code += b'\xba\xf8\x03'          # mov dx,0x3f8
    si_at = len(code) + 1
    code += b'\xbe\x00\x00'          # mov si,msg (patched below)
    loop = len(code)
    code += b'\xac'                  # lodsb
    code += b'\x84\xc0'              # test al,al
    code += b'\x74\x03'              # jz done
    code += b'\xee'                  # out dx,al
    code += bytes([0xeb, (loop - (len(code) + 2)) & 0xff])  # jmp loop
    done = len(code)
    code += b'\xf4'                  # hlt
    code += bytes([0xeb, (done - (len(code) + 2)) & 0xff])  # jmp done
    addr = 0x7c00 + len(code)
    code[si_at:si_at + 2] = addr.to_bytes(2, 'little')
    code += msg
    sector = bytes(code).ljust(510, b'\0') + b'\x55\xaa'
    assert len(sector) == 512
    return sector


def log_counts(text, proxy):
    """Frontend requests the tap logged as relayed, by request label."""
    pat = re.compile(r'msg="vhost-user message" proxy=' + re.escape(proxy) +
                     r' channel=frontend from=frontend request=(\S+) .*action=relayed')
    return collections.Counter(m.group(1) for m in pat.finditer(text))


def main():
    require_qemu()
    if not shutil.which(QSD):
        kc.skip(f'{QSD} is not installed (Debian: qemu-system-common)')
    kc.exporter_path()
    problems = []
    work = tempfile.mkdtemp(prefix='vt-')
    disk = os.path.join(work, 'disk.img')
    with open(disk, 'wb') as f:
        f.write(boot_sector().ljust(1 << 20, b'\0'))
    serial = os.path.join(work, 'serial.txt')
    backend, sniff, tap = (os.path.join(work, n) for n in ('qsd.sock', 'sniff.sock', 'tap.sock'))

    qsd = subprocess.Popen([QSD, '--blockdev', f'driver=file,filename={disk},node-name=f',
                            '--export', 'type=vhost-user-blk,id=e,node-name=f,addr.type=unix,'
                            f'addr.path={backend},writable=off'],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=open(os.path.join(work, 'qsd.err'), 'w'))
    if not poll(lambda: os.path.exists(backend) or qsd.poll() is not None, 15) or \
            qsd.poll() is not None:
        kc.fail(f'{QSD} did not start: {open(os.path.join(work, "qsd.err")).read()}')
    sniffer = vb.Sniffer(sniff, backend)
    try:
        args = [f'--vhost.proxy=name=blk,listen={tap},backend={sniff}', '--no-kvm.procfs',
                '--kvm.handoff-socket=', '--log.level=debug']
        with kc.Exporter(args) as exporter:
            baseline = vb.settled_fds(exporter.pid)
            qemu = Qemu(vb.SHARED_MEMORY + [
                '-chardev', f'socket,id=c,path={tap}',
                '-device', 'vhost-user-blk-pci,chardev=c,bootindex=1',
                '-serial', f'file:{serial}', '-no-reboot'], work, connect=False)
            booted = poll(lambda: os.path.exists(serial) and
                          MARKER in open(serial, 'rb').read(), 60)
            if not booted:
                qemu.quit()
                kc.fail(f'no boot marker on the serial port after 60s; QEMU: {qemu.stderr_text()}\n'
                        f'exporter: {exporter.log_text()}')
            kc.log('  the guest booted from the vhost-user-blk disk through the tap')

            # Counted while QEMU still runs and nothing more moves (the guest halted).
            time.sleep(0.5)
            expo = kc.Exposition(exporter.scrape())
            problems += expo.errors
            with sniffer.lock:
                sniffed = {vb.FRONTEND_NAMES.get(r, str(r)): n
                           for r, n in sniffer.frontend_requests.items()}
            counted = {dict(k[1])['request']: int(v[0]) for k, v in expo.samples.items()
                       if k[0] == 'vhost_user_messages_total' and
                       dict(k[1]).get('channel') == 'frontend'}
            logged = dict(log_counts(vb.exporter_log(exporter), "blk"))
            kc.log(f'  {sum(counted.values())} frontend requests counted, '
                   f'{sum(sniffed.values())} seen by the sniffer, {sum(logged.values())} logged; '
                   f'{sniffer.fds_relayed} fds passed the sniffer')
            if counted != sniffed:
                problems.append(f'tap counted {counted}, sniffer saw {sniffed}')
            if counted != logged:
                problems.append(f'tap counted {counted}, its log says {logged}')
            kc.log(f'  requests: {sorted(counted.items())}')
            # The guest's memory goes over as ADD_MEM_REG when the daemon offers
            # CONFIGURE_MEM_SLOTS (libvhost-user does), else as SET_MEM_TABLE.
            if counted.get('set_mem_table', 0) + counted.get('add_mem_reg', 0) == 0:
                problems.append('no guest memory passed: the device never started?')
            for want in ('set_vring_kick', 'set_vring_call', 'get_config'):
                if counted.get(want, 0) == 0:
                    problems.append(f'no {want} counted: the device never started?')
            for name, want in (('vhost_user_proxy_connected', 1),
                               ('vhost_user_proxy_connections_total', 1)):
                got = expo.samples.get((name, (('proxy', 'blk'),)), (None,))[0]
                if got != want:
                    problems.append(f'{name} = {got}, expected {want} while QEMU runs')
            invalid = {k: v[0] for k, v in expo.samples.items()
                       if k[0] == 'vhost_user_invalid_messages_total' and v[0] != 0}
            if invalid:
                problems.append(f'real peers flagged as invalid: {invalid}')

            rc = qemu.quit()
            if rc not in (0, None):
                problems.append(f'QEMU exited with {rc}: {qemu.stderr_text()}')
            if not poll(lambda: kc.Exposition(exporter.scrape()).samples.get(
                    ('vhost_user_proxy_connected', (('proxy', 'blk'),)), (None,))[0] == 0, 10):
                problems.append('vhost_user_proxy_connected is not 0 after QEMU quit')
            expo = kc.Exposition(exporter.scrape())
            got = expo.samples.get(('vhost_user_proxy_connections_total', (('proxy', 'blk'),)),
                                   (None,))[0]
            if got != 1:
                problems.append(f'vhost_user_proxy_connections_total = {got} after QEMU quit')
            n = vb.wait_fds(exporter.pid, baseline)
            n = vb.settled_fds(exporter.pid) if n != baseline else n
            if n != baseline:
                problems.append(f'exporter holds {n} fds after QEMU quit, {baseline} before')
            if problems:
                print(exporter.log_text(), file=sys.stderr)
    finally:
        qsd.terminate()
        qsd.wait(10)
        sniffer.close()
        shutil.rmtree(work, ignore_errors=True)
    ok = kc.report(problems, 'QEMU boots from qemu-storage-daemon through the tap, counts exact')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
