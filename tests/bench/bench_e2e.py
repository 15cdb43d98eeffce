#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end scrape benchmark: a fleet of real KVM VMs (tests/tools/kvmfleet),
the exporter finding them by procfs or taking them by hand-off, and
bench_http timing HTTP scrapes in Prometheus' forms against the pread floor
of the same fds, side by side (docs/performance.md, "End to end").

  bench_e2e.py KVMFLEET BENCH_HTTP [--sizes 10x8,100x8,1000x8,1000x4]
               [--modes procfs,handoff] [--rounds R] [--cpu-scrapes K]

EXPORTER comes from the environment (meson sets it). Exit 77 without /dev/kvm.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
from lib.kvm_common import fail, log, require_kvm  # noqa: E402
from lib.fleet import Fleet, handoff_exporter, procfs_exporter, wait_vms  # noqa: E402


def sizes(text):
    out = []
    for item in text.split(','):
        vms, _, vcpus = item.partition('x')
        out.append((int(vms), int(vcpus)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kvmfleet')
    ap.add_argument('bench_http')
    ap.add_argument('--sizes', type=sizes, default=sizes('10x8,100x8,1000x8,1000x4'))
    ap.add_argument('--modes', default='procfs,handoff')
    ap.add_argument('--rounds', type=int, default=50)
    ap.add_argument('--cpu-scrapes', type=int, default=50)
    ap.add_argument('--guest', default='halt', choices=('halt', 'run'))
    a = ap.parse_args()
    require_kvm()
    # The exporter and bench_http hold every stats fd: 9 per VM at 8 vCPUs.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    for vms, vcpus in a.sizes:
        need = vms * (vcpus + 1) * 2 + 64
        if need > hard:
            fail(f'{vms}x{vcpus} needs about {need} fds; RLIMIT_NOFILE hard limit is {hard}')
        for mode in a.modes.split(','):
            log(f'=== {vms} VMs x {vcpus} vCPUs, {mode}, guest {a.guest} ===')
            with tempfile.TemporaryDirectory(prefix='bench-e2e-') as tmp:
                if mode == 'handoff':
                    exp, sock = handoff_exporter(tmp, vms)
                    with exp, Fleet(a.kvmfleet, vms, vcpus, handoff=sock, guest=a.guest) as fl:
                        wait_vms(exp, 'handoff', vms)
                        run_client(a, exp, fl)
                else:
                    with Fleet(a.kvmfleet, vms, vcpus, guest=a.guest) as fl:
                        with procfs_exporter() as exp:
                            wait_at_least(exp, vms)
                            run_client(a, exp, fl)


def wait_at_least(exp, vms):
    """procfs finds every VMM on the host: other VMs may be there besides the fleet's."""
    import time
    from lib.fleet import exporter_vms
    deadline = time.monotonic() + 120
    while exporter_vms(exp.scrape()).get('procfs', 0) < vms:
        if time.monotonic() > deadline:
            fail(f'exporter found fewer than {vms} VMs in /proc after 120 s')
        time.sleep(0.2)


def run_client(a, exp, fl):
    cmd = [a.bench_http, '--port', str(exp.port), '--exporter-pid', str(exp.pid),
           '--pids-file', fl.pids_file, '--rounds', str(a.rounds),
           '--cpu-scrapes', str(a.cpu_scrapes)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(r.stdout)
    sys.stdout.flush()
    if r.returncode != 0:
        fail(f'bench_http exited with {r.returncode}')


if __name__ == '__main__':
    main()
