#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""QEMU 7.2 with KVM under the hand-off shim (contrib/preload), end to end.

    test_qemu_shim.py SHIM.so --mode exporter|standin|robust

exporter  QEMU -> shim -> the exporter's hand-off socket -> /metrics (procfs
          discovery off): the VM appears under its -name with VM and vCPU
          stats; every counter, histogram and peak lies between two QMP
          query-stats readings taken just before and just after the scrape
          (and equals them while the guest is stopped); restarting the
          exporter brings the VM back within 10 s without touching QEMU;
          quitting QEMU removes it by the next scrape and the exporter's
          stats fds drop to 0.
standin   the same path against a strict Python implementation of the
          exporter's side of docs/handoff.md: checks the shim's messages and
          the fds themselves (ids, roles) and the values read from the
          received fds against QMP; needs no exporter.
threads   the vCPU threads of QEMU (-name debug-threads=on, as libvirt runs
          it) under the shim (procfs discovery on, so
          that the hand-off VM's threads are looked for at each rescan; needs
          root): every vCPU is mapped to a thread of QEMU named "CPU <n>/KVM"
          (while stopped at -S, by that name on the creating thread; while
          running, seen in KVM_RUN), and the kvm_vcpu_thread_* values lie
          between this test's readings of the same schedstat files taken
          just before and after each scrape.
threads_shim  the same with procfs discovery off: the exporter knows the
          threads only from the shim, which learns each vCPU's thread at its
          first KVM_RUN and sends it in a "threads" message.
robust    the shim never makes QEMU fail: no exporter, an exporter that
          refuses, one that never answers, KVMSTATS_PRELOAD_DISABLE=1 and an
          empty KVMSTATS_HANDOFF_SOCKET; at most one shim line on stderr.

QEMU is started with -S and no guest OS; `cont` runs SeaBIOS for a moment so
that counters move. Python stdlib only; SKIP (77) without QEMU or /dev/kvm.
For a sanitizer run of a shim built with -fsanitize=address, set
SHIM_PRELOAD_PREFIX to the runtime (e.g. /usr/lib/x86_64-linux-gnu/libasan.so.8):
it is put first in LD_PRELOAD, and any sanitizer report on QEMU's stderr fails.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib.qemu import Qemu, require_qemu  # noqa: E402
from lib.standin import StandIn  # noqa: E402
from lib.wait import wait_for  # noqa: E402

VM_NAME = 'web-1'
VM_UUID = '0b0e8f1a-7c1e-4c5e-9d2a-2a6f5b0c1d3e'
VCPUS = 2
ROLES = {'vm'} | {f'vcpu:{i}' for i in range(VCPUS)}
SHIM_PREFIX = 'kvmstats_preload'
HEAL_SECONDS = 10  # exporter restart -> VM back
ASSUMED_HANDOFF_SOURCE = 'handoff'  # kvm_vm_info{source} of hand-off VMs


# --- QEMU and QMP ---------------------------------------------------------------
class ShimQemu(Qemu):
    """QEMU -accel kvm -S under the shim."""

    def __init__(self, tmp, tag, shim, env, smp=VCPUS, debug_threads=False, name=VM_NAME):
        # debug-threads=on (as libvirt sets it) names vCPU threads "CPU <n>/KVM".
        name = f'guest={name}' + (',debug-threads=on' if debug_threads else '')
        super().__init__(['-S', '-name', name, '-uuid', VM_UUID, '-smp', str(smp)], tmp, tag,
                         accel=('kvm',), env=env, shim=shim)

    def shim_lines(self):
        text = self.stderr_text()
        m = re.search(r'^(==\d+==ERROR: \w+Sanitizer|.*runtime error:).*', text, re.M)
        if m:
            kc.fail(f'sanitizer report in QEMU {self.tag}:\n{text[m.start():][:4000]}')
        return [ln for ln in text.splitlines() if ln.startswith(SHIM_PREFIX)]

    def run_for(self, seconds):
        """Lets the guest (SeaBIOS, no OS) run for a moment, then stops it."""
        self.qmp.cmd('cont')
        time.sleep(seconds)
        self.qmp.cmd('stop')


