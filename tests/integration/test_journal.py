#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""When stderr is the journal, events go to the journal as structured records.

systemd connects a service's stderr to the journal and says so in
JOURNAL_STREAM=<dev>:<inode>. The test makes that true for a plain file and
gives the exporter a journal socket of the test's own: it re-runs itself in a
private mount namespace, mounts a tmpfs on /run/systemd/journal and binds a
datagram socket there. The records must carry MESSAGE, PRIORITY,
SYSLOG_IDENTIFIER and one field per key (ADDRESS=...), and stderr must stay
empty. Then, without JOURNAL_STREAM, --log.format=json must write JSON lines.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402

JOURNAL_DIR = '/run/systemd/journal'


def parse_record(data):
    """Native journal protocol: KEY=value lines, or KEY\\n<le64 size><value>\\n."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b'\n', i)
        line = data[i:nl]
        if b'=' in line:
            k, v = line.split(b'=', 1)
            i = nl + 1
        else:
            k, size = line, int.from_bytes(data[nl + 1:nl + 9], 'little')
            v = data[nl + 9:nl + 9 + size]
            i = nl + 9 + size + 1
        fields[k.decode()] = v.decode(errors='replace')
    return fields


def inside():
    os.makedirs(JOURNAL_DIR, exist_ok=True)
    subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', JOURNAL_DIR], check=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(JOURNAL_DIR, 'socket'))
    sock.settimeout(10)
    with tempfile.TemporaryFile() as err:
        st = os.fstat(err.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f'{st.st_dev}:{st.st_ino}')
        port = kc.free_port()
        proc = subprocess.Popen([kc.exporter_path(), f'--web.listen-address=127.0.0.1:{port}',
                                 '--no-kvm.procfs', '--kvm.handoff-socket=',
                                 '--log.format=json'],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            records = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                rec = parse_record(sock.recv(65536))
                records.append(rec)
                if rec.get('MESSAGE') == 'listening':
                    break
        finally:
            proc.terminate()
            proc.wait(10)
        err.seek(0)
        stderr = err.read().decode(errors='replace')
    listening = [r for r in records if r.get('MESSAGE') == 'listening']
    if not listening:
        kc.fail(f'no "listening" record among {len(records)} journal records: {records}')
    rec = listening[0]
    want = {'PRIORITY': '6', 'SYSLOG_IDENTIFIER': 'kvmstats_exporter',
            'ADDRESS': f'127.0.0.1:{port}'}
    for k, v in want.items():
        if rec.get(k) != v:
            kc.fail(f'journal field {k}={rec.get(k)!r}, expected {v!r}: {rec}')
    if stderr.strip():
        kc.fail(f'stderr should stay empty when it is the journal, got: {stderr!r}')
    kc.log(f'  ok: {len(records)} journal records, fields {sorted(rec)}')


def json_on_stderr():
    port = kc.free_port()
    env = {k: v for k, v in os.environ.items() if k != 'JOURNAL_STREAM'}
    proc = subprocess.Popen([kc.exporter_path(), f'--web.listen-address=127.0.0.1:{port}',
                             '--no-kvm.procfs', '--kvm.handoff-socket=', '--log.format=json'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        line = proc.stderr.readline().decode()
    finally:
        proc.terminate()
        proc.wait(10)
    event = json.loads(line)
    if event.get('msg') != 'listening' or event.get('address') != f'127.0.0.1:{port}' \
            or event.get('level') != 'info' or 'ts' not in event:
        kc.fail(f'unexpected JSON log line: {line!r}')
    kc.log('  ok: --log.format=json writes one JSON object per line')


def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--inside':
        inside()
        return
    json_on_stderr()
    kc.run_in_mount_namespace(
        __file__, 'the journal part needs root and unshare(1) for a private mount namespace')


if __name__ == '__main__':
    main()
