#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Malformed stats files: one variant of the real saved blobs per validation rule.

usage: test_malformed.py

Each broken file must make `--once --no-kvm.procfs --kvm.stats-file=F` exit
non-zero (not by a signal) with exactly one line on stderr naming the file and
the rule. Unknown types, units and bases are not errors: the stat is skipped.
The unmodified blobs (and the non-error variants) must export exactly what an
independent translation of them says. Needs no /dev/kvm.
"""

import os
import re
import sys
import tempfile

from lib import kvm_common as kc

DATA = os.path.join(os.environ.get('TESTS_SOURCE_DIR', os.path.join(os.path.dirname(
    os.path.abspath(__file__)), '..')), 'data')
VM_BLOB = os.path.join(DATA, 'x86_64-6.18-vm.bin')
VCPU_BLOB = os.path.join(DATA, 'x86_64-6.18-vcpu.bin')

# The exporter's message for each rule (kvmstats_rule_to_string) must match
# these, case-insensitively, once the file path is removed from the line.
RULE_KEYWORDS = {
    'SHORT_HEADER': r'header',
    'HEADER_FLAGS': r'flags',
    'NAME_SIZE': r'name.?size',
    'NUM_DESC': r'num.?desc|descriptors',
    'ID_READ': r'\bid\b',
    'ID_UNTERMINATED': r'\bid\b.*terminat',
    'ID_PREFIX': r'start|prefix',
    'OFFSETS': r'offset',
    'OVERLAP': r'overlap',          # DESC_OVERLAP or DATA_OVERLAP, by check order
    'DESC_READ': r'descriptor',
    'NAME_UNTERMINATED': r'name.*terminat',
    'NAME_EMPTY': r'empty',
    'EXPONENT': r'exponent',
    'SIZE_ZERO': r'size.*(zero|\b0\b)',
    'BUCKET_SIZE': r'bucket',
    'VALUE_RANGE': r'range|bound|overflow|exceed|outside',
    # The data block ends before the values do: DATA_READ, DATA_SIZE or VALUE_RANGE,
    # depending on whether the reader sizes the data block from the descriptors.
    'DATA_RANGE': r'data|range|bound|exceed|outside',
}

HDR_FIELDS = ['flags', 'name_size', 'num_desc', 'id_offset', 'desc_offset', 'data_offset']
DESC_FIELDS = ['flags', 'exponent', 'size', 'offset', 'bucket_size']


class Blob:
    """A mutable stats file with helpers to break one thing at a time."""

    def __init__(self, data):
        self.b = bytearray(data)
        self.h = dict(zip(HDR_FIELDS, kc.HEADER.unpack_from(self.b, 0)))
        self.stride = kc.DESC.size + self.h['name_size']

    def set_hdr(self, field, value):
        self.h[field] = value
        kc.HEADER.pack_into(self.b, 0, *[self.h[f] for f in HDR_FIELDS])
        return self

    def desc_pos(self, name):
        for i in range(self.h['num_desc']):
            o = self.h['desc_offset'] + i * self.stride
            n = bytes(self.b[o + kc.DESC.size:o + self.stride]).split(b'\0')[0].decode()
            if n == name:
                return o
        raise KeyError(name)

    def set_desc(self, name, **kw):
        o = self.desc_pos(name)
        d = dict(zip(DESC_FIELDS, kc.DESC.unpack_from(self.b, o)))
        d.update(kw)
        kc.DESC.pack_into(self.b, o, *[d[f] for f in DESC_FIELDS])
        return self

    def flags_of(self, name, stype=None, unit=None, base=None):
        f = kc.DESC.unpack_from(self.b, self.desc_pos(name))[0]
        if stype is not None:
            f = (f & ~0xf) | stype
        if unit is not None:
            f = (f & ~0xf0) | (unit << 4)
        if base is not None:
            f = (f & ~0xf00) | (base << 8)
        return f

    def put(self, off, data):
        self.b[off:off + len(data)] = data
        return self

    def name_field(self, name):
        return self.desc_pos(name) + kc.DESC.size

    def truncate(self, n):
        del self.b[n:]
        return self


def malformed_cases(vcpu):
    """(case name, rule, bytes): one per validation rule and unit class."""
    V = lambda: Blob(vcpu)  # noqa: E731 - a fresh copy per case
    h = V().h
    ns, end = h['name_size'], len(vcpu)
    data_size = end - h['data_offset']
    return [
        ('short-header', 'SHORT_HEADER', V().truncate(10)),
        ('header-flags', 'HEADER_FLAGS', V().set_hdr('flags', 1)),
        ('name-size-zero', 'NAME_SIZE', V().set_hdr('name_size', 0)),
        ('num-desc-huge', 'NUM_DESC', V().set_hdr('num_desc', 0x7fffffff)),
        ('id-truncated', 'ID_READ', V().truncate(h['id_offset'] + 4)),
        ('id-unterminated', 'ID_UNTERMINATED', V().put(h['id_offset'], b'kvm-' + b'1' * (ns - 4))),
        ('id-prefix', 'ID_PREFIX', V().put(h['id_offset'], b'qemu-1\0')),
        ('desc-offset-in-header', 'OFFSETS', V().set_hdr('desc_offset', 8)),
        ('data-offset-in-header', 'OFFSETS', V().set_hdr('data_offset', 16)),
        ('data-inside-desc', 'OVERLAP', V().set_hdr('data_offset', h['desc_offset'] + 2 * ns)),
        ('data-over-desc', 'OVERLAP', V().set_hdr('data_offset', h['id_offset'])),
        ('desc-truncated', 'DESC_READ', V().truncate(h['desc_offset'] + 100)),
        ('name-unterminated', 'NAME_UNTERMINATED', V().put(V().name_field('exits'), b'a' * ns)),
        ('name-empty', 'NAME_EMPTY', V().put(V().name_field('exits'), b'\0')),
        ('exponent-none-negative', 'EXPONENT', V().set_desc('exits', exponent=-1)),
        ('exponent-bytes-negative', 'EXPONENT', V().set_desc(
            'exits', flags=V().flags_of('exits', unit=kc.UNIT_BYTES), exponent=-1)),
        ('exponent-cycles-negative', 'EXPONENT', V().set_desc(
            'exits', flags=V().flags_of('exits', unit=kc.UNIT_CYCLES), exponent=-3)),
        ('exponent-seconds-positive', 'EXPONENT', V().set_desc('halt_wait_ns', exponent=1)),
        ('exponent-boolean-positive', 'EXPONENT', V().set_desc('blocking', exponent=1)),
        ('exponent-boolean-negative', 'EXPONENT', V().set_desc('blocking', exponent=-1)),
        ('size-zero', 'SIZE_ZERO', V().set_desc('exits', size=0)),
        ('bucket-size-on-log-hist', 'BUCKET_SIZE', V().set_desc('halt_wait_hist', bucket_size=8)),
        ('bucket-size-on-counter', 'BUCKET_SIZE', V().set_desc('exits', bucket_size=8)),
        ('linear-hist-without-bucket-size', 'BUCKET_SIZE', V().set_desc(
            'halt_wait_hist', flags=V().flags_of('halt_wait_hist', stype=kc.LINEAR_HIST))),
        ('value-offset-huge', 'VALUE_RANGE', V().set_desc('exits', offset=0xfffffff8)),
        ('value-past-data', 'DATA_RANGE', V().set_desc('halt_wait_hist', offset=data_size - 8)),
        ('data-truncated', 'DATA_RANGE', V().truncate(end - 8)),
    ]


def loadable_cases(vm, vcpu):
    """(case name, bytes, stat that must be absent or None): files that must load."""
    V = lambda: Blob(vcpu)  # noqa: E731
    return [
        ('vm-unmodified', Blob(vm), None),
        ('vcpu-unmodified', V(), None),
        ('unknown-type-9', V().set_desc('exits', flags=V().flags_of('exits', stype=9)),
         'kvm_vcpu_exits_total'),
        ('unknown-unit-9', V().set_desc('exits', flags=V().flags_of('exits', unit=9)),
         'kvm_vcpu_exits_total'),
        ('unknown-base-5', V().set_desc('exits', flags=V().flags_of('exits', base=5)),
         'kvm_vcpu_exits_total'),
        ('linear-hist-1us', V().set_desc(
            'halt_wait_hist', flags=V().flags_of('halt_wait_hist', stype=kc.LINEAR_HIST),
            bucket_size=1000), None),
    ]


def check_malformed(path, rule):
    r = kc.run_once(['--no-kvm.procfs', f'--kvm.stats-file={path}'], timeout=30)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    problems = []
    if r.returncode < 0 or r.returncode >= 128:
        problems.append(f'crashed: exit {r.returncode} (signal)')
    elif r.returncode == 0:
        problems.append('exit status 0 for a malformed file')
    if len(lines) != 1:
        problems.append(f'{len(lines)} lines on stderr, expected 1: {lines[:5]}')
    elif path not in lines[0]:
        problems.append(f'stderr does not name the file: {lines[0]!r}')
    elif not re.search(RULE_KEYWORDS[rule], lines[0].replace(path, ''), re.I):
        problems.append(f'stderr does not name rule {rule} (/{RULE_KEYWORDS[rule]}/): '
                        f'{lines[0]!r}')
    return problems, lines[0] if len(lines) == 1 else None


def check_loadable(path, data, absent, per_vcpu=False):
    args = ['--no-kvm.procfs', f'--kvm.stats-file={path}'] + (['--kvm.per-vcpu'] if per_vcpu else [])
    r = kc.run_once(args, timeout=30)
    if r.returncode != 0:
        return [f'exit {r.returncode}: {r.stderr.strip()[-500:]}']
    expo = kc.Exposition(r.stdout)
    vms = {dict(k[1]).get('vm') for k in expo.samples if k[0].startswith('kvm_')}
    if len(vms) != 1 or None in vms:
        return [f'expected the series of one VM, got vm labels {sorted(map(str, vms))}']
    vm = vms.pop()
    f = kc.parse_blob(data)
    samples, families = kc.expected_vm(vm, f if f.kind == 'vm' else None,
                                       [f] if f.kind == 'vcpu' else [], per_vcpu)
    families[kc.INFO_FAMILY] = 'gauge'
    problems = kc.compare(expo, samples, families, {vm})
    if absent and any(k[0] == absent for k in expo.samples):
        problems.append(f'{absent} exported although its descriptor is unsupported')
    if not any(k[0] == 'kvm_vcpu_halt_exits_total' for k in expo.samples) and f.kind == 'vcpu':
        problems.append('the rest of the file was not exported (no kvm_vcpu_halt_exits_total)')
    return problems


def main():
    kc.exporter_path()
    for p in (VM_BLOB, VCPU_BLOB):
        if not os.path.exists(p):
            kc.fail(f'missing saved blob {p}')
    vm, vcpu = open(VM_BLOB, 'rb').read(), open(VCPU_BLOB, 'rb').read()
    ok = True
    with tempfile.TemporaryDirectory(prefix='malformed-') as tmp:
        cases = malformed_cases(vcpu)
        kc.log(f'{len(cases)} malformed variants of {VCPU_BLOB}:')
        for i, (name, rule, blob) in enumerate(cases):
            path = os.path.join(tmp, f'case{i:02d}.bin')
            with open(path, 'wb') as f:
                f.write(blob.b)
            problems, line = check_malformed(path, rule)
            ok &= kc.report(problems, f'{name} ({rule}): {line}')
        good = loadable_cases(vm, vcpu)
        kc.log(f'{len(good)} files that must load:')
        for i, (name, blob, absent) in enumerate(good):
            path = os.path.join(tmp, f'good{i:02d}.bin')
            with open(path, 'wb') as f:
                f.write(blob.b)
            ok &= kc.report(check_loadable(path, bytes(blob.b), absent), name)
            if name == 'vcpu-unmodified':
                ok &= kc.report(check_loadable(path, bytes(blob.b), None, per_vcpu=True),
                                name + ' --kvm.per-vcpu')
    if not ok:
        sys.exit(1)
    kc.log('PASS')


if __name__ == '__main__':
    main()