# --- QEMU's own reading of the stats (QMP query-stats), as kvm_common stats ------
QMP_TYPES = {'cumulative': kc.CUMULATIVE, 'instant': kc.INSTANT, 'peak': kc.PEAK,
             'linear-histogram': kc.LINEAR_HIST, 'log2-histogram': kc.LOG_HIST}
QMP_UNITS = {None: kc.UNIT_NONE, 'bytes': kc.UNIT_BYTES, 'seconds': kc.UNIT_SECONDS,
             'cycles': kc.UNIT_CYCLES, 'boolean': kc.UNIT_BOOLEAN}
QMP_BASES = {None: kc.BASE_POW10, 10: kc.BASE_POW10, 2: kc.BASE_POW2}


def qmp_schemas(qmp):
    return {s['target']: s['stats'] for s in qmp.cmd('query-stats-schemas', provider='kvm')}


def qmp_reading(qmp, schemas):
    """(vm StatsFile, [vCPU StatsFile by vCPU index]) from query-stats."""
    def build(kind, vcpu, entry):
        values = {s['name']: s['value'] for s in entry['stats']}
        stats = []
        for d in schemas[kind]:
            if d['name'] not in values:
                kc.fail(f'QMP query-stats lacks {kind} stat {d["name"]}')
            v = values[d['name']]
            # QEMU (7.2 at least) lists histogram buckets last first: its
            # add_kvmstat_entry() builds the list with QAPI_LIST_PREPEND. The
            # standin mode checks this orientation against the fds themselves.
            vals = [int(x) for x in reversed(v)] if isinstance(v, list) else [int(v)]
            flags = (QMP_TYPES[d['type']] | QMP_UNITS[d.get('unit')] << 4
                     | QMP_BASES[d.get('base')] << 8)
            stats.append(kc.Stat(d['name'], flags, d.get('exponent', 0), len(vals), 0,
                                 d.get('bucket-size', 0), vals))
        return kc.StatsFile(kind, vcpu, 'qmp', stats)

    index = {c['qom-path']: c['cpu-index'] for c in qmp.cmd('query-cpus-fast')}
    vm = [e for e in qmp.cmd('query-stats', target='vm') if e['provider'] == 'kvm']
    vcpus = [e for e in qmp.cmd('query-stats', target='vcpu') if e['provider'] == 'kvm']
    if len(vm) != 1 or len(vcpus) != VCPUS:
        kc.fail(f'QMP query-stats: {len(vm)} VM and {len(vcpus)} vCPU entries')
    # QMP lists vCPUs in no particular order (7.2: last first): sort by CPU index.
    vcpus.sort(key=lambda e: index[e['qom-path']])
    return build('vm', -1, vm[0]), [build('vcpu', index[e['qom-path']], e) for e in vcpus]


def monotonic_samples(vm_file, vcpu_files):
    """Sample names that never decrease: counters, histogram series, peaks."""
    mono = set()
    for stats, kind in ((vm_file.stats, 'vm'), (vcpu_files[0].stats, 'vcpu')):
        for fam in kc.translate(stats, kind):
            if fam.type == 'counter':
                mono.add(fam.name + '_total')
            elif fam.type == 'histogram':
                mono |= {fam.name + '_bucket', fam.name + '_count', fam.name + '_sum'}
            elif fam.agg == 'max':
                mono.add(fam.name)
    return mono


def between(key, got, lo, hi, mono, problems, stopped):
    """got within [lo, hi] for a monotonic series; any series equal to both while stopped."""
    if key[0] not in mono and not stopped:
        return 'moving gauge'
    if lo == hi:
        if got != lo:
            problems.append(f'{kc.fmt_key(key)} = {kc.format_decimal(got)}, QMP read '
                            f'{kc.format_decimal(lo)} before and after')
        return 'equal'
    if key[0] not in mono:
        return 'moving gauge'
    if not lo <= got <= hi:
        problems.append(f'{kc.fmt_key(key)} = {kc.format_decimal(got)}, not within QMP '
                        f'[{kc.format_decimal(lo)}, {kc.format_decimal(hi)}]')
    return 'bracketed'


