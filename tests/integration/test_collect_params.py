#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""collect[]/exclude[] on /metrics and --collector.NAME, asked with curl.

The exporter serves the saved stats files (no /dev/kvm needed). A scrape
limited to the file collector has the KVM series and no exporter metrics;
one limited to the exporter has no KVM series; exclude[] leaves out what it
names. Both parameters, an unknown name or a disabled collector get a 400
with one line naming the problem, and nothing is collected. With
--collector.disable-defaults --collector.file only the file collector runs.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402

DATA = os.path.join(os.environ.get('TESTS_SOURCE_DIR', ''), 'data')
FILES = [f'--kvm.stats-file={DATA}/x86_64-6.18-vm.bin',
         f'--kvm.stats-file={DATA}/x86_64-6.18-vcpu.bin']
INFO = 'kvm_vm_info{vm="pid-5702",kvm_id="kvm-5702",source="file"} 1'


def curl(ex, query):
    """(status, body) of GET /metrics?query with curl, the query sent as written."""
    r = subprocess.run(['curl', '-sS', '--noproxy', '*', '-g', '-w', '\n%{http_code}',
                        f'http://127.0.0.1:{ex.port}/metrics{query}'],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        kc.fail(f'curl {query}: exit {r.returncode}: {r.stderr.strip()}')
    body, _, status = r.stdout.rpartition('\n')
    return int(status), body


def main():
    if subprocess.run(['sh', '-c', 'command -v curl'], capture_output=True).returncode != 0:
        kc.skip('curl not found (Debian package "curl")')
    problems = []
    with kc.Exporter(['--no-kvm.procfs', '--kvm.handoff-socket='] + FILES) as ex:
        ok_cases = [
            # query, present, absent
            ('', [INFO, 'kvmstats_exporter_build_info{',
                  'kvmstats_exporter_collector_success{collector="file"} 1'], []),
            ('?collect[]=file', [INFO, 'kvm_vcpu_halt_exits_total{vm="pid-5702"} 50',
                                 'kvmstats_exporter_collector_success{collector="file"} 1'],
             ['kvmstats_exporter_build_info{', 'collector="handoff"']),
            ('?collect[]=exporter', ['kvmstats_exporter_build_info{'],
             ['kvm_vm_info{', 'kvm_vcpu_', 'collector="file"']),
            ('?exclude[]=file', ['kvmstats_exporter_build_info{',
                                 'kvmstats_exporter_collector_success{collector="handoff"}'],
             ['kvm_vm_info{', 'collector="file"']),
            ('?collect%5B%5D=file&collect%5B%5D=exporter', [INFO, 'kvmstats_exporter_build_info{'],
             []),
        ]
        for query, present, absent in ok_cases:
            status, body = curl(ex, query)
            if status != 200:
                problems.append(f'{query or "(none)"}: HTTP {status} {body!r}')
                continue
            problems += [f'{query}: missing {p!r}' for p in present if p not in body]
            problems += [f'{query}: has {a!r}' for a in absent if a in body]
            kc.log(f'  {query or "(no query)"}: 200, '
                   f'{sum(1 for x in body.splitlines() if x and x[0] != "#")} samples')
        bad_cases = [
            ('?collect[]=file&exclude[]=exporter', 'collect[] and exclude[] cannot be combined'),
            ('?collect[]=nosuch',
             'collect[]: unknown collector "nosuch" (enabled: file, handoff, vhost, exporter)'),
            ('?exclude[]=canary',
             'exclude[]: disabled collector "canary" (enabled: file, handoff, vhost, exporter)'),
        ]
        for query, want in bad_cases:
            status, body = curl(ex, query)
            lines = body.splitlines()
            if status != 400 or lines != [want]:
                problems.append(f'{query}: HTTP {status} {body!r}, expected 400 {want!r}')
            else:
                kc.log(f'  {query}: 400 "{lines[0]}"')
        # --no-kvm.procfs turned its collector off: it cannot be asked for.
        status, body = curl(ex, '?collect[]=procfs')
        if status != 400 or 'disabled collector "procfs"' not in body:
            problems.append(f'collect[]=procfs with --no-kvm.procfs: HTTP {status} {body!r}')
    with kc.Exporter(['--collector.disable-defaults', '--collector.file'] + FILES) as ex:
        status, body = curl(ex, '')
        if status != 200 or INFO not in body or 'kvmstats_exporter_build_info' in body \
                or 'collector="procfs"' in body:
            problems.append(f'--collector.disable-defaults --collector.file: HTTP {status}, '
                            f'{body[:300]!r}')
        status, body = curl(ex, '?collect[]=handoff')
        if status != 400 or 'enabled: file)' not in body:
            problems.append(f'collect[]=handoff with only file enabled: HTTP {status} {body!r}')
        kc.log('  --collector.disable-defaults --collector.file: only the file collector')
    kc.finish(problems, 'collect[]/exclude[] and --collector.NAME')


if __name__ == '__main__':
    main()
