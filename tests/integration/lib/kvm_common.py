# SPDX-License-Identifier: MIT
"""Shared helpers for the real-kernel tests (stdlib only).

This module is deliberately an *independent* implementation of the metric
translation contract (docs: design.md section 5). It computes the samples the
exporter must produce from the fixture's own dumps of its stats fds, and parses
the exposition keeping every value as an exact Fraction, so a comparison is
exact: no float ever enters it.

Assumptions about the exporter that go beyond the written contract are
collected in the ASSUMED_* constants below, so they are easy to align.
"""

import json
import os
import re
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from fractions import Fraction

from lib.net import free_port  # noqa: F401 (kc.free_port for the tests)

# --- what this checker assumes beyond design.md section 5 ---------------------
ASSUMED_VM_LABEL = 'pid-{pid}'        # a VMM without a -name option
ASSUMED_PROCFS_SOURCE = 'procfs'      # kvm_vm_info{source} for procfs discovery
ASSUMED_KVM_ID = 'kvm-{pid}'          # kvm_vm_info{kvm_id}: the VM stats file's id
INFO_FAMILY = 'kvm_vm_info'
# The vCPU thread families (schedstat, not KVM stats) are checked by
# test_vcpu_threads.py against the threads' own files, not here.
THREAD_PREFIX = 'kvm_vcpu_thread_'
INFO_LABELS = frozenset({'vm', 'uuid', 'pid', 'vmm', 'kvm_id', 'source'})  # unknown ones left out
# In per-vCPU mode vCPU series carry vcpu="N" *instead of* the per-VM aggregate.

# --- KVM stats encoding (include/uapi/linux/kvm.h) ----------------------------
CUMULATIVE, INSTANT, PEAK, LINEAR_HIST, LOG_HIST = range(5)
UNIT_NONE, UNIT_BYTES, UNIT_SECONDS, UNIT_CYCLES, UNIT_BOOLEAN = range(5)
BASE_POW10, BASE_POW2 = range(2)
BASE_VALUE = {BASE_POW10: 10, BASE_POW2: 2}
UNIT_SUFFIX = {UNIT_NONE: '', UNIT_BYTES: '_bytes', UNIT_SECONDS: '_seconds',
               UNIT_CYCLES: '_cycles', UNIT_BOOLEAN: ''}
# Trailing tokens dropped from a name because the unit suffix adds them back.
UNIT_TOKENS = {UNIT_SECONDS: ('_ns', '_us', '_ms', '_seconds'),
               UNIT_BYTES: ('_bytes',), UNIT_CYCLES: ('_cycles',)}
INF = 'inf'  # the le of the last bucket; sorts after every Fraction by key below

HEADER = struct.Struct('=6I')        # flags name_size num_desc id_off desc_off data_off
DESC = struct.Struct('=IhHII')       # flags exponent size offset bucket_size


def log(msg):
    print(msg, flush=True)


def skip(reason):
    """Meson's SKIP: exit 77, loudly."""
    print('SKIP: ' + reason, file=sys.stderr, flush=True)
    sys.exit(77)


def fail(msg):
    print('FAIL: ' + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def require_kvm():
    if not os.path.exists('/dev/kvm'):
        skip('/dev/kvm is missing: real-kernel KVM tests cannot run here')
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        skip('/dev/kvm is not accessible to this user')
    # A /dev/kvm that cannot make a VM (no SVM/VMX behind it) is as good as none.
    import fcntl
    kvm = os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC)
    try:
        os.close(fcntl.ioctl(kvm, 0xAE01, 0))  # KVM_CREATE_VM
    except OSError as e:
        skip(f'/dev/kvm cannot make a VM here (KVM_CREATE_VM: {e.strerror})')
    finally:
        os.close(kvm)


def exporter_path():
    path = os.environ.get('EXPORTER')
    if not path or not os.access(path, os.X_OK):
        fail(f'EXPORTER={path!r} is not an executable (run through meson test)')
    return path