def check_shim_lines(qemu, at_most, what):
    lines = qemu.shim_lines()
    for ln in lines:
        kc.log(f'    shim said: {ln}')
    if len(lines) > at_most:
        kc.fail(f'{what}: {len(lines)} shim lines on stderr, at most {at_most} expected')
    if len(set(ln.split(': ', 1)[-1] for ln in lines)) != len(lines):
        kc.fail(f'{what}: the shim repeated a line')
    return lines


# --- mode: standin ----------------------------------------------------------------
def compare_raw(files, before, after, problems, stopped):
    """Values read from the handed-off fds against QMP, stat by stat, per file."""
    counts = {}
    qb = {'vm': before[0], **{f'vcpu:{i}': v for i, v in enumerate(before[1])}}
    qa = {'vm': after[0], **{f'vcpu:{i}': v for i, v in enumerate(after[1])}}
    for role, f in files.items():
        b = {s.name: s for s in qb[role].stats}
        a = {s.name: s for s in qa[role].stats}
        for s in f.stats:
            if s.name not in b:
                problems.append(f'{role}: {s.name} is not in QMP query-stats')
                continue
            for i, v in enumerate(s.values):
                key = (f'{s.name}[{i}]' if s.size > 1 else s.name, (('role', role),))
                mono = {key[0]} if s.type != kc.INSTANT else set()
                how = between(key, Fraction(v), Fraction(b[s.name].values[i]),
                              Fraction(a[s.name].values[i]), mono, problems, stopped)
                counts[how] = counts.get(how, 0) + 1
    return counts


def standin_values(server, qemu, schemas, what, stopped=True):
    before = qmp_reading(qemu.qmp, schemas)
    files = server.read(VM_NAME)
    after = qmp_reading(qemu.qmp, schemas)
    problems = []
    counts = compare_raw(files, before, after, problems, stopped)
    if not kc.report(problems, f'{what}: handed-off fds against QMP ({counts})'):
        sys.exit(1)
    return files


