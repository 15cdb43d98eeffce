#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""vCPU threads: which thread runs each vCPU, and its schedstat, end to end.

usage: test_vcpu_threads.py KVMTEST_VMM

For both threading styles of real VMMs (kvmtest_vmm --vcpu-threads per-vcpu,
as QEMU: each vCPU created and run on its own thread; creator, as
Firecracker: all vCPUs created on one thread and run on others started in
reverse order), with every vCPU thread pinned to one CPU next to a CPU hog
pinned there too so that the threads wait for it:

- every vCPU is mapped to exactly the thread the fixture says runs it
  (the exporter's debug log names the thread it chose) and never to another;
- kvm_vcpu_thread_{cpu,run_delay}_seconds_total and _timeslices_total of each
  vCPU, and their per-VM sums, lie between this test's own readings of the
  same /proc/PID/task/TID/schedstat files just before and just after the
  scrape, and the run delay grew while the hog ran;
- the exporter holds one schedstat file per vCPU thread; when a vCPU's thread
  exits, the next scrape drops its series, counts it as
  kvm_vcpu_thread_unmapped{reason="thread_exited"} and closes the file.

Then the hand-off protocol's "threads" message (procfs discovery off, so
that the exporter has only the peer's word): the fixture names each vCPU's
thread, the exporter maps exactly those and the values are bracketed; a
message naming a vCPU the VM lacks, or holding anything but vCPU roles and
thread ids, is refused.

Then a VMM that ran all its vCPUs on one thread, none of them still in
KVM_RUN (the fixture's classic mode): no thread series, every vCPU counted
as unmapped ("not_seen"), nothing made up.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from lib import kvm_common as kc

VCPUS = 3
RESCAN = '200ms'
MAP_TIMEOUT = 20.0
def wait_mapped(ex, vm, n, what):
    """Scrapes until all n vCPUs of vm have thread series; returns the exposition."""
    deadline = time.monotonic() + MAP_TIMEOUT
    while True:
        expo = kc.Exposition(ex.scrape())
        got = {v for (k, v) in kc.thread_series(expo, vm) if k == 'cpu'}
        if got == set(range(n)):
            return expo
        if time.monotonic() > deadline:
            kc.fail(f'{what}: vCPUs {sorted(got)} of {n} mapped after {MAP_TIMEOUT}s, '
                    f'unmapped {kc.thread_unmapped(expo, vm)}:\n{ex.log_text()}')
        time.sleep(0.1)


def pin(tids, cpu):
    for t in tids:
        os.sched_setaffinity(t, {cpu})


def check_style(fixture, style):
    ok = True
    cpu = sorted(os.sched_getaffinity(0))[0]
    with kc.Fixture(fixture, 1, VCPUS, 1, extra=['--vcpu-threads', style]) as fx:
        d = fx.load_dumps()[0]
        pid, vm = d['pid'], kc.ASSUMED_VM_LABEL.format(pid=d['pid'])
        truth = {t['vcpu']: t['tid'] for t in d['threads']}
        creators = {t['vcpu']: t['creator_tid'] for t in d['threads']}
        if style == 'per-vcpu' and creators != truth:
            kc.fail(f'fixture: per-vcpu threads should create their vCPUs ({creators} vs {truth})')
        if style == 'creator' and (len(set(creators.values())) != 1 or
                                   set(creators.values()) & set(truth.values())):
            kc.fail(f'fixture: creator style should create all vCPUs on one other thread '
                    f'({creators} vs {truth})')
        kc.log(f'  {style}: VM pid {pid}, vCPU threads {truth}, created by {creators}')
        hog = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
        try:
            pin([hog.pid] + list(truth.values()), cpu)
            start = {v: kc.schedstat(pid, t) for v, t in truth.items()}
            with kc.Exporter([f'--kvm.rescan-interval={RESCAN}', '--kvm.per-vcpu',
                              '--kvm.handoff-socket=', '--log.level=debug']) as ex, \
                    kc.Exporter([f'--kvm.rescan-interval={RESCAN}',
                                 '--kvm.handoff-socket=']) as agg:
                wait_mapped(ex, vm, VCPUS, f'{style} per-vCPU')
                chosen = kc.chosen_threads(ex, vm)
                wrong = {v: ts for v, ts in chosen.items() if ts != {truth[v]}}
                ok &= kc.report([f'vCPU {v} mapped to threads {sorted(ts)}, runs on {truth[v]}'
                                 for v, ts in wrong.items()] +
                                ([] if set(chosen) == set(truth) else
                                 [f'mapped vCPUs {sorted(chosen)}, expected {sorted(truth)}']),
                                f'{style}: every vCPU mapped to the thread that runs it')
                held = {t for p, t in kc.schedstat_fds(ex.pid) if p == pid}
                ok &= kc.report([] if held == set(truth.values()) else
                                [f'exporter holds schedstat files of {sorted(held)}, '
                                 f'expected {sorted(truth.values())}'],
                                f'{style}: one schedstat file per vCPU thread')
                for i in range(3):
                    ok &= kc.report(kc.bracket_threads(ex, pid, vm, truth, True),
                                    f'{style}: per-vCPU values within this test\'s readings '
                                    f'(scrape {i + 1})')
                deadline = time.monotonic() + MAP_TIMEOUT
                while not kc.thread_series(kc.Exposition(agg.scrape()), vm) and \
                        time.monotonic() < deadline:
                    time.sleep(0.1)
                ok &= kc.report(kc.bracket_threads(agg, pid, vm, truth, False),
                                f'{style}: per-VM sums within this test\'s readings')
                now = {v: kc.schedstat(pid, t) for v, t in truth.items()}
                grew = {v: float(now[v]['delay'] - start[v]['delay']) for v in truth}
                ok &= kc.report([f'vCPU {v}: run delay grew by {g}s next to the hog'
                                 for v, g in grew.items() if g <= 0],
                                f'{style}: the vCPU threads waited for the hog '
                                f'(run delay +{min(grew.values()):.3f}s at least)')

                # The highest vCPU's thread exits; its vCPU stays.
                gone = max(truth)
                gen = d['generation']
                os.kill(fx.proc.pid, signal.SIGUSR2)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    d2 = fx.load_dumps()[0]
                    if d2['generation'] > gen and d2['threads'][gone]['exited']:
                        break
                    time.sleep(0.02)
                else:
                    kc.fail('fixture did not end the vCPU thread')
                while os.path.exists(f'/proc/{pid}/task/{truth[gone]}') and \
                        time.monotonic() < deadline:
                    time.sleep(0.01)
                expo = kc.Exposition(ex.scrape())
                got = kc.thread_series(expo, vm)
                problems = [f'{kc.THREAD_FAMILIES[k]}{{vcpu="{v}"}} still exported'
                            for (k, v) in got if v == gone]
                problems += [f'{kc.THREAD_FAMILIES[k]}{{vcpu="{v}"}} missing' for k in kc.THREAD_FAMILIES
                             for v in truth if v != gone and (k, v) not in got]
                if kc.thread_unmapped(expo, vm) != {'thread_exited': 1}:
                    problems.append(f'unmapped {kc.thread_unmapped(expo, vm)}, expected thread_exited: 1')
                if (pid, truth[gone]) in kc.schedstat_fds(ex.pid):
                    problems.append('the exited thread\'s schedstat file is still open')
                ok &= kc.report(problems, f'{style}: an exited vCPU thread is dropped, counted '
                                          f'and its file closed by the next scrape')
        finally:
            hog.kill()
            hog.wait()
    return ok


def handoff_answer(sock, msg):
    sock.send(json.dumps(msg).encode())
    return json.loads(sock.recv(65536))


def check_handoff(fixture):
    ok = True
    with tempfile.TemporaryDirectory(prefix='vcpu-threads-') as tmp:
        path = os.path.join(tmp, 'h.sock')
        with kc.Exporter(['--no-kvm.procfs', f'--kvm.handoff-socket={path}', '--kvm.per-vcpu',
                          '--log.level=debug']) as ex, \
                kc.Fixture(fixture, 1, VCPUS, 1, extra=['--vcpu-threads', 'creator',
                                                        '--handoff', path, '--name', 'tvh']) as fx:
            d = fx.load_dumps()[0]
            pid, vm = d['pid'], 'tvh-0'
            truth = {t['vcpu']: t['tid'] for t in d['threads']}
            wait_mapped(ex, vm, VCPUS, 'hand-off "threads"')
            chosen = kc.chosen_threads(ex, vm)
            problems = [f'vCPU {v} mapped to {sorted(ts)}, runs on {truth[v]}'
                        for v, ts in chosen.items() if ts != {truth[v]}]
            if set(chosen) != set(truth):
                problems.append(f'mapped vCPUs {sorted(chosen)}, expected {sorted(truth)}')
            held = {t for p, t in kc.schedstat_fds(ex.pid) if p == pid}
            if held != set(truth.values()):
                problems.append(f'schedstat files of {sorted(held)} held, expected '
                                f'{sorted(truth.values())}')
            ok &= kc.report(problems, 'hand-off: the threads the VMM names are mapped')
            ok &= kc.report(kc.bracket_threads(ex, pid, vm, truth, True),
                            'hand-off: values within this test\'s readings')

            # A peer of our own: refusals, and the connection stays usable.
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.settimeout(10)
            s.connect(path)
            try:
                problems = []
                a = handoff_answer(s, {'version': 1, 'vm': {'name': f'tvh-peer-{os.getpid()}'},
                                       'fds': []})
                if a != {'ok': True}:
                    problems.append(f'registration answered {a}')
                for msg, why in (({'threads': {'vcpu:0': os.getpid()}}, 'no role'),
                                 ({'threads': {'vm': os.getpid()}}, 'vcpu:N'),
                                 ({'threads': {'vcpu:0': 0}}, 'thread id'),
                                 ({'threads': {'vcpu:0': 'x'}}, 'thread id'),
                                 ({'threads': {}, 'fds': []}, 'exactly one')):
                    a = handoff_answer(s, msg)
                    if a.get('ok') is not False or why not in a.get('error', ''):
                        problems.append(f'{json.dumps(msg)} answered {a}, expected a refusal '
                                        f'saying {why!r}')
                ok &= kc.report(problems, 'hand-off: malformed "threads" messages refused')
            finally:
                s.close()
    return ok


def check_unthreaded(fixture):
    """All vCPUs ran on the main thread and stopped: nothing to map, all counted."""
    with kc.Fixture(fixture, 1, VCPUS, 2) as fx:
        pid = fx.pids[0]
        vm = kc.ASSUMED_VM_LABEL.format(pid=pid)
        with kc.Exporter([f'--kvm.rescan-interval={RESCAN}', '--kvm.per-vcpu',
                          '--kvm.handoff-socket=']) as ex:
            time.sleep(1.0)  # several rescans
            expo = kc.Exposition(ex.scrape())
            problems = [f'{kc.fmt_key(k)} exported' for k in expo.samples
                        if k[0] in kc.THREAD_FAMILIES.values() and dict(k[1]).get('vm') == vm]
            if kc.thread_unmapped(expo, vm) != {'not_seen': VCPUS}:
                problems.append(f'unmapped {kc.thread_unmapped(expo, vm)}, expected not_seen: {VCPUS}')
            if any(p == pid for p, _ in kc.schedstat_fds(ex.pid)):
                problems.append('schedstat files of the VMM held')
    return kc.report(problems, 'vCPUs run in turn on one stopped thread: none mapped, all '
                               'counted as not_seen')


def main():
    kc.require_kvm()
    fixture = kc.fixture_path(sys.argv)
    if os.geteuid() != 0:
        kc.skip('mapping vCPU threads reads /proc/PID/task/TID/syscall: needs root '
                '(CAP_SYS_PTRACE), as procfs discovery does')
    ok = check_style(fixture, 'per-vcpu')
    ok &= check_style(fixture, 'creator')
    ok &= check_handoff(fixture)
    ok &= check_unthreaded(fixture)
    if not ok:
        sys.exit(1)
    print('PASS: vCPU threads mapped exactly in both threading styles; values within the '
          'threads\' own schedstat readings; exited threads dropped; unmappable vCPUs counted')


if __name__ == '__main__':
    main()
