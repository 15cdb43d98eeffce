#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A process holding copies of a VMM's stats fds does not take the VMM's VM.

usage: test_procfs_copies.py KVMTEST_VMM

Another exporter, a debugger or a monitoring agent may hold dups of the stats
fds a VMM keeps open (pidfd_getfd, SCM_RIGHTS). /proc is scanned in pid order,
so such a holder with a lower pid than the VMM is seen first. Each stats file
names its creator ("kvm-<tid>"); while the creator's process still holds the
file, it is the creator's VM: exported under pid-<VMM pid> with every value
exact, each file held once, and no VM named after the holder. This process is
the holder: it starts before the fixture (lower pid) and takes copies of every
stats fd of the fixture's first VM, and the VM fd of the second. When the first
VM's process is killed, its VM lives on in the kernel through the copies only:
the holder runs no VM, so that is not a VM to export either.
"""
import ctypes
import os
import platform
import sys
import time

from lib import kvm_common as kc

VMS, VCPUS, HLT = 2, 2, 7
SYS_PIDFD_GETFD = {'x86_64': 438, 'aarch64': 438}.get(platform.machine())
SYS_KCMP = {'x86_64': 312, 'aarch64': 272}.get(platform.machine())
KCMP_FILE = 0
_libc = ctypes.CDLL(None, use_errno=True)


def stats_fds(pid):
    """{fd: link} of the stats fds a process holds."""
    out = {}
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            link = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:
            continue
        if link.startswith(('anon_inode:kvm-vm-stats', 'anon_inode:kvm-vcpu-stats:')):
            out[int(fd)] = link
    return out


def take_copy(pid, fd):
    pidfd = os.pidfd_open(pid)
    try:
        r = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if r < 0:
            kc.fail(f'pidfd_getfd({pid}, {fd}): {os.strerror(ctypes.get_errno())}')
        return r
    finally:
        os.close(pidfd)


def held_times(ex_pid, pid, fd):
    return sum(1 for efd in stats_fds(ex_pid)
               if _libc.syscall(SYS_KCMP, ex_pid, pid, KCMP_FILE, efd, fd) == 0)


def check(text, fx, me, ex_pid, what):
    expo = kc.Exposition(text)
    expected, families = kc.expected_from_dumps(fx.dumps, False)
    problems = kc.compare(expo, expected, families, fx.vm_labels(), ex_pid)
    problems += kc.check_info(expo, fx.dumps)
    mine = kc.ASSUMED_VM_LABEL.format(pid=me)
    named = sorted({kc.fmt_key(k) for k in expo.samples if dict(k[1]).get('vm') == mine})
    if named:
        problems.append(f'{len(named)} series name the holder of the copies as a VM, '
                        f'e.g. {named[0]}')
    return kc.report(problems, what)


def main():
    kc.require_kvm()
    if SYS_PIDFD_GETFD is None or SYS_KCMP is None:
        kc.skip(f'no pidfd_getfd/kcmp syscall numbers for {platform.machine()}')
    fixture = kc.fixture_path(sys.argv)
    me = os.getpid()
    ok = True
    copies = []
    with kc.Fixture(fixture, VMS, VCPUS, HLT) as fx:
        if min(fx.pids) < me:
            kc.skip(f'pids wrapped around: fixture {fx.pids} below this process {me}, '
                    'so /proc order cannot put the holder first')
        first, second = fx.pids
        try:
            for fd in stats_fds(first):
                copies.append(take_copy(first, fd))
            of_first = list(copies)
            copies += [take_copy(second, fd) for fd, link in stats_fds(second).items()
                       if link == 'anon_inode:kvm-vm-stats']
            kc.log(f'  this process ({me}) holds {len(copies)} copies of the fixture\'s '
                   f'stats fds ({first}: all, {second}: the VM\'s)')
            r = kc.run_once([])
            if r.returncode != 0:
                kc.fail(f'--once exited {r.returncode}: {r.stderr[-2000:]}')
            ok &= check(r.stdout, fx, me, None, '--once: the VMs are their VMMs\', exact')
            with kc.Exporter(['--kvm.rescan-interval=100ms',
                              '--kvm.handoff-socket=']) as ex:
                ok &= check(ex.scrape(), fx, me, ex.pid, 'HTTP: the VMs are their VMMs\', exact')
                problems = []
                for pid in fx.pids:
                    for fd in stats_fds(pid):
                        n = held_times(ex.pid, pid, fd)
                        if n != 1:
                            problems.append(f'pid {pid} fd {fd} held {n} times by the exporter')
                ok &= kc.report(problems, 'HTTP: each fixture stats file held once')
                # Rescans see the holder again and again: still not a VM, still exact.
                time.sleep(0.5)
                ok &= check(ex.scrape(), fx, me, ex.pid, 'HTTP after five rescans: unchanged')
                warned = [line for line in ex.log_text().splitlines()
                          if f'pid={me} ' in line]
                ok &= kc.report(warned[:3], 'HTTP: nothing logged about the holder')

                # The VMM dies; its VM lives on in the kernel through our copies only.
                kc.log(f'  SIGKILL VM process {first}, whose stats fds this process holds')
                fx.kill_vm(first)
                time.sleep(0.5)
                ok &= check(ex.scrape(), fx, me, ex.pid, 'after the kill: the survivor exact, '
                            'the copies of the dead VM not a VM')
                held = sum(held_times(ex.pid, me, fd) for fd in of_first)
                ok &= kc.report([f'the exporter holds {held} of the dead VM\'s files'] if held
                                else [], 'after the kill: no file of the dead VM held')
        finally:
            for fd in copies:
                os.close(fd)
    if not ok:
        sys.exit(1)
    kc.log('PASS')


if __name__ == '__main__':
    main()