def mode_standin(shim, tmp):
    sock = os.path.join(tmp, 'h.sock')
    with StandIn(sock) as server, \
            ShimQemu(tmp, 'qemu', shim, {'KVMSTATS_HANDOFF_SOCKET': sock}) as qemu:
        took = wait_for('registration of vm, vcpu:0, vcpu:1',
                        lambda: (server.vm(VM_NAME) or (0, 0, set()))[2] == ROLES, 10)
        pid, uuid, roles, ids = server.vm(VM_NAME)
        kc.log(f'  ok: registered {sorted(roles)} as "{VM_NAME}" {took:.2f}s after QMP was up;'
               f' ids {ids}')
        if pid != qemu.pid:
            kc.fail(f'peer pid {pid}, QEMU is {qemu.pid}')
        if uuid != VM_UUID:
            kc.fail(f'uuid {uuid!r}, QEMU has -uuid {VM_UUID}')
        if ids['vm'] != f'kvm-{qemu.pid}':
            kc.fail(f'VM stats id {ids["vm"]}, expected kvm-{qemu.pid}')
        vcpu_pids = {r: int(re.match(r'kvm-(\d+)/', i).group(1)) for r, i in ids.items()
                     if r != 'vm'}
        tids = {int(t) for t in os.listdir(f'/proc/{qemu.pid}/task')}
        for r, p in vcpu_pids.items():
            if p not in tids:
                kc.fail(f'{r}: id pid {p} is not a thread of QEMU {qemu.pid}')
        threads = {f'vcpu:{c["cpu-index"]}': c['thread-id']
                   for c in qemu.qmp.cmd('query-cpus-fast')}
        if vcpu_pids != threads:
            kc.fail(f'vCPU stats ids name tasks {vcpu_pids}, QEMU\'s vCPU threads are {threads}')
        kc.log(f'  note: the vCPU stats ids name QEMU\'s vCPU threads ({threads}), not its '
               f'pid {qemu.pid}: KVM writes the id with the creating task\'s pid')
        if qemu.stats_fds() != (1, VCPUS):
            kc.fail(f'QEMU holds {qemu.stats_fds()} (VM, vCPU) stats fds, expected (1, {VCPUS})')
        schemas = qmp_schemas(qemu.qmp)
        standin_values(server, qemu, schemas, 'stopped at -S')
        qemu.run_for(0.5)
        files = standin_values(server, qemu, schemas, 'after running 0.5s, stopped')
        exits = sum(s.values[0] for r, f in files.items() if r != 'vm' for s in f.stats
                    if s.name == 'exits')
        if exits == 0:
            kc.fail('no vCPU exits after running the guest: the values prove nothing')
        # Each vCPU's first KVM_RUN told the shim its thread; QEMU runs a vCPU on the
        # thread that created it, which the stats id names.
        want = {r: int(re.fullmatch(r'kvm-(\d+)/vcpu-\d+', i).group(1))
                for r, i in server.vm(VM_NAME)[3].items() if r != 'vm'}
        took = wait_for('a "threads" message for every vCPU',
                        lambda: server.threads(VM_NAME) == want, 5,
                        lambda: f': got {server.threads(VM_NAME)}, expected {want}')
        kc.log(f'  ok: the shim named each vCPU\'s KVM_RUN thread {server.threads(VM_NAME)} '
               f'({took:.2f}s)')
        qemu.qmp.cmd('cont')
        for i in range(3):
            standin_values(server, qemu, schemas, f'running, reading {i + 1}', stopped=False)
            time.sleep(0.2)
        qemu.qmp.cmd('stop')

        # The exporter restarts: the shim registers everything again by itself.
        server.stop()
        down = time.monotonic()
        time.sleep(1.5)
        with StandIn(sock) as server2:
            took = wait_for('re-registration after the restart',
                            lambda: (server2.vm(VM_NAME) or (0, 0, set()))[2] == ROLES,
                            HEAL_SECONDS)
            kc.log(f'  ok: registered again {took:.2f}s after the new server came up '
                   f'({time.monotonic() - down:.2f}s after the old one went away)')
            standin_values(server2, qemu, schemas, 'after the restart')
            lines = check_shim_lines(qemu, 3, 'restart')
            if not lines:
                kc.fail('the shim said nothing about losing the exporter')

            t_quit = time.monotonic()
            rc = qemu.quit()
            if rc != 0:
                kc.fail(f'QEMU exited with {rc}')
            wait_for('the stand-in seeing the connection close',
                     lambda: any(n == VM_NAME for n, _ in server2.disconnects), 5)
            gone = [t for n, t in server2.disconnects if n == VM_NAME][0] - t_quit
            kc.log(f'  ok: connection closed {gone:.2f}s after QMP quit')
            if server2.problems or server.problems:
                kc.fail('protocol problems:\n  ' + '\n  '.join(server.problems + server2.problems))
    mine = kc.count_stats_fds(os.getpid())
    if mine != (0, 0):
        kc.fail(f'the stand-in still holds {mine} stats fds')
    print('PASS: shim hands off QEMU\'s stats fds per docs/handoff.md; values match QMP; '
          'restart healed; fds released on quit')


# --- mode: exporter -------------------------------------------------------------------
def vm_series(expo, name):
    return {k: v for k, v in expo.samples.items()
            if k[0].startswith('kvm_') and dict(k[1]).get('vm') == name}


