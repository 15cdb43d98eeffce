#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""contrib/tools/run-demo on a host without /dev/kvm.

The test re-runs itself in a private mount namespace and binds an empty
regular file over /dev/kvm (when the host has one), so the script sees a host
without KVM. run-demo must say so in one line and serve the saved stats
files of tests/data/ as a file source: kvm_vm_info{source="file"} and the
saved VM's 50 halt exits. EXPORTER= makes run-demo skip installing and
building.
"""
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.environ.get('TESTS_SOURCE_DIR',
                                                   os.path.join(os.path.dirname(__file__), '..')),
                                    '..'))
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def scrape(url, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            kc.fail(f'run-demo exited with {proc.returncode}')
        try:
            with _opener.open(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                kc.fail(f'run-demo not serving {url} after {timeout}s')
            time.sleep(0.1)


def inside():
    with tempfile.NamedTemporaryFile() as fake:
        if os.path.exists('/dev/kvm'):
            subprocess.run(['mount', '--bind', fake.name, '/dev/kvm'], check=True)
        port = kc.free_port()
        env = dict(os.environ, EXPORTER=kc.exporter_path(), DEMO_ADDRESS=f'127.0.0.1:{port}')
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([os.path.join(ROOT, 'contrib', 'tools', 'run-demo')],
                                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err)
            try:
                text = scrape(f'http://127.0.0.1:{port}/metrics', proc)
            finally:
                proc.terminate()
                proc.wait(10)
            err.seek(0)
            lines = err.read().decode(errors='replace').splitlines()
    kvm_lines = [line for line in lines if '/dev/kvm' in line]
    problems = []
    if len(kvm_lines) != 1 or not lines or lines[0] != kvm_lines[0]:
        problems.append(f'expected one first line about /dev/kvm, got: {lines[:6]}')
    want = ['kvm_vm_info{vm="pid-5702",kvm_id="kvm-5702",source="file"} 1',
            'kvm_vcpu_halt_exits_total{vm="pid-5702"} 50']
    problems += [f'missing {w!r}' for w in want if w not in text.splitlines()]
    if 'kvmstats_exporter_canary' in text:
        problems.append('the canary runs without /dev/kvm')
    if problems:
        kc.report(problems, 'run-demo without /dev/kvm')
        sys.exit(1)
    kc.log(f'  ok: "{kvm_lines[0]}"; {sum(1 for x in text.splitlines() if x.startswith("kvm_"))} '
           'kvm_ samples from the saved files')


def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--inside':
        inside()
        return
    kc.run_in_mount_namespace(
        __file__, 'needs root and unshare(1) to hide /dev/kvm in a private mount namespace')


if __name__ == '__main__':
    main()
