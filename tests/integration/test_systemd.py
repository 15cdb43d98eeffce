#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The exporter as a systemd service, checked with systemd's own tools.

usage: test_systemd.py verify|security|socket_activate|notify|manpage

  verify           `systemd-analyze verify` on the shipped units (ExecStart
                   pointed at the build's binary, the man page findable)
  security         `systemd-analyze security --offline=yes`: exposure <= 2.0,
                   and the unit's final system call filter allows every
                   syscall the exporter makes (traced with strace)
  socket_activate  `systemd-socket-activate` passes the listening sockets;
                   the exporter serves on them with --web.systemd-socket
  notify           READY=1 once listening, WATCHDOG=1 at half of
                   WATCHDOG_USEC, STOPPING=1 and exit 0 on SIGTERM, sent to a
                   NOTIFY_SOCKET this test listens on
  manpage          kvmstats_exporter(1) documents every flag of --help and
                   groff finds nothing to warn about

Env: EXPORTER (the binary), TESTS_SOURCE_DIR (tests/). Exit 77 (SKIP) when a
tool is missing or the binary lacks the systemd wiring, saying which.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import http.client
import urllib.request

from lib.kvm_common import fail, log, skip
from lib.net import free_port

MAX_EXPOSURE = 2.0
UNITS = ('kvmstats_exporter.service', 'kvmstats_exporter.socket',
         'kvmstats_exporter-handoff.socket')
# What the exporter needs beyond @system-service, whatever strace shows.
REQUIRED_SYSCALLS = ('pidfd_open', 'pidfd_getfd', 'kcmp', 'ioctl', 'prlimit64',
                     'socket', 'bind', 'listen', 'accept4', 'sendto', 'recvmsg',
                     'epoll_wait', 'timerfd_create', 'signalfd4', 'eventfd2', 'fchmodat')
EXPOSURE_RE = re.compile(r'Overall exposure level for \S+: (\d+(?:\.\d+)?)')


def exporter():
    path = os.environ.get('EXPORTER')
    if not path or not os.access(path, os.X_OK):
        fail(f'EXPORTER={path!r} is not an executable (run through meson test)')
    return path


def source_root():
    tests = os.environ.get('TESTS_SOURCE_DIR') or os.path.join(os.path.dirname(__file__), '..')
    return os.path.abspath(os.path.join(tests, '..'))


def need(tool, package):
    path = shutil.which(tool)
    if not path:
        skip(f'{tool} not found (Debian package "{package}")')
    return path


def help_text():
    return subprocess.run([exporter(), '--help'], capture_output=True, text=True,
                          timeout=30, check=True).stdout


def need_wiring():
    if 'web.systemd-socket' not in help_text():
        skip('the exporter has no --web.systemd-socket yet: sd_notify and socket '
             'activation are not wired into main.c')


def common_args():
    """Flags that keep a test exporter to itself: no /proc scan, no /run socket."""
    args = ['--no-kvm.procfs']
    if '--kvm.handoff-socket' in help_text():
        args.append('--kvm.handoff-socket=')
    return args


def copy_units(dest):
    """The shipped units in dest, with ExecStart naming the build's binary."""
    src = os.path.join(source_root(), 'deploy', 'systemd')
    paths = []
    for unit in UNITS:
        with open(os.path.join(src, unit)) as f:
            text = f.read()
        text, n = re.subn(r'^ExecStart=/usr/bin/kvmstats_exporter\b',
                          'ExecStart=' + exporter(), text, flags=re.M)
        if unit.endswith('.service') and n != 1:
            fail(f'{unit}: expected one "ExecStart=/usr/bin/kvmstats_exporter" line')
        path = os.path.join(dest, unit)
        with open(path, 'w') as f:
            f.write(text)
        paths.append(path)
    return paths


def build_manpage(dest_dir):
    """Runs deploy/man/gen-man.py as the build does; the page's path."""
    man = os.path.join(source_root(), 'deploy', 'man')
    out = os.path.join(dest_dir, 'kvmstats_exporter.1')
    r = subprocess.run([sys.executable, os.path.join(man, 'gen-man.py'), '--exporter', exporter(),
                        '--template', os.path.join(man, 'kvmstats_exporter.1.in'),
                        '--version', 'test', '--output', out],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f'gen-man.py exited {r.returncode}: {r.stderr}')
    return out


# --- verify --------------------------------------------------------------------

def test_verify():
    analyze = need('systemd-analyze', 'systemd')
    with tempfile.TemporaryDirectory(prefix='kvmstats-units-') as tmp:
        units = copy_units(tmp)
        # Documentation=man:kvmstats_exporter(1) must resolve: put the page on MANPATH.
        os.makedirs(os.path.join(tmp, 'man', 'man1'))
        build_manpage(os.path.join(tmp, 'man', 'man1'))
        env = dict(os.environ, MANPATH=os.path.join(tmp, 'man'), SYSTEMD_LOG_LEVEL='notice')
        man = ['--man=yes'] if shutil.which('man') else ['--man=no']
        r = subprocess.run([analyze, 'verify'] + man + units, capture_output=True, text=True,
                           timeout=120, env=env)
        out = (r.stdout + r.stderr).strip()
        log(f'  systemd-analyze verify {" ".join(UNITS)}: exit {r.returncode}')
        if r.returncode != 0 or out:
            fail('systemd-analyze verify complained:\n' + out)
    log('PASS: systemd-analyze verify is silent on the shipped units')


# --- security ------------------------------------------------------------------

def syscall_group(analyze, name, cache):
    """The syscalls in a group (@name), expanding nested groups."""
    if name in cache:
        return cache[name]
    r = subprocess.run([analyze, 'syscall-filter', name], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        fail(f'systemd-analyze syscall-filter {name}: {r.stderr.strip()}')
    out = set()
    for line in r.stdout.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith('#'):
            continue
        out |= syscall_group(analyze, word, cache) if word.startswith('@') else {word}
    cache[name] = out
    return out


def unit_syscall_filter(analyze, unit_text):
    """The final allow list of the unit's SystemCallFilter= lines (allow-list form only)."""
    cache, allowed = {}, None
    for value in re.findall(r'^SystemCallFilter=(.*)$', unit_text, flags=re.M):
        deny = value.startswith('~')
        names = set()
        for word in value.lstrip('~').split():
            names |= syscall_group(analyze, word, cache) if word.startswith('@') else {word}
        if allowed is None:
            if deny:
                fail('the unit should start with an allow list, not a deny list')
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    if allowed is None:
        fail('the unit has no SystemCallFilter=')
    return allowed


def traced_syscalls(tmp):
    """Every syscall the exporter makes while starting, serving a scrape and stopping."""
    strace = shutil.which('strace')
    if not strace:
        log('  strace not found (Debian package "strace"): checking the fixed list only')
        return set()
    with open(exporter(), 'rb') as f:
        if b'__asan_init' in f.read():
            log('  sanitizer build: its runtime makes syscalls of its own; fixed list only')
            return set()
    port = free_port()
    out = os.path.join(tmp, 'strace.out')
    # Every source on: procfs (the default), the canary, the hand-off socket.
    args = [f'--web.listen-address=127.0.0.1:{port}']
    if os.access('/dev/kvm', os.R_OK | os.W_OK):
        args.append('--kvm.canary')
    if '--kvm.handoff-socket' in help_text():
        args.append(f'--kvm.handoff-socket={tmp}/handoff.sock')
    p = subprocess.Popen([strace, '-f', '-qq', '-o', out, exporter()] + args,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(port, p)
        for path in ('/metrics', '/', '/-/ready', '/nope'):
            try:
                urllib.request.urlopen(f'http://127.0.0.1:{port}{path}', timeout=10).read()
            except urllib.error.HTTPError:
                pass
        # SIGTERM to the exporter, not to strace (which would detach and leave it running).
        with open(f'/proc/{p.pid}/task/{p.pid}/children') as f:
            for pid in f.read().split():
                os.kill(int(pid), signal.SIGTERM)
        p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    names = set()
    with open(out) as f:
        for line in f:
            m = re.match(r'\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]', line)
            if m and m.group(1) not in ('exit', 'resumed'):
                names.add(m.group(1))
    if not names:
        fail('strace recorded no system calls')
    return names


def test_security():
    analyze = need('systemd-analyze', 'systemd')
    with tempfile.TemporaryDirectory(prefix='kvmstats-units-') as tmp:
        service = copy_units(tmp)[0]
        r = subprocess.run([analyze, 'security', '--offline=yes', '--no-pager', service],
                           capture_output=True, text=True, timeout=120)
        m = EXPOSURE_RE.search(r.stdout + r.stderr)
        if not m:
            fail(f'no "Overall exposure level" in systemd-analyze security output '
                 f'(exit {r.returncode}):\n{r.stdout}{r.stderr}')
        exposure = float(m.group(1))
        log(f'  exposure level {exposure} (at most {MAX_EXPOSURE})')
        if exposure > MAX_EXPOSURE:
            fail(f'exposure level {exposure} > {MAX_EXPOSURE}:\n{r.stdout}')

        with open(service) as f:
            allowed = unit_syscall_filter(analyze, f.read())
        used = traced_syscalls(tmp)
        missing = sorted((set(REQUIRED_SYSCALLS) | used) - allowed)
        log(f'  syscall filter allows {len(allowed)} syscalls; exporter used {len(used)}')
        if missing:
            fail('the unit\'s SystemCallFilter= denies syscalls the exporter makes: '
                 + ' '.join(missing))
    log(f'PASS: exposure {exposure} <= {MAX_EXPOSURE}; the syscall filter allows what runs')


# --- running the exporter ------------------------------------------------------



def wait_http(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f'exporter exited {proc.returncode} before serving')
        try:
            urllib.request.urlopen(f'http://127.0.0.1:{port}/-/healthy', timeout=2).read()
            return
        except OSError:
            time.sleep(0.05)
    fail(f'nothing served on 127.0.0.1:{port} after {timeout}s')


def get(port, path, timeout=5):
    with urllib.request.urlopen(f'http://127.0.0.1:{port}{path}', timeout=timeout) as r:
        return r.status, r.read().decode()


def stop(proc, timeout=5):
    """SIGTERM; the exit status, failing if it takes longer than timeout."""
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        fail(f'still running {timeout}s after SIGTERM')
    log(f'  stopped {time.monotonic() - t0:.2f}s after SIGTERM, exit {proc.returncode}')
    return proc.returncode


# --- socket activation ---------------------------------------------------------

def test_socket_activate():
    activate = need('systemd-socket-activate', 'systemd')
    need_wiring()
    web, handoff = free_port(), free_port()
    cmd = [activate, '-l', f'127.0.0.1:{web}', '-l', f'127.0.0.1:{handoff}',
           '--fdname=web:handoff', exporter(), '--web.systemd-socket',
           # Would collide with the passed socket if the exporter bound it itself.
           f'--web.listen-address=127.0.0.1:{web}'] + common_args()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # systemd-socket-activate execs the exporter on the first connection.
        deadline = time.monotonic() + 15
        while True:
            try:
                status, body = get(web, '/metrics')
                break
            except OSError:
                if p.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if status != 200 or 'kvmstats_exporter_' not in body:
            fail(f'/metrics on the activated socket: {status}, {body[:200]!r}')
        log(f'  GET /metrics on the passed socket 127.0.0.1:{web}: {status}, {len(body)} bytes')
        # The socket named "handoff" is not for HTTP: the kernel accepts, nobody answers.
        try:
            get(handoff, '/metrics', timeout=1)
            fail('HTTP answered on the socket named "handoff"')
        except OSError:
            log(f'  socket named "handoff" (127.0.0.1:{handoff}) is not served over HTTP')
        rc = stop(p)
    finally:
        if p.poll() is None:
            p.kill()
        err = p.communicate()[1]
    if rc != 0:
        fail(f'exit {rc} after SIGTERM:\n{err}')
    if f'address=127.0.0.1:{web}' not in err:
        fail('no "listening" log line for the passed socket:\n' + err)

    # Without sockets from systemd the flag is an error, said in one line.
    r = subprocess.run([exporter(), '--web.systemd-socket'] + common_args(),
                       capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if not k.startswith('LISTEN_')})
    if r.returncode != 1 or 'systemd' not in r.stderr:
        fail(f'--web.systemd-socket without LISTEN_FDS: exit {r.returncode}, {r.stderr!r}')
    log(f'  without LISTEN_FDS: exit 1, "{r.stderr.strip()[-100:]}"')
    log('PASS: socket activation serves on the passed socket, skips "handoff", stops with 0')


# --- sd_notify and the watchdog --------------------------------------------------

class NotifySocket:
    """An abstract datagram socket, as systemd's NOTIFY_SOCKET is."""

    def __init__(self):
        self.name = f'@kvmstats-test-notify-{os.getpid()}-{time.monotonic_ns()}'
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind('\0' + self.name[1:])
        self.messages = []  # (time, {key: value})

    def receive(self, timeout):
        """The next message, or None after timeout seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        fields = dict(line.split('=', 1) for line in data.decode().split('\n') if '=' in line)
        self.messages.append((time.monotonic(), fields))
        return fields

    def wait_message(self, key, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.receive(deadline - time.monotonic())
            if m and key in m:
                return m
        return None

    def count(self, key, since=0.0):
        return sum(1 for t, m in self.messages if key in m and t >= since)

    def close(self):
        self.sock.close()


def run_notified(ns, port, watchdog_pid):
    """The exporter with NOTIFY_SOCKET and WATCHDOG_*; WATCHDOG_PID='self' names it."""
    env = dict(os.environ, NOTIFY_SOCKET=ns.name, WATCHDOG_USEC='200000')
    cmd = [exporter(), f'--web.listen-address=127.0.0.1:{port}'] + common_args()
    if watchdog_pid == 'self':
        # systemd sets WATCHDOG_PID to the service's pid: a shell that execs keeps its pid.
        cmd = ['/bin/sh', '-c', 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', 'sh'] + cmd
    else:
        env['WATCHDOG_PID'] = str(watchdog_pid)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def test_notify():
    need_wiring()
    ns = NotifySocket()
    port = free_port()
    p = run_notified(ns, port, 'self')
    try:
        ready = ns.wait_message('READY', 15)
        if not ready:
            fail('no READY=1 within 15s')
        # READY=1 means serving: the port answers at once, and says ready.
        status, _ = get(port, '/-/ready')
        if status != 200:
            fail(f'/-/ready answered {status} after READY=1')
        statuses = [m['STATUS'] for _, m in ns.messages if 'STATUS' in m]
        if not statuses:
            fail('no STATUS= with or before READY=1')
        log(f'  READY=1 with 127.0.0.1:{port} serving; STATUS="{statuses[-1]}"')

        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            ns.receive(1.0 - (time.monotonic() - t0))
        pings = ns.count('WATCHDOG', since=t0)
        log(f'  {pings} WATCHDOG=1 in 1s with WATCHDOG_USEC=200000 (one per 100ms expected)')
        if pings < 4:
            fail(f'only {pings} WATCHDOG=1 pings in 1s; expected about 10')
        # Idle clients (one that kept its scrape's connection, one that never
        # sent a request) must not hold up the stop: it waits for requests only.
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
        conn.request('GET', '/metrics')
        resp = conn.getresponse()
        resp.read()
        silent = socket.create_connection(('127.0.0.1', port), timeout=5)
        rc = stop(p, timeout=2)
        conn.close()
        silent.close()
        if rc != 0:
            fail(f'exit {rc} after SIGTERM')
        while ns.receive(0.2):
            pass
        if not ns.count('STOPPING'):
            fail('no STOPPING=1 after SIGTERM')
        log('  STOPPING=1 sent')
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()

    # A watchdog meant for another process (a wrapper that forked us) is not ours to ping.
    ns2 = NotifySocket()
    port = free_port()
    p = run_notified(ns2, port, os.getpid())
    try:
        if not ns2.wait_message('READY', 15):
            fail('no READY=1 within 15s (WATCHDOG_PID of another process)')
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.6:
            ns2.receive(0.6 - (time.monotonic() - t0))
        if ns2.count('WATCHDOG'):
            fail('WATCHDOG=1 sent although WATCHDOG_PID names another process')
        log('  no WATCHDOG=1 when WATCHDOG_PID names another process')
        if stop(p) != 0:
            fail('exit status not 0 after SIGTERM')
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()
    ns.close()
    ns2.close()
    log('PASS: READY=1 when serving, WATCHDOG=1 at half the interval, STOPPING=1, exit 0')


# --- man page ------------------------------------------------------------------

def test_handoff_activate():
    """A SEQPACKET socket passed as "handoff" serves hand-offs; the exporter binds no path."""
    activate = need('systemd-socket-activate', 'systemd')
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'handoff.sock')
        port = free_port()
        cmd = [activate, '--seqpacket', '-l', path, '--fdname=handoff', exporter(),
               f'--web.listen-address=127.0.0.1:{port}', '--no-kvm.procfs',
               f'--kvm.handoff-socket={tmp}/not-bound.sock']
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 15
            while not os.path.exists(path):
                if p.poll() is not None or time.monotonic() > deadline:
                    fail('systemd-socket-activate did not create the socket')
                time.sleep(0.05)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.settimeout(10)
            s.connect(path)  # the first connection makes systemd-socket-activate exec us
            s.send(json.dumps({'version': 1, 'vm': {'name': 'activated'}, 'fds': []}).encode())
            answer = json.loads(s.recv(65536))
            if answer != {'ok': True}:
                fail(f'hand-off over the passed socket answered {answer}')
            wait_http(port, p)
            status, body = get(port, '/metrics')
            if 'kvmstats_exporter_handoff_connections 1' not in body:
                fail('the hand-off connection is not counted on /metrics')
            if os.path.exists(f'{tmp}/not-bound.sock'):
                fail('the exporter bound --kvm.handoff-socket although systemd passed one')
            s.close()
            rc = stop(p)
        finally:
            if p.poll() is None:
                p.kill()
            err = p.communicate()[1]
    if rc != 0:
        fail(f'exit {rc} after SIGTERM:\n{err}')
    log('  hand-off over a socket passed by systemd: ok:true, counted, no path bound')


def test_manpage():
    flags = sorted(set(re.findall(r'^\s+(?:-\w, )?(--[\w.\-\[\]]+)', help_text(), flags=re.M)))
    with tempfile.TemporaryDirectory(prefix='kvmstats-man-') as tmp:
        page = build_manpage(tmp)
        with open(page) as f:
            roff = f.read()
        missing = []
        for flag in flags:
            name = flag.replace('--[no-]', '--').split('=')[0]
            if name.replace('-', '\\-') not in roff and name.replace('-', '\\-').replace(
                    '\\-\\-', '\\-\\-\\fR[\\fBno\\-\\fR]\\fB', 1) not in roff:
                missing.append(flag)
        log(f'  {len(flags)} flags in --help, {len(flags) - len(missing)} in the man page')
        if missing:
            fail('flags missing from kvmstats_exporter(1): ' + ' '.join(missing))
        for section in ('NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'ENDPOINTS', 'SIGNALS',
                        'FILES', 'EXIT STATUS', 'EXAMPLES'):
            if f'\n.SH {section}\n' not in roff and f'\n.SH "{section}"\n' not in roff:
                fail(f'no {section} section')
        groff = shutil.which('groff')
        if not groff:
            log('  groff not found (Debian package "groff-base"): lint skipped')
        else:
            r = subprocess.run([groff, '-man', '-ww', '-z', page], capture_output=True,
                               text=True, timeout=60, env=dict(os.environ, LC_ALL='C.UTF-8'))
            if r.returncode != 0 or r.stderr.strip():
                fail('groff -man -ww warns:\n' + r.stderr)
            log('  groff -man -ww: no warnings')
    log('PASS: kvmstats_exporter(1) documents every flag and formats cleanly')


TESTS = {'verify': test_verify, 'security': test_security,
         'handoff_activate': test_handoff_activate,
         'socket_activate': test_socket_activate, 'notify': test_notify,
         'manpage': test_manpage}

if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1] not in TESTS:
        sys.exit(f'usage: {sys.argv[0]} {"|".join(TESTS)}')
    TESTS[sys.argv[1]]()