def exporter_values(exp, qemu, schemas, what, stopped=True):
    """Scrape between two QMP readings; every series checked against them."""
    before = qmp_reading(qemu.qmp, schemas)
    text = exp.scrape()
    after = qmp_reading(qemu.qmp, schemas)
    expo = kc.Exposition(text)
    lo, families = kc.expected_vm(VM_NAME, before[0], before[1], per_vcpu=False)
    hi, _ = kc.expected_vm(VM_NAME, after[0], after[1], per_vcpu=False)
    mono = monotonic_samples(before[0], before[1])
    families[kc.INFO_FAMILY] = 'gauge'
    problems = list(expo.errors)
    got = {k: v for k, v in vm_series(expo, VM_NAME).items()
           if k[0] != kc.INFO_FAMILY and not k[0].startswith(kc.THREAD_PREFIX)}
    counts = {}
    for key, b in lo.items():
        if key not in got:
            problems.append(f'missing: {kc.fmt_key(key)}')
            continue
        how = between(key, got[key][0], b, hi[key], mono, problems, stopped)
        counts[how] = counts.get(how, 0) + 1
    for key in got:
        if key not in lo:
            problems.append(f'extra: {kc.fmt_key(key)} {got[key][1]}')
    problems += kc.check_families(expo, families)
    if not kc.report(problems[:30], f'{what}: {len(lo)} series against QMP ({counts})'):
        sys.exit(1)
    return expo


def check_info(expo, qemu):
    infos = [dict(k[1]) for k in expo.samples if k[0] == kc.INFO_FAMILY
             and dict(k[1]).get('vm') == VM_NAME]
    if len(infos) != 1:
        kc.fail(f'{len(infos)} kvm_vm_info series for vm="{VM_NAME}"')
    want = {'vm': VM_NAME, 'uuid': VM_UUID, 'pid': str(qemu.pid), 'vmm': 'qemu',
            'kvm_id': f'kvm-{qemu.pid}', 'source': ASSUMED_HANDOFF_SOURCE}
    if infos[0] != want:
        kc.fail(f'kvm_vm_info labels {infos[0]}, expected {want}')
    kc.log(f'  ok: kvm_vm_info {infos[0]}')


def diagnose(exp, qemu):
    """What the exporter and the shim said, for a failure message."""
    return (f'\n  exporter holds {kc.count_stats_fds(exp.pid)} stats fds; its log:\n'
            + exp.log_text() + '\n  shim lines on QEMU\'s stderr:\n' + '\n'.join(qemu.shim_lines()))


def registered(exp, name):
    """True once /metrics shows the VM with its VM and vCPU stats and the exporter holds all fds."""
    try:
        expo = kc.Exposition(exp.scrape())
    except OSError:
        return False
    names = {k[0] for k in vm_series(expo, name)}
    return (kc.INFO_FAMILY in names and any(n.startswith('kvm_vm_pages') for n in names)
            and any(n.startswith('kvm_vcpu_exits') for n in names)
            and kc.count_stats_fds(exp.pid) == (1, VCPUS))