def fixture_path(argv):
    path = argv[1] if len(argv) > 1 else os.environ.get('KVMTEST_VMM')
    if not path or not os.access(path, os.X_OK):
        fail(f'kvmtest_vmm not found ({path!r}); pass its path as the first argument')
    return path


# --- stats model ---------------------------------------------------------------
class Stat:
    def __init__(self, name, flags, exponent, size, offset, bucket_size, values):
        self.name, self.flags, self.exponent = name, flags, exponent
        self.size, self.offset, self.bucket_size = size, offset, bucket_size
        self.values = values

    type = property(lambda self: self.flags & 0xf)
    unit = property(lambda self: (self.flags >> 4) & 0xf)
    base = property(lambda self: (self.flags >> 8) & 0xf)

    def supported(self):
        return self.type <= LOG_HIST and self.unit <= UNIT_BOOLEAN and self.base <= BASE_POW2

    def scale(self):
        return Fraction(BASE_VALUE[self.base]) ** self.exponent

    def schema(self):
        return (self.name, self.flags, self.exponent, self.size, self.offset, self.bucket_size)


class StatsFile:
    def __init__(self, kind, vcpu, file_id, stats):
        self.kind, self.vcpu, self.id, self.stats = kind, vcpu, file_id, stats


def load_dump(path):
    """A fixture dump (kvmtest_vmm --dump-dir): {'pid', 'files': [StatsFile], ...}."""
    with open(path) as f:
        d = json.load(f)
    files = []
    for fd in d['files']:
        stats = [Stat(s['name'], s['flags'], s['exponent'], s['size'], s['offset'],
                      s['bucket_size'], [int(v) for v in s['values']]) for s in fd['stats']]
        files.append(StatsFile(fd['kind'], fd['vcpu'], fd['id'], stats))
    d['files'] = files
    return d


def parse_blob(blob):
    """Parses a saved stats file; raises ValueError on anything a kernel would not write."""
    flags, name_size, num_desc, id_off, desc_off, data_off = HEADER.unpack_from(blob, 0)
    if flags or not name_size:
        raise ValueError('bad header')
    file_id = blob[id_off:id_off + name_size].split(b'\0')[0].decode('latin-1')
    stride = DESC.size + name_size
    stats = []
    for i in range(num_desc):
        o = desc_off + i * stride
        dflags, exp, size, off, bsize = DESC.unpack_from(blob, o)
        name = blob[o + DESC.size:o + stride].split(b'\0')[0].decode('latin-1')
        values = list(struct.unpack_from(f'={size}Q', blob, data_off + off))
        stats.append(Stat(name, dflags, exp, size, off, bsize, values))
    m = re.fullmatch(r'kvm-\d+/vcpu-(\d+)', file_id)
    return StatsFile('vcpu' if m else 'vm', int(m.group(1)) if m else -1, file_id, stats)


# --- the translation contract (design.md section 5) ----------------------------
def stat_name(desc_name, stype, unit):
    """<stat> of a family name, with its unit suffix."""
    s = ''.join(c if c in 'abcdefghijklmnopqrstuvwxyz0123456789_' else '_'
                for c in desc_name.lower())
    if stype in (LINEAR_HIST, LOG_HIST) and s.endswith('_hist'):
        s = s[:-len('_hist')]
    for tok in UNIT_TOKENS.get(unit, ()):
        if s.endswith(tok):
            s = s[:-len(tok)]
            break
    return s + UNIT_SUFFIX[unit]


class Family:
    """One metric family: type 'counter' | 'gauge' | 'histogram'."""

    def __init__(self, name, mtype, index, agg):
        self.name, self.type, self.index, self.agg = name, mtype, index, agg
        self.sum_index = None  # histograms: companion cumulative stat
        self.le = None         # histograms: bucket bounds (Fraction, last INF)


