#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The QMP route against one scrape, on the same real QEMU VMs, side by side.

  bench_qmp.py SHIM [--vms 10] [--smp 8] [--rounds 30]

Starts --vms QEMU 7.2 VMs (qemu-system-x86_64 -accel kvm, running, no disk)
under the LD_PRELOAD shim, which hands their stats fds to an exporter on a
hand-off socket. Then, as libvirt does for `virsh domstats --vm` / the
KubeVirt and OpenStack collectors: one QMP socket per VM, kept open,
capabilities negotiated once and the stats schemas (query-stats-schemas)
fetched once and cached; per reading, `query-stats` for target "vm" and
target "vcpu" (provider kvm) on every VM, in turn, with the JSON parsed.

Each round, alternately first: the QMP reading of every VM, and one scrape of
the exporter (OpenMetrics + gzip, as Prometheus asks, on a new connection),
with the wall time of each and the CPU time QEMU (all VMs) and the exporter
spent, from /proc/PID/stat. Printed: medians, and the ratio QMP/scrape.
Both clients are this Python process, so the client's own parsing is in
both figures (JSON for QMP; nothing for the scrape, which is not decompressed).

EXPORTER from the environment. Exit 77 without QEMU or /dev/kvm.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
from lib.kvm_common import fail, log, require_kvm, skip  # noqa: E402
from lib.fleet import handoff_exporter, http_get, wait_vms  # noqa: E402
from lib.qemu import QMP, QemuExited  # noqa: E402

ACCEPT = ('application/openmetrics-text;version=1.0.0;q=0.5,'
          'application/openmetrics-text;version=0.0.1;q=0.4,'
          'text/plain;version=1.0.0;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1')
TICK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def scrape(port):
    """One GET as Prometheus sends it; returns the body's length."""
    status, body = http_get('127.0.0.1', port, ACCEPT, gzip=True)
    if status != 200 or body[:2] != b'\x1f\x8b':
        fail(f'scrape answered {status}, body {body[:16]!r}')
    return len(body)


def qmp_read_all(qmps, vcpus):
    """query-stats vm + vcpu on every VM; checks what came back."""
    for q in qmps:
        vm = [e for e in q.cmd('query-stats', target='vm', providers=[{'provider': 'kvm'}])]
        cpu = [e for e in q.cmd('query-stats', target='vcpu', providers=[{'provider': 'kvm'}])]
        if len(vm) != 1 or len(cpu) != vcpus or not vm[0]['stats'] or not cpu[0]['stats']:
            fail(f'query-stats: {len(vm)} VM and {len(cpu)} vCPU entries, {vcpus} vCPUs')


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('shim')
    ap.add_argument('--vms', type=int, default=10)
    ap.add_argument('--smp', type=int, default=8)
    ap.add_argument('--rounds', type=int, default=30)
    a = ap.parse_args()
    require_kvm()
    qemu = shutil.which('qemu-system-x86_64')
    if not qemu:
        skip('qemu-system-x86_64 is not installed')

    with tempfile.TemporaryDirectory(prefix='bench-qmp-') as tmp:
        exp, sock = handoff_exporter(tmp, a.vms)
        procs, qmps = [], []
        with exp:
            try:
                env = {k: v for k, v in os.environ.items() if not k.startswith('KVMSTATS_')}
                env['LD_PRELOAD'] = a.shim
                env['KVMSTATS_HANDOFF_SOCKET'] = sock
                for i in range(a.vms):
                    path = os.path.join(tmp, f'qmp-{i}.sock')
                    args = [qemu, '-accel', 'kvm', '-name', f'guest=bench-{i}', '-smp',
                            str(a.smp), '-m', '64', '-display', 'none', '-nodefaults',
                            '-qmp', f'unix:{path},server=on,wait=off']
                    p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=open(os.path.join(tmp, f'q{i}.err'), 'wb'),
                                         env=env)
                    procs.append(p)
                    try:
                        qmps.append(QMP(path, p))
                    except QemuExited:
                        with open(os.path.join(tmp, f'q{i}.err')) as f:
                            text = f.read()
                        if 'KVM' in text:
                            skip(f'QEMU cannot use KVM here: {text.strip()[-300:]}')
                        fail(f'QEMU exited at start: {text}')
                log(f'  {a.vms} QEMU VMs x {a.smp} vCPUs running')
                wait_vms(exp, 'handoff', a.vms)
                # Once per VM, cached: what libvirt keeps for the life of the domain.
                for q in qmps:
                    schemas = q.cmd('query-stats-schemas', provider='kvm')
                    if {s['target'] for s in schemas} != {'vm', 'vcpu'}:
                        fail(f'query-stats-schemas: {json.dumps(schemas)[:200]}')
                pids = [p.pid for p in procs]
                qmp_t, qmp_cpu, our_t, our_cpu = [], [], [], []
                body = 0
                for r in range(a.rounds + 3):
                    order = ('qmp', 'scrape') if r % 2 else ('scrape', 'qmp')
                    for what in order:
                        if what == 'qmp':
                            c0, t0 = cpu_seconds(pids), time.perf_counter()
                            qmp_read_all(qmps, a.smp)
                            t, c = time.perf_counter() - t0, cpu_seconds(pids) - c0
                            if r >= 3:
                                qmp_t.append(t)
                                qmp_cpu.append(c)
                        else:
                            c0, t0 = cpu_seconds([exp.pid]), time.perf_counter()
                            body = scrape(exp.port)
                            t, c = time.perf_counter() - t0, cpu_seconds([exp.pid]) - c0
                            if r >= 3:
                                our_t.append(t)
                                our_cpu.append(c)
                # The same scrape with no QMP reading just before it: a reading
                # wakes every vCPU thread, which the next scrape may still meet.
                time.sleep(1)
                alone = []
                for r in range(a.rounds):
                    t0 = time.perf_counter()
                    scrape(exp.port)
                    alone.append(time.perf_counter() - t0)
                qt, ot = median(qmp_t), median(our_t)
                qc, oc = sum(qmp_cpu) / len(qmp_cpu), sum(our_cpu) / len(our_cpu)
                print(f'{a.vms} QEMU VMs x {a.smp} vCPUs, {a.rounds} rounds')
                print(f'QMP query-stats vm+vcpu, all VMs: median {qt * 1e3:.2f} ms wall, '
                      f'QEMU cpu {qc * 1e3:.2f} ms per reading')
                print(f'one scrape (om+gzip, {body} bytes): median {ot * 1e3:.2f} ms wall, '
                      f'exporter cpu {oc * 1e3:.2f} ms per scrape')
                print(f'one scrape, not right after a QMP reading: median '
                      f'{median(alone) * 1e3:.2f} ms wall')
                print(f'ratio qmp/scrape wall = {qt / ot:.1f}')
                print(f'ratio qmp/scrape wall (scrape alone) = {qt / median(alone):.1f}')
                if oc > 0:
                    print(f'ratio qmp/scrape cpu = {qc / oc:.1f}')
                else:
                    print('ratio qmp/scrape cpu: exporter cpu below the clock tick '
                          f'({1e3 / TICK:.0f} ms over {len(our_cpu)} scrapes)')
            finally:
                for q in qmps:
                    q.close()
                for p in procs:
                    p.kill()
                    p.wait()


if __name__ == '__main__':
    main()