def mode_exporter(shim, tmp):
    exe = kc.exporter_path()
    helptext = subprocess.run([exe, '--help'], capture_output=True, text=True).stdout
    if '--kvm.handoff-socket' not in helptext:
        kc.skip('the exporter has no --kvm.handoff-socket yet (hand-off server not built)')
    sock = os.path.join(tmp, 'h.sock')
    args = ['--no-kvm.procfs', f'--kvm.handoff-socket={sock}']
    exp = kc.Exporter(args)
    try:
        base = kc.count_stats_fds(exp.pid)
        if base != (0, 0):
            kc.fail(f'exporter holds {base} stats fds before any VM')
        with ShimQemu(tmp, 'qemu', shim, {'KVMSTATS_HANDOFF_SOCKET': sock}) as qemu:
            took = wait_for(f'vm="{VM_NAME}" with VM and vCPU stats on /metrics',
                            lambda: registered(exp, VM_NAME), 10,
                            lambda: diagnose(exp, qemu))
            kc.log(f'  ok: vm="{VM_NAME}" on /metrics {took:.2f}s after QMP was up; exporter '
                   f'holds {kc.count_stats_fds(exp.pid)} stats fds')
            schemas = qmp_schemas(qemu.qmp)
            expo = exporter_values(exp, qemu, schemas, 'stopped at -S')
            check_info(expo, qemu)
            qemu.run_for(0.5)
            expo = exporter_values(exp, qemu, schemas, 'after running 0.5s, stopped')
            exits = [v for k, v in vm_series(expo, VM_NAME).items()
                     if k[0] == 'kvm_vcpu_exits_total']
            if not exits or exits[0][0] == 0:
                kc.fail(f'kvm_vcpu_exits_total is {exits}: the guest did not run')
            qemu.qmp.cmd('cont')
            for i in range(3):
                exporter_values(exp, qemu, schemas, f'running, scrape {i + 1}', stopped=False)
                time.sleep(0.2)
            qemu.qmp.cmd('stop')

            # Restart the exporter on the same socket path; QEMU is not touched.
            if not exp.close():
                kc.fail(f'exporter exited with {exp.proc.returncode} on SIGTERM:\n'
                        + exp.log_text())
            down = time.monotonic()
            exp = kc.Exporter(args)
            took = wait_for(f'vm="{VM_NAME}" back after the exporter restart',
                            lambda: registered(exp, VM_NAME), HEAL_SECONDS,
                            lambda: diagnose(exp, qemu))
            kc.log(f'  ok: back {took:.2f}s after the new exporter answered '
                   f'({time.monotonic() - down:.2f}s after the old one exited)')
            expo = exporter_values(exp, qemu, schemas, 'after the exporter restart')
            check_info(expo, qemu)
            check_shim_lines(qemu, 3, 'exporter restart')

            rc = qemu.quit()
            if rc != 0:
                kc.fail(f'QEMU exited with {rc}')
            left = vm_series(kc.Exposition(exp.scrape()), VM_NAME)
            if left:
                kc.fail(f'{len(left)} series of vm="{VM_NAME}" on the first scrape after QEMU '
                        f'exited, e.g. {kc.fmt_key(next(iter(left)))}')
            kc.log('  ok: the VM is gone from the first scrape after QEMU exited')
            took = wait_for('the exporter releasing the stats fds',
                            lambda: kc.count_stats_fds(exp.pid) == (0, 0), 5)
            kc.log(f'  ok: exporter stats fds back to 0 ({took:.2f}s)')
    finally:
        if not exp.close():
            kc.fail(f'exporter exited with {exp.proc.returncode} on SIGTERM:\n{exp.log_text()}')
    print('PASS: QEMU under the shim observed end to end through the exporter; values within '
          'QMP readings; restart healed; VM and fds released on quit')


# --- mode: threads --------------------------------------------------------------------
def listed(exp, name):
    try:
        expo = kc.Exposition(exp.scrape())
    except OSError:
        return False
    return any(k[0] == kc.INFO_FAMILY for k in vm_series(expo, name))


def threads_mapped(exp, name, n):
    try:
        expo = kc.Exposition(exp.scrape())
    except OSError:
        return False
    return {v for (k, v) in kc.thread_series(expo, name) if k == 'cpu'} == set(range(n))


def check_qemu_threads(exp, qemu, name, what):
    """The threads the exporter chose are QEMU's vCPU threads, one per vCPU; returns them."""
    chosen = kc.chosen_threads(exp, name)
    problems = []
    truth = {}
    for v in range(VCPUS):
        tids = chosen.get(v, set())
        if len(tids) != 1:
            problems.append(f'vCPU {v} mapped to threads {sorted(tids)}')
            continue
        tid = next(iter(tids))
        try:
            with open(f'/proc/{qemu.pid}/task/{tid}/comm') as f:
                comm = f.read().strip()
        except OSError as e:
            problems.append(f'vCPU {v}: thread {tid} is not a thread of QEMU ({e})')
            continue
        if comm != f'CPU {v}/KVM':
            problems.append(f'vCPU {v}: thread {tid} is named {comm!r}')
        truth[v] = tid
    held = {t for p, t in kc.schedstat_fds(exp.pid) if p == qemu.pid}
    if held != set(truth.values()):
        problems.append(f'exporter holds schedstat files of {sorted(held)}, '
                        f'expected {sorted(truth.values())}')
    if not kc.report(problems, f'{what}: every vCPU mapped to its "CPU <n>/KVM" thread'):
        sys.exit(1)
    return truth