def translate(stats, kind):
    """Families of one schema; kind 'vm' or 'vcpu'. Raises on a name collision."""
    prefix = 'kvm_vm_' if kind == 'vm' else 'kvm_vcpu_'
    fams, by_name = [], {}
    for i, st in enumerate(stats):
        if not st.supported():
            continue
        if st.type in (LINEAR_HIST, LOG_HIST):
            f = Family(prefix + stat_name(st.name, st.type, st.unit), 'histogram', i, 'sum')
            sc = st.scale()
            if st.type == LINEAR_HIST:
                f.le = [((k + 1) * st.bucket_size - 1) * sc for k in range(st.size - 1)]
            else:
                f.le = [(2 ** k - 1) * sc for k in range(st.size - 1)]
            f.le.append(INF)
        elif st.size != 1:
            continue  # a scalar type with several values has no representation
        elif st.unit == UNIT_BOOLEAN or st.type in (INSTANT, PEAK):
            f = Family(prefix + stat_name(st.name, st.type, st.unit), 'gauge', i,
                       'max' if st.type == PEAK else 'sum')
        else:
            f = Family(prefix + stat_name(st.name, st.type, st.unit), 'counter', i, 'sum')
        fams.append(f)
        by_name.setdefault(f.name, []).append(f)
    # A histogram and a cumulative stat of the same family name: the latter is
    # the histogram's exact sum, and is not exported on its own.
    out = []
    for f in fams:
        same = by_name[f.name]
        if len(same) == 1:
            out.append(f)
            continue
        hists = [g for g in same if g.type == 'histogram']
        sums = [g for g in same if g.type == 'counter']
        if len(same) == 2 and len(hists) == 1 and len(sums) == 1:
            if f is hists[0]:
                f.sum_index = sums[0].index
                out.append(f)
            continue
        raise ValueError(f'family name collision in the contract: {f.name}')
    return out


def _value(st, raw):
    if st.unit == UNIT_BOOLEAN:
        return Fraction(1 if raw else 0)
    return raw * st.scale()


def family_samples(fam, stats_list, labels):
    """Samples of one family over one or more files (aggregated when several)."""
    lab = tuple(sorted(labels.items()))
    out = {}
    if fam.type != 'histogram':
        vals = [_value(s[fam.index], s[fam.index].values[0]) for s in stats_list]
        v = max(vals) if fam.agg == 'max' else sum(vals, Fraction(0))
        suffix = '_total' if fam.type == 'counter' else ''
        out[(fam.name + suffix, lab)] = v
        return out
    buckets = [sum(s[fam.index].values[k] for s in stats_list) for k in range(len(fam.le))]
    cum = 0
    for k, le in enumerate(fam.le):
        cum += buckets[k]
        le_s = '+Inf' if le == INF else format_decimal(le)
        out[(fam.name + '_bucket', tuple(sorted(list(labels.items()) + [('le', le_s)])))] = Fraction(cum)
    out[(fam.name + '_count', lab)] = Fraction(cum)
    if fam.sum_index is not None:
        out[(fam.name + '_sum', lab)] = sum(
            (_value(s[fam.sum_index], s[fam.sum_index].values[0]) for s in stats_list),
            Fraction(0))
    return out


def expected_vm(vm_label, vm_file, vcpu_files, per_vcpu):
    """(samples, families) of one VM: samples {(name, labels): Fraction}, families {name: type}."""
    samples, families = {}, {}
    if vm_file is not None:
        for fam in translate(vm_file.stats, 'vm'):
            families[fam.name] = fam.type
            samples.update(family_samples(fam, [vm_file.stats], {'vm': vm_label}))
    if vcpu_files:
        schema = [s.schema() for s in vcpu_files[0].stats]
        for v in vcpu_files:
            if [s.schema() for s in v.stats] != schema:
                raise ValueError(f'{v.id}: vCPU schemas differ within one VM')
        for fam in translate(vcpu_files[0].stats, 'vcpu'):
            families[fam.name] = fam.type
            if per_vcpu:
                for v in vcpu_files:
                    samples.update(family_samples(fam, [v.stats],
                                                  {'vm': vm_label, 'vcpu': str(v.vcpu)}))
            else:
                samples.update(family_samples(fam, [v.stats for v in vcpu_files],
                                              {'vm': vm_label}))
    return samples, families


