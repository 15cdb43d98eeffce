"""QEMU for the tests: its QMP monitor on a unix socket."""

import json
import socket
import time

from lib import kvm_common as kc


class QemuExited(Exception):
    pass


class QMP:
    """A QMP client on a unix socket: one command at a time, events skipped."""

    def __init__(self, path, proc, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise QemuExited()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    kc.fail(f'QMP socket {path} not answering after {timeout}s')
                time.sleep(0.05)
        s.settimeout(60)
        self.sock, self.f = s, s.makefile('rwb')
        if 'QMP' not in self._read():
            kc.fail('no QMP greeting')
        self.cmd('qmp_capabilities')

    def _read(self):
        line = self.f.readline()
        if not line:
            raise EOFError('QMP connection closed')
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self.f.write(json.dumps(msg).encode() + b'\n')
        self.f.flush()
        while True:
            r = self._read()
            if 'return' in r:
                return r['return']
            if 'error' in r:
                raise RuntimeError(f'QMP {name}: {r["error"]}')

    def close(self):
        for c in (self.f, self.sock):
            try:
                c.close()
            except OSError:
                pass