def mode_threads(shim, tmp, from_shim=False):
    if os.geteuid() != 0 and not from_shim:
        kc.skip('mapping vCPU threads reads /proc/PID/task/TID/syscall: needs root')
    sock = os.path.join(tmp, 'h.sock')
    args = [f'--kvm.handoff-socket={sock}', '--kvm.rescan-interval=200ms', '--kvm.per-vcpu',
            '--log.level=debug'] + (['--no-kvm.procfs'] if from_shim else [])
    # A name of its own: other QEMUs on the host (web-1) are seen by procfs discovery too.
    name = f'threads-{os.getpid()}'
    ok = True
    with kc.Exporter(args) as exp, \
            ShimQemu(tmp, 'qemu', shim, {'KVMSTATS_HANDOFF_SOCKET': sock},
                 debug_threads=True, name=name) as qemu:
        if from_shim:
            # Stopped at -S no vCPU has called KVM_RUN: the shim has nothing to say yet.
            wait_for(f'vm="{name}" registered', lambda: listed(exp, name), 10,
                     lambda: diagnose(exp, qemu))
            time.sleep(0.5)
            expo = kc.Exposition(exp.scrape())
            if kc.thread_series(expo, name) or \
                    kc.thread_unmapped(expo, name) != {'not_seen': VCPUS}:
                kc.fail(f'before any KVM_RUN: thread series {kc.thread_series(expo, name)}, '
                        f'unmapped {kc.thread_unmapped(expo, name)}')
            kc.log(f'  ok: stopped at -S, no thread known: {VCPUS} vCPUs counted as not_seen')
            qemu.qmp.cmd('cont')
        took = wait_for(f'vm="{name}" with a thread for each vCPU',
                        lambda: threads_mapped(exp, name, VCPUS), 15, lambda: diagnose(exp, qemu))
        kc.log(f'  ok: {VCPUS} vCPU threads mapped {took:.2f}s after '
               f'{"cont" if from_shim else "QMP was up (stopped at -S)"}')
        if from_shim:
            qemu.qmp.cmd('stop')
        truth = check_qemu_threads(exp, qemu, name, 'from the shim' if from_shim
                                   else 'stopped at -S')
        for i in range(2):
            ok &= kc.report(kc.bracket_threads(exp, qemu.pid, name, truth, True),
                            f'stopped: values within this test\'s readings (scrape {i + 1})')
        before = {v: kc.schedstat(qemu.pid, t) for v, t in truth.items()}
        qemu.qmp.cmd('cont')
        time.sleep(0.5)
        for i in range(3):
            ok &= kc.report(kc.bracket_threads(exp, qemu.pid, name, truth, True),
                            f'running: values within this test\'s readings (scrape {i + 1})')
            time.sleep(0.2)
        qemu.qmp.cmd('stop')
        ran = kc.schedstat(qemu.pid, truth[0])['cpu'] - before[0]['cpu']
        ok &= kc.report([] if ran > 0 else ['vCPU 0 thread used no CPU time while running'],
                        f'the guest ran: vCPU 0 thread +{float(ran):.4f}s CPU')
        check_qemu_threads(exp, qemu, name, 'after running')
        check_shim_lines(qemu, 0, 'threads')
    if not ok:
        sys.exit(1)
    print('PASS: QEMU\'s vCPU threads found and named "CPU <n>/KVM"; their schedstat values '
          'exported within this test\'s own readings, stopped and running')


# --- mode: robust ---------------------------------------------------------------------
def qemu_healthy(qemu, what):
    """QEMU answers QMP, runs its guest and reads its own stats."""
    qemu.run_for(0.3)
    if qemu.qmp.cmd('query-status')['status'] != 'paused':
        kc.fail(f'{what}: QEMU not paused after stop')
    if len(qemu.qmp.cmd('query-stats', target='vcpu')) != VCPUS:
        kc.fail(f'{what}: query-stats does not list {VCPUS} vCPUs')


QMP_STARTS = []  # how long QEMU took to answer QMP in each robust case


