# SPDX-License-Identifier: MIT
"""The fleet (tests/tools/kvmfleet) and an exporter watching it, for the
benchmarks and robustness runs (stdlib only)."""

import os
import re
import socket
import subprocess
import tempfile
import time

from lib.kvm_common import Exporter, end_on_eof, fail, log, readline_within, skip

VMS_RE = re.compile(r'^kvmstats_exporter_vms\{source="(\w+)"\} (\d+)', re.M)


class Fleet:
    """kvmfleet with N VMs x M vCPUs; a context manager. `pids` are the VMM processes."""

    def __init__(self, path, vms, vcpus, handoff=None, guest='halt', idle=0, idle_files=16, churn=0,
                 churn_hz=10, per_process=1, timeout=300, name='fleet'):
        self.tmp = tempfile.TemporaryDirectory(prefix='kvmfleet-')
        self.pids_file = os.path.join(self.tmp.name, 'pids')
        args = [path, '--vms', str(vms), '--vcpus', str(vcpus), '--guest', guest,
                '--vms-per-process', str(per_process), '--pids-file', self.pids_file,
                '--idle', str(idle), '--idle-files', str(idle_files), '--name', name]
        if handoff:
            args += ['--handoff', handoff]
        if churn:
            args += ['--churn', str(churn), '--churn-hz', str(churn_hz)]
        log('  starting: ' + ' '.join(args))
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.readline(timeout)
        if not line.startswith('ready '):
            rc = self.proc.wait(10)
            if rc == 77:
                skip('kvmfleet cannot make KVM VMs with stats fds here (exit 77)')
            fail(f'kvmfleet did not become ready (said {line!r}, exit {rc})')
        self.pids = self.read_pids()

    def readline(self, timeout):
        return readline_within(self.proc, timeout, 'kvmfleet').decode()

    def start_churn(self):
        """--churn waits for this before it starts."""
        self.proc.stdin.write(b'go\n')
        self.proc.stdin.flush()

    def read_pids(self):
        with open(self.pids_file) as f:
            return [int(x) for x in f.read().split()]

    def all_pids(self):
        """Every VMM process the fleet ever made (churned ones too)."""
        with open(self.pids_file + '.all') as f:
            return {int(x) for x in f.read().split()}

    def close(self):
        end_on_eof(self.proc, 60)  # kvmfleet ends its children and exits
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def exporter_vms(text):
    """{source: VMs} from an exposition's kvmstats_exporter_vms samples."""
    return {m.group(1): int(m.group(2)) for m in VMS_RE.finditer(text)}


def wait_vms(exporter, source, n, timeout=120):
    """Scrapes until the exporter holds n VMs of source; returns the last exposition."""
    deadline = time.monotonic() + timeout
    while True:
        text = exporter.scrape()
        got = exporter_vms(text).get(source, 0)
        if got == n:
            return text
        if time.monotonic() > deadline:
            fail(f'exporter holds {got} {source} VMs after {timeout}s, expected {n}')
        time.sleep(0.2)


def handoff_exporter(tmpdir, vms, extra=()):
    """An exporter taking VMs by hand-off only, sized for vms connections."""
    sock = os.path.join(tmpdir, 'handoff.sock')
    args = ['--no-kvm.procfs', f'--kvm.handoff-socket={sock}',
            f'--kvm.handoff-max-connections={max(vms + 16, 256)}'] + list(extra)
    return Exporter(args), sock


def procfs_exporter(extra=()):
    """An exporter finding VMs in /proc only (no hand-off socket)."""
    return Exporter(['--kvm.handoff-socket='] + list(extra))


def http_get(host, port, accept='text/plain;version=0.0.4', gzip=False, timeout=10,
             source=None):
    """One GET /metrics; (status, body bytes). Reads by Content-Length."""
    s = socket.create_connection((host, port), timeout=timeout, source_address=source)
    try:
        s.sendall((f'GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: {accept}\r\n'
                   + ('Accept-Encoding: gzip\r\n' if gzip else '')
                   + 'Connection: close\r\n\r\n').encode())
        data, length = bytearray(), None
        while length is None or len(data) < length:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
            if length is None and b'\r\n\r\n' in data:
                head = bytes(data).partition(b'\r\n\r\n')[0]
                m = re.search(rb'(?im)^content-length:\s*(\d+)', head)
                length = len(head) + 4 + int(m.group(1)) if m else None
                if not m:
                    fail('answer without Content-Length')
    finally:
        s.close()
    head, _, body = bytes(data).partition(b'\r\n\r\n')
    m = re.match(rb'HTTP/1\.[01] (\d{3})', head)
    if not m:
        fail(f'not an HTTP answer: {head[:80]!r}')
    return int(m.group(1)), body
