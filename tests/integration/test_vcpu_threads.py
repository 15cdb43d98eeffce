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

Then a VMM that ran all its vCPUs on one thread, none of them still in
KVM_RUN (the fixture's classic mode): no thread series, every vCPU counted
as unmapped ("not_seen"), nothing made up.
"""

import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction

import kvm_common as kc

VCPUS = 3
RESCAN = '200ms'
MAP_TIMEOUT = 20.0
FAMILIES = {'cpu': 'kvm_vcpu_thread_cpu_seconds_total',
            'delay': 'kvm_vcpu_thread_run_delay_seconds_total',
            'slices': 'kvm_vcpu_thread_timeslices_total'}
UNMAPPED = 'kvm_vcpu_thread_unmapped'
FOUND = re.compile(r'msg="vCPU thread found" vm=(\S+) vcpu=(\d+) tid=(\d+)')


def schedstat(pid, tid):
    """This test's own reading: {'cpu': s, 'delay': s, 'slices': n} as exact Fractions."""
    with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
        cpu, delay, slices = (int(x) for x in f.read().split())
    return {'cpu': Fraction(cpu, 10**9), 'delay': Fraction(delay, 10**9), 'slices': Fraction(slices)}


def thread_series(expo, vm):
    """{(family key, vcpu or None): value} of one VM's thread families."""
    out = {}
    for (name, labels), (value, _) in expo.samples.items():
        ld = dict(labels)
        if ld.get('vm') != vm:
            continue
        for key, fam in FAMILIES.items():
            if name == fam:
                out[(key, int(ld['vcpu']) if 'vcpu' in ld else None)] = value
    return out


def unmapped(expo, vm):
    return {dict(k[1])['reason']: v[0] for k, v in expo.samples.items()
            if k[0] == UNMAPPED and dict(k[1]).get('vm') == vm}


def schedstat_fds(exporter_pid):
    """The (pid, tid) of every schedstat file the exporter holds."""
    out = set()
    for fd in os.listdir(f'/proc/{exporter_pid}/fd'):
        try:
            link = os.readlink(f'/proc/{exporter_pid}/fd/{fd}')
        except OSError:
            continue
        m = re.fullmatch(r'/proc/(\d+)/task/(\d+)/schedstat', link)
        if m:
            out.add((int(m.group(1)), int(m.group(2))))
    return out


def wait_mapped(ex, vm, n, what):
    """Scrapes until all n vCPUs of vm have thread series; returns the exposition."""
    deadline = time.monotonic() + MAP_TIMEOUT
    while True:
        expo = kc.Exposition(ex.scrape())
        got = {v for (k, v) in thread_series(expo, vm) if k == 'cpu'}
        if got == set(range(n)):
            return expo
        if time.monotonic() > deadline:
            kc.fail(f'{what}: vCPUs {sorted(got)} of {n} mapped after {MAP_TIMEOUT}s, '
                    f'unmapped {unmapped(expo, vm)}:\n{ex.log_text()}')
        time.sleep(0.1)


def bracket(ex, pid, vm, truth, per_vcpu):
    """One scrape between two readings of every vCPU thread; returns the problems."""
    before = {v: schedstat(pid, t) for v, t in truth.items()}
    expo = kc.Exposition(ex.scrape())
    after = {v: schedstat(pid, t) for v, t in truth.items()}
    got = thread_series(expo, vm)
    problems = list(expo.errors)
    for key in FAMILIES:
        if per_vcpu:
            ranges = {v: (before[v][key], after[v][key]) for v in truth}
        else:
            ranges = {None: (sum(b[key] for b in before.values()),
                             sum(a[key] for a in after.values()))}
        for v, (lo, hi) in ranges.items():
            val = got.get((key, v))
            if val is None:
                problems.append(f'{FAMILIES[key]}{{vm="{vm}",vcpu={v}}} missing')
            elif not lo <= val <= hi:
                problems.append(f'{FAMILIES[key]}{{vm="{vm}",vcpu={v}}} = {float(val)} '
                                f'outside [{float(lo)}, {float(hi)}]')
    extra = {k for k in got if k[0] in FAMILIES and (k[1] is None) == per_vcpu}
    if extra:
        problems.append(f'series of the other mode: {sorted(extra, key=str)}')
    if unmapped(expo, vm):
        problems.append(f'unmapped vCPUs reported: {unmapped(expo, vm)}')
    return problems


def full_log(ex):
    ex.stderr.seek(0)
    return ex.stderr.read().decode(errors='replace')


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
            start = {v: schedstat(pid, t) for v, t in truth.items()}
            with kc.Exporter([f'--kvm.rescan-interval={RESCAN}', '--kvm.per-vcpu',
                              '--kvm.handoff-socket=', '--log.level=debug']) as ex, \
                    kc.Exporter([f'--kvm.rescan-interval={RESCAN}',
                                 '--kvm.handoff-socket=']) as agg:
                wait_mapped(ex, vm, VCPUS, f'{style} per-vCPU')
                chosen = {}
                for m in FOUND.finditer(full_log(ex)):
                    if m.group(1) == vm:
                        chosen.setdefault(int(m.group(2)), set()).add(int(m.group(3)))
                wrong = {v: ts for v, ts in chosen.items() if ts != {truth[v]}}
                ok &= kc.report([f'vCPU {v} mapped to threads {sorted(ts)}, runs on {truth[v]}'
                                 for v, ts in wrong.items()] +
                                ([] if set(chosen) == set(truth) else
                                 [f'mapped vCPUs {sorted(chosen)}, expected {sorted(truth)}']),
                                f'{style}: every vCPU mapped to the thread that runs it')
                held = {t for p, t in schedstat_fds(ex.pid) if p == pid}
                ok &= kc.report([] if held == set(truth.values()) else
                                [f'exporter holds schedstat files of {sorted(held)}, '
                                 f'expected {sorted(truth.values())}'],
                                f'{style}: one schedstat file per vCPU thread')
                for i in range(3):
                    ok &= kc.report(bracket(ex, pid, vm, truth, True),
                                    f'{style}: per-vCPU values within this test\'s readings '
                                    f'(scrape {i + 1})')
                deadline = time.monotonic() + MAP_TIMEOUT
                while not thread_series(kc.Exposition(agg.scrape()), vm) and \
                        time.monotonic() < deadline:
                    time.sleep(0.1)
                ok &= kc.report(bracket(agg, pid, vm, truth, False),
                                f'{style}: per-VM sums within this test\'s readings')
                now = {v: schedstat(pid, t) for v, t in truth.items()}
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
                got = thread_series(expo, vm)
                problems = [f'{FAMILIES[k]}{{vcpu="{v}"}} still exported'
                            for (k, v) in got if v == gone]
                problems += [f'{FAMILIES[k]}{{vcpu="{v}"}} missing' for k in FAMILIES
                             for v in truth if v != gone and (k, v) not in got]
                if unmapped(expo, vm) != {'thread_exited': 1}:
                    problems.append(f'unmapped {unmapped(expo, vm)}, expected thread_exited: 1')
                if (pid, truth[gone]) in schedstat_fds(ex.pid):
                    problems.append('the exited thread\'s schedstat file is still open')
                ok &= kc.report(problems, f'{style}: an exited vCPU thread is dropped, counted '
                                          f'and its file closed by the next scrape')
        finally:
            hog.kill()
            hog.wait()
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
                        if k[0] in FAMILIES.values() and dict(k[1]).get('vm') == vm]
            if unmapped(expo, vm) != {'not_seen': VCPUS}:
                problems.append(f'unmapped {unmapped(expo, vm)}, expected not_seen: {VCPUS}')
            if any(p == pid for p, _ in schedstat_fds(ex.pid)):
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
    ok &= check_unthreaded(fixture)
    if not ok:
        sys.exit(1)
    print('PASS: vCPU threads mapped exactly in both threading styles; values within the '
          'threads\' own schedstat readings; exited threads dropped; unmappable vCPUs counted')


if __name__ == '__main__':
    main()