def robust_case(shim, tmp, tag, env, want_fds, at_most_lines, wait=3.5, max_start=None):
    with ShimQemu(tmp, tag, shim, env) as qemu:
        kc.log(f'  QMP up {qemu.qmp_ready:.2f}s after start')
        QMP_STARTS.append(qemu.qmp_ready)
        # A VMM thread waiting for the exporter's answer (2 s timeout) would show here.
        if max_start is not None and qemu.qmp_ready >= max_start:
            kc.fail(f'{tag}: QMP up only {qemu.qmp_ready:.2f}s after start')
        qemu_healthy(qemu, tag)
        time.sleep(wait)  # several retry periods of the shim
        qemu_healthy(qemu, tag)
        if qemu.stats_fds() != want_fds:
            kc.fail(f'{tag}: QEMU holds {qemu.stats_fds()} stats fds, expected {want_fds}')
        t = time.monotonic()
        rc = qemu.quit()
        if rc != 0:
            kc.fail(f'{tag}: QEMU exited with {rc}:\n{qemu.stderr_text()}')
        lines = check_shim_lines(qemu, at_most_lines, tag)
        kc.log(f'  ok: {tag}: QEMU ran, answered QMP and quit cleanly in '
               f'{time.monotonic() - t:.2f}s; {len(lines)} shim line(s); stats fds {want_fds}')
        return lines


def mode_robust(shim, tmp):
    full = (1, VCPUS)
    missing = os.path.join(tmp, 'absent', 'h.sock')
    lines = robust_case(shim, tmp, 'no-exporter', {'KVMSTATS_HANDOFF_SOCKET': missing}, full, 1)
    if len(lines) != 1:
        kc.fail('no shim line although the exporter is absent')

    sock = os.path.join(tmp, 'refusing.sock')
    with StandIn(sock, mode='refuse') as server:
        lines = robust_case(shim, tmp, 'refusing', {'KVMSTATS_HANDOFF_SOCKET': sock}, full, 1,
                            wait=5)
        # Backoff after refusals: 1 s, 2 s, 4 s...: a handful of attempts, not one per second.
        if not 2 <= server.registrations <= 5:
            kc.fail(f'{server.registrations} registrations in ~6 s against a refusing exporter')
        kc.log(f'  ok: {server.registrations} registration attempts in ~6 s (backing off)')

    # Measured against the cases above, where nothing can make QEMU wait: a
    # nested KVM host starts QEMU in seconds, bare KVM in a fraction of one.
    sock = os.path.join(tmp, 'mute.sock')
    with StandIn(sock, mode='mute'):
        robust_case(shim, tmp, 'mute', {'KVMSTATS_HANDOFF_SOCKET': sock}, full, 1, wait=5,
                    max_start=max(QMP_STARTS) + 1.5)

    sock = os.path.join(tmp, 'disabled.sock')
    with StandIn(sock) as server:
        robust_case(shim, tmp, 'disabled', {'KVMSTATS_HANDOFF_SOCKET': sock,
                                            'KVMSTATS_PRELOAD_DISABLE': '1'}, (0, 0), 0, wait=1.5)
        if server.registrations:
            kc.fail('KVMSTATS_PRELOAD_DISABLE=1 still handed off')

    robust_case(shim, tmp, 'no-handoff', {'KVMSTATS_HANDOFF_SOCKET': ''}, full, 0, wait=1.5)
    print('PASS: QEMU unaffected by an absent, refusing or mute exporter; disabled shim is a '
          'pass-through; empty socket path keeps fds only')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('shim')
    ap.add_argument('--mode', choices=['exporter', 'standin', 'robust', 'threads', 'threads_shim'], required=True)
    a = ap.parse_args()
    require_qemu()
    kc.require_kvm()
    shim = os.path.abspath(a.shim)
    if not os.path.exists(shim):
        kc.fail(f'shim {shim} not built')
    with tempfile.TemporaryDirectory(prefix='qemu-shim-') as tmp:
        {'exporter': mode_exporter, 'standin': mode_standin, 'robust': mode_robust,
         'threads': mode_threads,
         'threads_shim': lambda shim, tmp: mode_threads(shim, tmp, from_shim=True)}[a.mode](
            shim, tmp)


if __name__ == '__main__':
    main()