def expected_from_dumps(dumps, per_vcpu):
    """Expected samples of fixture VMs (kvm_vm_info checked separately)."""
    samples, families = {}, {}
    for d in dumps:
        vm = [f for f in d['files'] if f.kind == 'vm']
        vcpus = sorted((f for f in d['files'] if f.kind == 'vcpu'), key=lambda f: f.vcpu)
        s, f = expected_vm(ASSUMED_VM_LABEL.format(pid=d['pid']), vm[0] if vm else None,
                           vcpus, per_vcpu)
        samples.update(s)
        families.update(f)
    families[INFO_FAMILY] = 'gauge'
    return samples, families


def format_decimal(x):
    """The canonical exact decimal of a Fraction: no exponent, no trailing zeros."""
    if x == INF:
        return '+Inf'
    sign, x = ('-' if x < 0 else ''), abs(x)
    # The smallest k with x * 10^k an integer exists iff den = 2^a * 5^b.
    d, twos, fives = x.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d != 1:
        raise ValueError(f'{x} has no finite decimal expansion')
    k = max(twos, fives)
    digits = str(x.numerator * 10 ** k // x.denominator)
    if k == 0:
        return sign + digits
    digits = digits.rjust(k + 1, '0')
    return sign + digits[:-k] + '.' + digits[-k:]


def canonical_float(x):
    """The OpenMetrics canonical spelling of an "le" bound (a Fraction or INF).

    Go's strconv.FormatFloat(f, 'g', -1, 64) with ".0" appended when there is
    neither a point nor an exponent (OpenMetrics 1.0, "Canonical Numbers";
    Prometheus 3 normalises every le to it). Python's repr() finds the same
    shortest digits; only the switch to exponent notation differs (Go: below
    1e-4 or from 1e6 on).
    """
    if x == INF:
        return '+Inf'
    f = float(x)  # correctly rounded, as Go's ParseFloat of the exact decimal
    if f == 0:
        return '0.0'
    sign, digits, exp = Decimal(repr(f)).as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exp += 1
    ds = ''.join(map(str, digits))
    e10 = exp + len(ds) - 1  # the value is d.ddd * 10^e10
    if e10 < -4 or e10 >= 6:
        s = ds[0] + ('.' + ds[1:] if len(ds) > 1 else '') + f'e{"-" if e10 < 0 else "+"}{abs(e10):02d}'
    elif e10 >= 0:
        whole = e10 + 1
        s = ds.ljust(whole, '0') if len(ds) <= whole else ds[:whole] + '.' + ds[whole:]
    else:
        s = '0.' + '0' * (-e10 - 1) + ds
    if '.' not in s and 'e' not in s:
        s += '.0'
    return ('-' if sign else '') + s


def openmetrics_expected(expected):
    """Expected samples (expected_from_dumps) with le spelled as OpenMetrics does."""
    out = {}
    for (name, labels), v in expected.items():
        labels = tuple((k, canonical_float(INF if lv == '+Inf' else Fraction(lv)) if k == 'le' else lv)
                       for k, lv in labels)
        out[(name, labels)] = v
    return out


# --- exposition parsing (text format 0.0.4) -------------------------------------
_NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
_SAMPLE = re.compile(r'(' + _NAME + r')(\{(.*)\})?\s+(\S+)(\s+-?\d+)?\s*$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_value(s):
    if s in ('+Inf', 'Inf', '+inf', 'inf'):
        return INF
    if s in ('-Inf', '-inf'):
        return '-inf'
    if s in ('NaN', 'nan'):
        return 'nan'
    return Fraction(s)  # exact: Fraction('1.23456789') is 123456789/10^8


def _unescape(v):
    return re.sub(r'\\(.)', lambda m: '\n' if m.group(1) == 'n' else m.group(1), v)


class Exposition:
    """samples {(name, labels tuple)}: (value, raw string); types/helps by family."""

    def __init__(self, text):
        self.samples, self.types, self.helps, self.errors = {}, {}, {}, []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if line.startswith('#'):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == 'TYPE':
                    if parts[2] in self.types:
                        self.errors.append(f'line {n}: second TYPE for {parts[2]}')
                    self.types[parts[2]] = parts[3].strip() if len(parts) > 3 else ''
                elif len(parts) >= 3 and parts[1] == 'HELP':
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ''
                continue
            m = _SAMPLE.match(line)
            if not m:
                self.errors.append(f'line {n}: unparsable: {line!r}')
                continue
            labels, rest = [], m.group(3) or ''
            while rest.strip():
                lm = _LABEL.match(rest)
                if not lm:
                    self.errors.append(f'line {n}: bad labels: {line!r}')
                    break
                labels.append((lm.group(1), _unescape(lm.group(2))))
                rest = rest[lm.end():]
            key = (m.group(1), tuple(sorted(labels)))
            if key in self.samples:
                self.errors.append(f'line {n}: duplicate series {fmt_key(key)}')
            try:
                self.samples[key] = (parse_value(m.group(4)), m.group(4))
            except ValueError:
                self.errors.append(f'line {n}: bad value {m.group(4)!r}')


def fmt_key(key):
    name, labels = key
    return name + '{' + ','.join(f'{k}="{v}"' for k, v in labels) + '}'


def compare(expo, expected, families, our_vms, exporter_pid=None, limit=10):
    """Exact comparison of the kvm_ part of an exposition; returns a list of problems.

    Series of VMs that are not ours (other VMMs on the host) are ignored, but
    every kvm_ series must carry a vm label, and the family set must be exact.
    """
    problems = list(expo.errors)
    got = {}
    foreign = 0
    for key, val in expo.samples.items():
        name, labels = key
        if not name.startswith('kvm_') or name.startswith(THREAD_PREFIX):
            continue
        ld = dict(labels)
        if 'vm' not in ld:
            problems.append(f'series without vm label: {fmt_key(key)}')
        elif exporter_pid is not None and ld['vm'] == ASSUMED_VM_LABEL.format(pid=exporter_pid):
            problems.append(f'exporter reports its own fds as a VM: {fmt_key(key)}')
        elif ld['vm'] in our_vms:
            if name != INFO_FAMILY:
                got[key] = val
        else:
            foreign += 1
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    wrong = [(k, expected[k], got[k]) for k in expected if k in got and got[k][0] != expected[k]]
    badfmt = [(k, got[k][1]) for k in expected if k in got and got[k][0] == expected[k]
              and got[k][1] != format_decimal(expected[k])]
    for k in missing[:limit]:
        problems.append(f'missing: {fmt_key(k)} (expected {format_decimal(expected[k])})')
    for k in extra[:limit]:
        problems.append(f'extra: {fmt_key(k)} {got[k][1]}')
    for k, e, g in wrong[:limit]:
        problems.append(f'value: {fmt_key(k)} exported {g[1]}, expected {format_decimal(e)}')
    for k, raw in badfmt[:limit]:
        problems.append(f'format: {fmt_key(k)} printed {raw!r}, canonical {format_decimal(got[k][0])!r}')
    for what, lst in (('missing', missing), ('extra', extra), ('wrong', wrong), ('badly formatted', badfmt)):
        if len(lst) > limit:
            problems.append(f'... {len(lst) - limit} more {what}')
    problems += check_families(expo, families)
    log(f'  compared {len(expected)} expected series of {len(our_vms)} VMs: '
        f'{len(missing)} missing, {len(extra)} extra, {len(wrong)} wrong values, '
        f'{len(badfmt)} badly formatted; {foreign} foreign series ignored; '
        f'{len(families)} families')
    return problems


def check_families(expo, families):
    """The set of kvm_ families (by TYPE line and by sample) is exactly the expected one."""
    problems = []
    typed = {}
    for name, t in expo.types.items():
        if name.startswith('kvm_') and not name.startswith(THREAD_PREFIX):
            base = name[:-len('_total')] if t == 'counter' and name.endswith('_total') \
                and name[:-len('_total')] in families else name
            typed[base] = (name, t)
    for fam, t in sorted(families.items()):
        if fam not in typed:
            problems.append(f'family without TYPE line: {fam} ({t})')
        elif typed[fam][1] != t:
            problems.append(f'family {fam}: TYPE {typed[fam][1]}, expected {t}')
        elif typed[fam][0] not in expo.helps:
            problems.append(f'family {fam}: no HELP line')
    for fam in sorted(set(typed) - set(families)):
        problems.append(f'unexpected family: {typed[fam][0]} ({typed[fam][1]})')
    # Samples too, whatever their VM: a family is a family even without a TYPE line.
    untyped = set()
    for name, _ in expo.samples:
        if not name.startswith('kvm_') or name.startswith(THREAD_PREFIX) or name in families:
            continue
        base, _, suffix = name.rpartition('_')
        if families.get(base) == {'total': 'counter', 'bucket': 'histogram', 'count': 'histogram',
                                  'sum': 'histogram'}.get(suffix):
            continue
        untyped.add(name)
    for name in sorted(untyped)[:10]:
        problems.append(f'series of no expected family: {name}')
    return problems


def check_info(expo, dumps):
    """kvm_vm_info: one series per fixture VM, value 1, the assumed labels."""
    problems = []
    infos = [(dict(k[1]), v) for k, v in expo.samples.items() if k[0] == INFO_FAMILY]
    for d in dumps:
        pid = d['pid']
        vm = ASSUMED_VM_LABEL.format(pid=pid)
        mine = [(ld, v) for ld, v in infos if ld.get('vm') == vm]
        if len(mine) != 1:
            problems.append(f'{INFO_FAMILY}{{vm="{vm}"}}: {len(mine)} series, expected 1')
            continue
        ld, v = mine[0]
        if not set(ld) <= INFO_LABELS:
            problems.append(f'{INFO_FAMILY}{{vm="{vm}"}}: labels {sorted(ld)}, '
                            f'expected a subset of {sorted(INFO_LABELS)}')
        empty = sorted(k for k, val in ld.items() if val == '')
        if empty:
            problems.append(f'{INFO_FAMILY}{{vm="{vm}"}}: empty label values {empty} '
                            '(unknown fields must be left out)')
        if v[0] != 1:
            problems.append(f'{INFO_FAMILY}{{vm="{vm}"}}: value {v[1]}, expected 1')
        want = {'pid': str(pid), 'kvm_id': ASSUMED_KVM_ID.format(pid=pid),
                'source': ASSUMED_PROCFS_SOURCE}
        for k, w in want.items():
            if ld.get(k) != w:
                problems.append(f'{INFO_FAMILY}{{vm="{vm}"}}: {k}="{ld.get(k)}", expected "{w}"')
    return problems


def report(problems, what):
    if problems:
        print(f'FAIL: {what}: {len(problems)} problems', file=sys.stderr)
        for p in problems:
            print('  ' + p, file=sys.stderr)
        sys.stderr.flush()
        return False
    log(f'  ok: {what}')
    return True


def finish(problems, what):
    """The end of a test: FAIL (exit 1) listing problems, else PASS."""
    if not report(problems, what):
        sys.exit(1)
    print('PASS')


# --- vCPU threads (schedstat) --------------------------------------------------
THREAD_FAMILIES = {'cpu': 'kvm_vcpu_thread_cpu_seconds_total',
            'delay': 'kvm_vcpu_thread_run_delay_seconds_total',
            'slices': 'kvm_vcpu_thread_timeslices_total'}
THREAD_UNMAPPED = 'kvm_vcpu_thread_unmapped'
THREAD_FOUND = re.compile(r'msg="vCPU thread found" vm=(\S+) vcpu=(\d+) tid=(\d+)')


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
        for key, fam in THREAD_FAMILIES.items():
            if name == fam:
                out[(key, int(ld['vcpu']) if 'vcpu' in ld else None)] = value
    return out


def thread_unmapped(expo, vm):
    return {dict(k[1])['reason']: v[0] for k, v in expo.samples.items()
            if k[0] == THREAD_UNMAPPED and dict(k[1]).get('vm') == vm}


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


def bracket_threads(ex, pid, vm, truth, per_vcpu):
    """One scrape between two readings of every vCPU thread; returns the problems."""
    before = {v: schedstat(pid, t) for v, t in truth.items()}
    expo = Exposition(ex.scrape())
    after = {v: schedstat(pid, t) for v, t in truth.items()}
    got = thread_series(expo, vm)
    problems = list(expo.errors)
    for key in THREAD_FAMILIES:
        if per_vcpu:
            ranges = {v: (before[v][key], after[v][key]) for v in truth}
        else:
            ranges = {None: (sum(b[key] for b in before.values()),
                             sum(a[key] for a in after.values()))}
        for v, (lo, hi) in ranges.items():
            val = got.get((key, v))
            if val is None:
                problems.append(f'{THREAD_FAMILIES[key]}{{vm="{vm}",vcpu={v}}} missing')
            elif not lo <= val <= hi:
                problems.append(f'{THREAD_FAMILIES[key]}{{vm="{vm}",vcpu={v}}} = {float(val)} '
                                f'outside [{float(lo)}, {float(hi)}]')
    extra = {k for k in got if k[0] in THREAD_FAMILIES and (k[1] is None) == per_vcpu}
    if extra:
        problems.append(f'series of the other mode: {sorted(extra, key=str)}')
    if thread_unmapped(expo, vm):
        problems.append(f'unmapped vCPUs reported: {thread_unmapped(expo, vm)}')
    return problems


def full_log(ex):
    ex.stderr.seek(0)
    return ex.stderr.read().decode(errors='replace')


def chosen_threads(ex, vm):
    """{vcpu: {tids}} the exporter said (debug log) it mapped, for one VM."""
    chosen = {}
    for m in THREAD_FOUND.finditer(full_log(ex)):
        if m.group(1) == vm:
            chosen.setdefault(int(m.group(2)), set()).add(int(m.group(3)))
    return chosen


# --- processes -----------------------------------------------------------------
def count_stats_fds(pid):
    """(vm stats fds, vcpu stats fds) open in a process, by their /proc links."""
    vm = vcpu = 0
    d = f'/proc/{pid}/fd'
    for fd in os.listdir(d):
        try:
            link = os.readlink(f'{d}/{fd}')
        except OSError:
            continue
        if link == 'anon_inode:kvm-vm-stats':
            vm += 1
        elif link.startswith('anon_inode:kvm-vcpu-stats:'):
            vcpu += 1
    return vm, vcpu


def stats_fds_elsewhere(exclude):
    """Stats fds held by every process but `exclude`: what a full scan would find."""
    vm = vcpu = 0
    for p in os.listdir('/proc'):
        if not p.isdigit() or int(p) in exclude:
            continue
        try:
            a, b = count_stats_fds(int(p))
        except OSError:
            continue
        vm, vcpu = vm + a, vcpu + b
    return vm, vcpu


def readline_within(proc, timeout, what):
    """A line from proc's stdout (bytes); kills proc and fails after timeout seconds."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        proc.kill()
        fail(f'{what} said nothing for {timeout}s')
    return proc.stdout.readline()


class Fixture:
    """kvmtest_vmm running N VMs, with its dump directory; a context manager."""

    def __init__(self, path, vms, vcpus, hlt, irqchip=False, timeout=60, extra=()):
        self.vcpus, self.hlt = vcpus, hlt
        self.tmp = tempfile.TemporaryDirectory(prefix='kvmtest-')
        self.dir = self.tmp.name
        args = [path, '--vms', str(vms), '--vcpus', str(vcpus), '--hlt', str(hlt),
                '--dump-dir', self.dir, '--ready-file', os.path.join(self.dir, 'ready')]
        if irqchip:
            args.append('--irqchip')
        args += list(extra)  # e.g. --handoff PATH --name NAME
        log('  starting: ' + ' '.join(args))
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self._readline(timeout)
        if line != b'ready\n':
            rc = self.proc.wait(5)
            if rc == 77:
                skip('kvmtest_vmm cannot run KVM VMs here (exit 77)')
            fail(f'kvmtest_vmm did not become ready (said {line!r}, exit {rc})')
        self.dumps = self.load_dumps()
        if len(self.dumps) != vms:
            fail(f'{len(self.dumps)} dumps for {vms} VMs')
        self.pids = [d['pid'] for d in self.dumps]

    def _readline(self, timeout):
        return readline_within(self.proc, timeout, 'kvmtest_vmm')

    def load_dumps(self, pids=None):
        out = []
        for name in sorted(os.listdir(self.dir)):
            m = re.fullmatch(r'vm-(\d+)\.json', name)
            if m and (pids is None or int(m.group(1)) in pids):
                out.append(load_dump(os.path.join(self.dir, name)))
        return sorted(out, key=lambda d: d['pid'])

    def refresh(self, timeout=10):
        """Asks every child for a fresh dump (SIGUSR1) and returns the new dumps."""
        before = {d['pid']: d['generation'] for d in self.load_dumps(self.pids)}
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.load_dumps(self.pids)
            if all(d['generation'] > before[d['pid']] for d in now):
                return now
            time.sleep(0.02)
        fail('fixture children did not write fresh dumps')

    def vm_labels(self):
        return {ASSUMED_VM_LABEL.format(pid=p) for p in self.pids}

    def kill_vm(self, pid):
        """SIGKILLs one VM's process and waits until it is reaped (its pid gone)."""
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while os.path.exists(f'/proc/{pid}') and time.monotonic() < deadline:
            time.sleep(0.01)
        if os.path.exists(f'/proc/{pid}'):
            fail(f'VM process {pid} still exists 10s after SIGKILL')
        self.pids.remove(pid)
        self.dumps = [d for d in self.dumps if d['pid'] != pid]

    def close(self):
        end_on_eof(self.proc, 10)  # the fixture kills its children and exits
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def end_on_eof(proc, timeout):
    """Ends a child that exits when its stdin closes; killed if not gone after timeout."""
    if proc.poll() is None:
        proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_once(args, timeout=60):
    """$EXPORTER --once ARGS; returns the CompletedProcess (text)."""
    cmd = [exporter_path(), '--once'] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def run_in_mount_namespace(script, why):
    """Runs `script --inside` in a private mount namespace (needs root and unshare(1):
    SKIP with `why` otherwise); exits with its status, printing PASS on success."""
    if os.geteuid() != 0 or not shutil.which('unshare'):
        skip(why)
    r = subprocess.run(['unshare', '--mount', '--propagation', 'private', sys.executable,
                        os.path.abspath(script), '--inside'], env=os.environ, timeout=60)
    if r.returncode != 0:
        sys.exit(r.returncode)
    print('PASS')




class Exporter:
    """The exporter as an HTTP server on 127.0.0.1; a context manager."""

    def __init__(self, args, timeout=15, prefix=(), probe=None):
        """probe(port): true once the exporter answers; default: a plain scrape succeeds."""
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}/metrics'
        self.stderr = tempfile.TemporaryFile()
        # prefix: a command that execs the exporter (setpriv ...), keeping its pid.
        cmd = list(prefix) + [exporter_path(), f'--web.listen-address=127.0.0.1:{self.port}']
        cmd += list(args)
        log('  starting: ' + ' '.join(cmd))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr)
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                fail(f'exporter exited with {self.proc.returncode}: {self.log_text()}')
            if probe(self.port) if probe else self._answers():
                return
            if time.monotonic() > deadline:
                self.close()
                fail(f'exporter not answering on port {self.port}: {self.log_text()}')
            time.sleep(0.05)

    def _answers(self):
        try:
            self.scrape()
            return True
        except OSError:
            return False

    # Loopback must never go through an http_proxy from the environment.
    _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def scrape(self):
        with self._opener.open(self.url, timeout=10) as r:
            if r.status != 200:
                raise OSError(f'HTTP {r.status}')
            return r.read().decode()

    def log_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors='replace')[-4000:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode in (0, -signal.SIGTERM)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # A crash at shutdown (sanitizer report, double free) is a failure too.
        if not self.close() and exc_type is None:
            fail(f'exporter exited with {self.proc.returncode} on SIGTERM:\n{self.log_text()}')
