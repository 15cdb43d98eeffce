"""QEMU for the tests: the process, and its QMP monitor on a unix socket."""

import json
import os
import re
import shutil
import socket
import subprocess
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


QEMU_BIN = 'qemu-system-x86_64'


def require_qemu():
    """SKIP (77) without QEMU."""
    if not shutil.which(QEMU_BIN):
        kc.skip(f'{QEMU_BIN} is not installed (Debian: qemu-system-x86)')


class Qemu:
    """qemu-system-x86_64 with 64 MiB, no display or default devices, QMP on a socket in
    workdir, stderr kept there; a context manager.

    accel: ('kvm',) when the test is about KVM; ('kvm', 'tcg') when TCG will do (QEMU
    takes the first accelerator that initialises). env: added to the environment (without
    KVMSTATS_* variables of the caller); shim: a library to LD_PRELOAD. connect: talk QMP
    at once (a QEMU that cannot use KVM is a SKIP); otherwise at the first command, for
    QEMUs whose start-up waits for a peer the test drives."""

    def __init__(self, args, workdir, tag='qemu', accel=('kvm', 'tcg'), env=None, shim=None,
                 connect=True):
        self.tag = tag
        self.qmp_path = os.path.join(workdir, f'{tag}-qmp.sock')
        self.stderr = open(os.path.join(workdir, f'{tag}.stderr'), 'w+b')
        cmd = [shutil.which(QEMU_BIN) or QEMU_BIN]
        for a in accel:
            cmd += ['-accel', a]
        cmd += ['-m', '64', '-display', 'none', '-nodefaults',
                '-qmp', f'unix:{self.qmp_path},server=on,wait=off'] + list(args)
        env = env or {}
        full_env = {k: v for k, v in os.environ.items() if not k.startswith('KVMSTATS_')}
        full_env.update(env)
        if shim:
            prefix = os.environ.get('SHIM_PRELOAD_PREFIX')
            full_env['LD_PRELOAD'] = f'{prefix}:{shim}' if prefix else shim
        else:
            full_env.pop('LD_PRELOAD', None)
        shown = ' '.join(f'{k}={v}' for k, v in sorted(env.items()))
        kc.log(f'  starting: {"LD_PRELOAD=" + shim + " " if shim else ""}{shown} '
               + ' '.join(cmd))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr, env=full_env)
        self.pid = self.proc.pid
        self._qmp = None
        if connect:
            self.qmp_ready = self._connect()

    def _connect(self):
        try:
            self._qmp = QMP(self.qmp_path, self.proc)
        except QemuExited:
            text = self.stderr_text()
            if re.search(r'(Could not access KVM|failed to initialize kvm|KVM.*not supported)',
                         text, re.I):
                kc.skip(f'QEMU cannot use KVM here: {text.strip()[-300:]}')
            kc.fail(f'QEMU {self.tag} exited with {self.proc.returncode} at start:\n{text}')
        return time.monotonic() - self.started

    @property
    def qmp(self):
        """The QMP client, connected at the first use."""
        if self._qmp is None:
            self._connect()
        return self._qmp

    def stderr_text(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read().decode(errors='replace')

    def alive(self):
        return self.proc.poll() is None

    def stats_fds(self):
        return kc.count_stats_fds(self.pid)

    def quit(self, timeout=15):
        """QMP quit (SIGTERM if QMP is gone); fails if QEMU is still running after timeout.
        Returns its exit code."""
        if self.proc.poll() is None:
            try:
                self.qmp.cmd('quit')
            except (EOFError, OSError, RuntimeError, ValueError):
                self.proc.terminate()  # QEMU may close the socket before answering
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            kc.fail(f'QEMU {self.tag} still running {timeout}s after QMP quit')
        self.close()
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._qmp:
            self._qmp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
