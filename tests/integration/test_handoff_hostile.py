#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hand-off socket against Python peers, well-behaved and hostile (docs/handoff.md).

usage: test_handoff_hostile.py KVMTEST_VMM

The peers make their own KVM VMs (KVM_CREATE_VM, KVM_CREATE_VCPU,
KVM_GET_STATS_FD from Python) and send fds with socket.send_fds.

1. Protocol: registration, vCPU hot-plug ({"fds":["vcpu:2"]}) and unplug
   ({"remove":["vcpu:2"]}), 64 fds in one message, a VM registered without fds.
2. Hostile peers: a disallowed uid, fds that are not what their role says
   (regular file, a file or memfd holding a valid stats blob, a pipe, VM and
   vCPU fds, the wrong kind or index of stats fd, fds of another VM), bad JSON
   of every kind, oversized datagrams, 65 fds, role/fd count mismatches,
   unknown and repeated roles, bad names and labels, name clashes, the same fds
   twice, messages out of sequence, a flood of connections, a peer that never
   reads its answers, and a stream of garbage. Each gets ok:false (and the
   connection stays usable, the VM as it was) or a closed connection; after
   each the exporter still serves /metrics and its total fd count is back to
   its baseline.
3. Fd exhaustion (the exporter under a 32-fd limit): connections it cannot
   take are dropped, fds it cannot receive are refused, and it recovers.
4. An exporter with no privileges at all (uid 65534, no capabilities) serves
   exact stats of VMs handed to it, and one that cannot bind the default
   socket logs one warning and serves anyway.
"""
import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib import handoff_oracle as th  # noqa: E402
from lib.kvm_vm import PyVM  # noqa: E402

NOBODY = 65534
MAX_CONNECTIONS = 8


class Peer:
    """One hand-off connection. answer() is a dict, or None once the exporter closed it."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(10)
        self.s.connect(path)

    def send(self, msg, fds=()):
        data = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
        try:
            socket.send_fds(self.s, [data], list(fds))
        except (BrokenPipeError, ConnectionResetError):
            return None
        return self.answer()

    def answer(self):
        try:
            data = self.s.recv(65536)
        except ConnectionResetError:
            return None
        return json.loads(data) if data else None

    def register(self, name, vm=None, roles=(), **extra):
        msg = {'version': 1, 'vm': {'name': name, **extra}, 'fds': list(roles)}
        return self.send(msg, vm.fds(roles) if vm else [])

    def close(self):
        self.s.close()


def in_child(fn):
    """Runs fn() in a forked child (e.g. after setuid) and returns its JSON result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            out = fn()
        except BaseException as e:  # noqa: B902 - reported to the parent
            out = {'exception': repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b''
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def fd_count(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def rss_kib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


class Harness:
    def __init__(self, ex, sock):
        self.ex, self.sock, self.ok, self.n = ex, sock, True, 0
        time.sleep(0.2)
        self.baseline = self.settle()
        kc.log(f'  exporter fd baseline: {self.baseline}')

    def settle(self, want=None, timeout=5):
        """The exporter's fd count once HTTP connections are gone (== want if given)."""
        deadline = time.monotonic() + timeout
        last = fd_count(self.ex.pid)
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = fd_count(self.ex.pid)
            if (want is None and now == last) or now == want:
                return now
            last = now
        return last

    def metrics(self):
        return kc.Exposition(self.ex.scrape())

    def rejected(self, expo=None):
        expo = expo or self.metrics()
        return {dict(k[1])['reason']: int(v[0]) for k, v in expo.samples.items()
                if k[0] == 'kvmstats_exporter_handoff_rejected_total'}

    def check(self, what, problems):
        """Serving and back at the fd baseline after every case."""
        expo = None
        if self.ex.proc.poll() is not None:
            problems.append(f'exporter exited with {self.ex.proc.returncode}')
        elif (n := self.settle(self.baseline)) != self.baseline:
            problems.append(f'exporter holds {n} fds, baseline {self.baseline}')
        try:
            expo = self.metrics()
        except OSError as e:
            problems.append(f'exporter no longer serves: {e}')
        if expo and th.self_value(expo, 'kvmstats_exporter_handoff_connections') != 0:
            problems.append('connections left open')
        self.ok &= kc.report(problems, what)
        self.n += 1


def refused(answer, reason_before, reason_after, reason, contains):
    problems = []
    if not isinstance(answer, dict) or answer.get('ok') is not False or \
            not isinstance(answer.get('error'), str) or contains not in answer['error']:
        problems.append(f'answer {answer!r}, expected ok:false with "{contains}"')
    elif set(answer) != {'ok', 'error'} or '\n' in answer['error']:
        problems.append(f'answer {answer!r} is not one sentence in {{ok, error}}')
    if reason_after.get(reason, 0) - reason_before.get(reason, 0) != 1:
        problems.append(f'rejected_total{{reason="{reason}"}} went from '
                        f'{reason_before.get(reason)} to {reason_after.get(reason)}')
    return problems


def protocol(h, vm):
    """The happy paths, checked in the exposition (per-vCPU mode)."""
    problems = []
    p = Peer(h.sock)

    def vcpus_of(name):
        return sorted(int(dict(k[1])['vcpu']) for k in h.metrics().samples
                      if k[0] == 'kvm_vcpu_exits_total' and dict(k[1]).get('vm') == name)

    def expect(answer, what):
        if answer != {'ok': True}:
            problems.append(f'{what}: answered {answer}')

    expect(p.register('py-1', vm, ['vm', 'vcpu:0', 'vcpu:1'], uuid='u-1',
                      labels={'tenant': 'a"b\\c', 'az': 'z\u00e9'}), 'register')
    expo = h.metrics()
    info = [dict(k[1]) for k in expo.samples if k[0] == 'kvm_vm_info'
            and dict(k[1]).get('vm') == 'py-1']
    want = {'vm': 'py-1', 'uuid': 'u-1', 'pid': str(os.getpid()), 'vmm': 'python3',
            'kvm_id': f'kvm-{os.getpid()}', 'source': 'handoff', 'tenant': 'a"b\\c',
            'az': 'z\u00e9'}
    if info != [want]:
        problems.append(f'kvm_vm_info {info}, expected {want}')
    if kc.count_stats_fds(h.ex.pid) != (1, 2):
        problems.append(f'stats fds {kc.count_stats_fds(h.ex.pid)} after register')
    expect(p.send({'fds': ['vcpu:2']}, vm.fds(['vcpu:2'])), 'hot-plug vcpu:2')
    if vcpus_of('py-1') != [0, 1, 2]:
        problems.append(f'after hot-plug the vCPUs are {vcpus_of("py-1")}')
    expect(p.send({'remove': ['vcpu:2']}), 'unplug vcpu:2')
    if vcpus_of('py-1') != [0, 1] or kc.count_stats_fds(h.ex.pid) != (1, 2):
        problems.append(f'after unplug: vCPUs {vcpus_of("py-1")}, '
                        f'fds {kc.count_stats_fds(h.ex.pid)}')
    expect(p.send({'fds': ['vcpu:2', 'vcpu:3']}, vm.fds(['vcpu:2', 'vcpu:3'])), 're-plug')
    expect(p.send({'remove': ['vm', 'vcpu:0']}), 'remove vm and vcpu:0')
    if kc.count_stats_fds(h.ex.pid) != (0, 3) or vcpus_of('py-1') != [1, 2, 3]:
        problems.append(f'after removing vm: fds {kc.count_stats_fds(h.ex.pid)}')
    if any(k[0].startswith('kvm_vm_') and k[0] != 'kvm_vm_info' and dict(k[1]).get('vm') == 'py-1'
           for k in h.metrics().samples):
        problems.append('VM stats still exported after "remove": ["vm"]')
    p.close()
    h.check('registration, hot-plug, unplug, removal of the VM fd', problems)

    # vCPUs made by other threads (QEMU's vCPU threads): ids name the thread, not the VMM.
    problems = []
    threaded = PyVM(0)
    try:
        for i in range(2):
            threaded.add_vcpu_in_thread(i)
        p = Peer(h.sock)
        expect(p.register('py-threads', threaded, ['vm', 'vcpu:0', 'vcpu:1']), 'register')
        if vcpus_of('py-threads') != [0, 1]:
            problems.append(f'vCPUs made by threads: {vcpus_of("py-threads")}')
        p.close()
    finally:
        threaded.close()
    h.check('vCPU stats fds whose ids name other threads', problems)

    # No fds at first, then more than one message's worth (64 + 1).
    problems = []
    big = PyVM(64)
    try:
        p = Peer(h.sock)
        expect(p.register('py-big'), 'register without fds')
        roles = ['vm'] + [f'vcpu:{i}' for i in range(63)]
        expect(p.send({'fds': roles}, big.fds(roles)), '64 fds in one message')
        expect(p.send({'fds': ['vcpu:63']}, big.fds(['vcpu:63'])), 'the 65th in the next')
        if kc.count_stats_fds(h.ex.pid) != (1, 64):
            problems.append(f'stats fds {kc.count_stats_fds(h.ex.pid)}, expected (1, 64)')
        p.close()
    finally:
        big.close()
    h.check('64 fds per message, a VM filled in several messages', problems)


def hostile_cases(vm, tmp):
    """(what, registered first?, message, fds, reason, error contains, closes)."""
    regular = os.open(os.path.join(tmp, 'regular'), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    blob = b''
    while chunk := os.pread(vm.stats['vm'], 65536, len(blob)):
        blob += chunk
    blob_file = os.open(os.path.join(tmp, 'blob'), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.write(blob_file, blob)
    memfd = os.memfd_create('blob', os.MFD_CLOEXEC)
    os.write(memfd, blob)
    pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
    reg = lambda roles, name='x': {'version': 1, 'vm': {'name': name}, 'fds': roles}  # noqa: E731
    vmv = lambda name, **kw: {'version': 1, 'vm': {'name': name, **kw}, 'fds': []}  # noqa: E731
    s, v0, v1, v3 = vm.stats['vm'], vm.stats['vcpu:0'], vm.stats['vcpu:1'], vm.stats['vcpu:3']
    labels17 = {f'l{i}': 'v' for i in range(17)}
    cases = [
        ('regular file as "vm"', False, reg(['vm']), [regular], 'fd', 'is not a KVM stats fd'),
        ('file holding a valid stats blob', False, reg(['vm']), [blob_file], 'fd',
         'is not a KVM stats fd'),
        ('memfd holding a valid stats blob', False, reg(['vm']), [memfd], 'fd',
         'is not a KVM stats fd'),
        ('pipe', False, reg(['vcpu:0']), [pipe_r], 'fd', 'is not a KVM stats fd'),
        ('VM fd, not its stats fd', False, reg(['vm']), [vm.vm], 'fd', 'is a KVM VM fd'),
        ('vCPU fd, not its stats fd', False, reg(['vcpu:0']), [vm.vcpus[0]], 'fd',
         'is a KVM vCPU fd'),
        ('the /dev/kvm fd', False, reg(['vm']), [vm.kvm], 'fd', 'is not a KVM stats fd'),
        ('vCPU stats fd as "vm"', False, reg(['vm']), [v0], 'fd', 'is the stats fd of vCPU 0'),
        ('vcpu:3 stats fd as "vcpu:2"', False, reg(['vcpu:2']), [v3], 'fd',
         'is the stats fd of vCPU 3'),
        ('VM stats fd as "vcpu:0"', False, reg(['vcpu:0']), [s], 'fd', "is the VM's stats fd"),
        ('good fds then a bad one (all or nothing)', False, reg(['vm', 'vcpu:0', 'vcpu:1']),
         [s, v0, pipe_w], 'fd', 'fd 2 (role "vcpu:1")'),
        ('malformed JSON', False, b'{"version": 1, "vm": {', [], 'json', 'not valid JSON'),
        ('malformed JSON with fds', False, b'{"fds": ["vm"', [s], 'json', 'not valid JSON'),
        ('empty object', False, b'{}', [], 'version', '"version" is missing'),
        ('a JSON array', False, b'["vm"]', [], 'json', 'must be a JSON object'),
        ('a JSON string', False, b'"hello"', [], 'json', 'must be a JSON object'),
        ('a JSON number', False, b'1', [], 'json', 'must be a JSON object'),
        ('two objects', False, b'{}{}', [], 'json', 'not valid JSON'),
        ('NUL bytes', False, b'{\0}', [], 'json', 'not valid JSON'),
        ('duplicate keys', False, b'{"version":1,"version":1,"vm":{"name":"a"},"fds":[]}', [],
         'json', 'not valid JSON'),
        ('unknown top-level key', False, {**reg([]), 'extra': True}, [], 'json',
         'unknown key "extra"'),
        ('unknown key in vm', False, {'version': 1, 'vm': {'name': 'a', 'nam': 'b'}, 'fds': []},
         [], 'json', 'unknown key "nam" in "vm"'),
        ('version 2', False, {**reg([]), 'version': 2}, [], 'version', 'must be the number 1'),
        ('version "1"', False, {**reg([]), 'version': '1'}, [], 'version', 'must be the number 1'),
        ('version 1.0', False, b'{"version":1.0,"vm":{"name":"a"},"fds":[]}', [], 'version',
         'must be the number 1'),
        ('no version', False, {'vm': {'name': 'a'}, 'fds': []}, [], 'version',
         '"version" is missing'),
        ('"fds" before registering', False, {'fds': []}, [], 'version', '"version" is missing'),
        ('"remove" before registering', False, {'remove': []}, [], 'version',
         'not registered yet'),
        ('oversized datagram', False, b'{"x":"' + b'a' * 65600 + b'"}', [s], 'truncated',
         'longer than 65536 bytes'),
        ('fewer fds than roles', False, reg(['vm', 'vcpu:0']), [s], 'fd',
         '1 fds are attached for 2 roles'),
        ('more fds than roles', False, reg(['vm']), [s, v0], 'fd', '2 fds are attached for 1 roles'),
        ('fds without "fds"', False, b'{"version":1,"vm":{"name":"a"},"fds":[]}', [s], 'fd',
         '1 fds are attached for 0 roles'),
        ('unknown role', False, reg(['cpu:0']), [v0], 'role', 'not a role'),
        ('vCPU id 16384', False, reg(['vcpu:16384']), [v0], 'role', 'not a role'),
        ('role not a string', False, reg([0]), [v0], 'role', 'is not a string'),
        ('duplicate roles', False, reg(['vcpu:0', 'vcpu:0']), [v0, v0], 'role',
         'repeats role "vcpu:0"'),
        ('65 roles', False, reg(['vm'] * 65), [], 'bounds', 'at most 64'),
        ('name with a newline', False, vmv('a\nb'), [], 'name', '"vm.name" must be'),
        ('name with ESC', False, vmv('a\x1b[31m'), [], 'name', '"vm.name" must be'),
        ('name with a C1 control', False, vmv('a\u0085'), [], 'name', '"vm.name" must be'),
        ('name of invalid UTF-8', False, b'{"version":1,"vm":{"name":"\xff\xfe"},"fds":[]}', [],
         'json', 'not valid JSON'),
        ('name of 254 bytes', False, vmv('n' * 254), [], 'name', '"vm.name" must be'),
        ('empty name', False, vmv(''), [], 'name', '"vm.name" must be'),
        ('uuid of 65 bytes', False, vmv('a', uuid='u' * 65), [], 'name', '"vm.uuid" must be'),
        ('reserved label "vm"', False, vmv('a', labels={'vm': 'x'}), [], 'name', 'is reserved'),
        ('reserved label "job"', False, vmv('a', labels={'job': 'x'}), [], 'name', 'is reserved'),
        ('reserved label "instance"', False, vmv('a', labels={'instance': 'x'}), [], 'name',
         'is reserved'),
        ('reserved label "le"', False, vmv('a', labels={'le': 'x'}), [], 'name', 'is reserved'),
        ('label "__name__"', False, vmv('a', labels={'__name__': 'x'}), [], 'name', 'not valid'),
        ('label "a-b"', False, vmv('a', labels={'a-b': 'x'}), [], 'name', 'not valid'),
        ('17 labels', False, vmv('a', labels=labels17), [], 'bounds', 'at most 16'),
        ('label value of 257 bytes', False, vmv('a', labels={'a': 'v' * 257}), [], 'name',
         'the value of label "a"'),
        ('register twice', True, reg([]), [], 'version', 'already registered'),
        ('"fds" with no fd', True, {'fds': ['vcpu:0']}, [], 'fd', '0 fds are attached for 1'),
        ('"fds" with two fds for one role', True, {'fds': ['vcpu:0']}, [v0, v1], 'fd',
         '2 fds are attached for 1'),
        ('"remove" of a role not held', True, {'remove': ['vcpu:0']}, [], 'role',
         'the VM has no role "vcpu:0"'),
        ('"remove" with an fd', True, {'remove': []}, [v0], 'fd', 'takes none'),
        ('"fds" and "remove" together', True, {'fds': [], 'remove': []}, [], 'json',
         'exactly one of'),
        ('unknown key later', True, {'fds': [], 'add': 1}, [], 'json', 'unknown key "add"'),
    ]
    return cases, [regular, blob_file, memfd, pipe_r, pipe_w]


def hostile(h, vm, tmp):
    cases, extra_fds = hostile_cases(vm, tmp)
    try:
        for i, (what, registered, msg, fds, reason, contains) in enumerate(cases):
            problems = []
            p = Peer(h.sock)
            if registered and p.register(f'case-{i}') != {'ok': True}:
                problems.append('could not register first')
            before = h.rejected()
            answer = p.send(msg, fds)
            problems += refused(answer, before, h.rejected(), reason, contains)
            # Refused whole: the connection is usable and the VM is as before.
            if registered:
                again = p.send({'fds': ['vcpu:0']}, [vm.stats['vcpu:0']])
            else:
                again = p.register(f'after-{i}', vm, ['vm', 'vcpu:0', 'vcpu:1'])
            if again != {'ok': True}:
                problems.append(f'a good message after the refusal was answered {again}')
            p.close()
            h.check(f'{what}: ok:false, reason {reason}', problems)
    finally:
        for fd in extra_fds:
            os.close(fd)


def hostile_connections(h, vm):
    # Disallowed uid: disconnected without an answer.
    before = h.rejected()
    res = in_child(lambda: (os.setgroups([]), os.setgid(NOBODY), os.setuid(NOBODY),
                            Peer(h.sock).register('nobody', vm, ['vm']))[-1])
    problems = [] if res is None else [f'uid {NOBODY} was answered {res}']
    if h.rejected().get('peer', 0) != before.get('peer', 0) + 1:
        problems.append('rejected_total{reason="peer"} did not grow by one')
    h.check(f'uid {NOBODY} (not allowed): closed without an answer', problems)

    # 65 fds: the ancillary data is cut (MSG_CTRUNC): refused and disconnected.
    before = h.rejected()
    p = Peer(h.sock)
    answer = p.send(b'{"version":1,"vm":{"name":"many"},"fds":[]}', [vm.stats['vm']] * 65)
    problems = refused(answer, before, h.rejected(), 'truncated', 'did not all arrive')
    if p.answer() is not None:
        problems.append('the connection stayed open after MSG_CTRUNC')
    p.close()
    h.check('65 fds: ok:false, then disconnected', problems)

    # Same name, same fds: a second connection may take neither.
    a, b = Peer(h.sock), Peer(h.sock)
    problems = []
    if a.register('taken', vm, ['vm']) != {'ok': True}:
        problems.append('first registration refused')
    ans = b.register('taken')
    if not ans or ans.get('ok') is not False or 'is taken' not in ans.get('error', ''):
        problems.append(f'name clash answered {ans}')
    ans = b.register('other', vm, ['vm'])
    if not ans or ans.get('ok') is not False or 'already registered for another VM' \
            not in ans.get('error', ''):
        problems.append(f'the same fd twice answered {ans}')
    a.close()
    b.close()
    h.check('name clash and the same fds on two connections: refused', problems)

    # A flood of connections beyond --kvm.handoff-max-connections.
    problems, peers = [], []
    for i in range(MAX_CONNECTIONS):
        peers.append(Peer(h.sock))
        if peers[-1].register(f'flood-{i}') != {'ok': True}:
            problems.append(f'connection {i} within the limit refused')
    extra = [Peer(h.sock) for _ in range(3 * MAX_CONNECTIONS)]
    answers = [p.register('over') for p in extra]
    if any(a is not None for a in answers):
        problems.append(f'connections over the limit answered: {answers}')
    conns = th.self_value(h.metrics(), 'kvmstats_exporter_handoff_connections')
    if conns != MAX_CONNECTIONS:
        problems.append(f'handoff_connections = {conns}, expected {MAX_CONNECTIONS}')
    for p in peers + extra:
        p.close()
    h.check(f'flood of {4 * MAX_CONNECTIONS} connections, {MAX_CONNECTIONS} allowed', problems)

    # Garbage, over and over: answered every time, no memory kept.
    p = Peer(h.sock)
    rss0 = rss_kib(h.ex.pid)
    problems = []
    for i in range(300):
        for msg in (b'\xff' * 65536, b'[' * 65536, b'{"x":"' + b'a' * 70000 + b'"}'):
            ans = p.send(msg)
            if not ans or ans.get('ok') is not False:
                problems.append(f'garbage {i} answered {ans}')
                break
        if problems:
            break
    grew = rss_kib(h.ex.pid) - rss0
    kc.log(f'  RSS grew by {grew} KiB over 900 garbage messages')
    with open(f'/proc/{h.ex.pid}/maps') as f:
        asan = 'libasan' in f.read()
    if asan:
        kc.log('  (ASan build: freed memory sits in its quarantine, RSS bound not checked)')
    elif grew > 8192:
        problems.append(f'RSS grew by {grew} KiB over 900 garbage messages')
    p.close()
    h.check('900 garbage datagrams of 64 KiB: each refused, memory bounded', problems)

    # A peer that never reads its answers is dropped, not buffered for.
    p = Peer(h.sock)
    p.s.settimeout(5)
    dropped = False
    for _ in range(20000):
        try:
            p.s.send(b'not json')
        except (BrokenPipeError, ConnectionResetError):
            dropped = True
            break
        except socket.timeout:
            break
    p.close()
    h.check('a peer that does not read its answers is disconnected',
            [] if dropped else ['the exporter kept a peer that never reads'])


def part_hostile(tmp):
    os.chmod(tmp, 0o755)  # uid 65534 must reach the socket to be refused by credentials
    sock = os.path.join(tmp, 'hostile.sock')
    args = ['--no-kvm.procfs', '--kvm.per-vcpu', f'--kvm.handoff-socket={sock}',
            f'--kvm.handoff-max-connections={MAX_CONNECTIONS}', '--log.level=error']
    vm = PyVM(4)
    try:
        with kc.Exporter(args) as ex:
            if oct(os.stat(sock).st_mode & 0o777) != '0o666':
                kc.fail(f'socket mode {oct(os.stat(sock).st_mode)}, expected 0666')
            h = Harness(ex, sock)
            protocol(h, vm)
            hostile(h, vm, tmp)
            hostile_connections(h, vm)
            kc.log(f'  {h.n} cases')
            return h.ok
    finally:
        vm.close()


def part_fd_exhaustion(tmp):
    """Peers use up the exporter's fds: it drops what it cannot take, and recovers."""
    prlimit = shutil.which('prlimit')
    if not prlimit:
        kc.fail('prlimit (util-linux) is missing')
    sock = os.path.join(tmp, 'nofile.sock')
    vm = PyVM(2)
    try:
        with kc.Exporter(['--no-kvm.procfs', f'--kvm.handoff-socket={sock}', '--log.level=error'],
                         prefix=[prlimit, '--nofile=32:32']) as ex:
            h = Harness(ex, sock)
            peers, closed, problems = [], 0, []
            for i in range(64):
                p = Peer(sock)
                if p.register(f'nofile-{i}') == {'ok': True}:
                    peers.append(p)
                else:
                    closed += 1
                    p.close()
            kc.log(f'  with 32 fds: {len(peers)} connections kept, {closed} dropped')
            if not peers or not closed:
                problems.append(f'{len(peers)} kept, {closed} dropped: the limit was not reached')
            else:
                ans = peers[0].send({'fds': ['vm', 'vcpu:0']}, vm.fds(['vm', 'vcpu:0']))
                if not ans or 'did not all arrive' not in ans.get('error', ''):
                    problems.append(f'fds sent to an exporter without free fds: answered {ans}')
                if peers[0].answer() is not None:
                    problems.append('connection kept after its fds were cut (MSG_CTRUNC)')
            for p in peers:
                p.close()
            h.check('fd exhaustion: connections dropped, fds cut, then back to normal', problems)
            p = Peer(sock)
            ans = p.register('after', vm, ['vm', 'vcpu:0', 'vcpu:1'])
            p.close()
            h.check('fd exhaustion: a registration afterwards works',
                    [] if ans == {'ok': True} else [f'answered {ans}'])
            return h.ok
    finally:
        vm.close()


def caps(pid):
    with open(f'/proc/{pid}/status') as f:
        st = dict(line.rstrip('\n').split(':\t', 1) for line in f if ':\t' in line)
    return st['Uid'].split()[0], {k: int(st[k], 16) for k in ('CapEff', 'CapPrm', 'CapBnd')}


def part_unprivileged(fixture):
    setpriv = shutil.which('setpriv')
    if not setpriv:
        kc.fail('setpriv (util-linux) is missing: cannot drop every privilege')
    drop = [setpriv, f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups',
            '--inh-caps=-all', '--bounding-set=-all']
    ok = True
    with tempfile.TemporaryDirectory(prefix='handoff-nobody-') as tmp:
        os.chmod(tmp, 0o755)
        os.chown(tmp, NOBODY, NOBODY)
        sock = os.path.join(tmp, 'h.sock')
        with kc.Exporter([f'--kvm.handoff-socket={sock}', '--kvm.handoff-allow-uid=0'],
                         prefix=drop) as ex, \
                kc.Fixture(fixture, 2, 3, 7, extra=th.fixture_args(sock)) as fx:
            uid, c = caps(ex.pid)
            problems = [] if uid == str(NOBODY) and not any(c.values()) else \
                [f'exporter runs as uid {uid} with {c}']
            ok &= kc.report(problems, f'exporter runs as uid {NOBODY} with no capabilities')
            ok &= th.check_exact(ex.scrape(), fx.dumps, False,
                                 'unprivileged exporter: exact stats of hand-off VMs')
            ok &= kc.report(th.check_copies(ex, fx.pids, 'unprivileged'),
                            'unprivileged exporter holds each handed-off file once')

    # The default socket lives in /run, which this user cannot write: one warning, still serving.
    with kc.Exporter(['--no-kvm.procfs'], prefix=drop) as ex:
        ex.scrape()
        lines = [ln for ln in ex.log_text().splitlines() if 'hand-off socket' in ln]
        problems = [] if len(lines) == 1 and 'path=/run/kvmstats_exporter/handoff.sock' in lines[0] \
            and 'level=warn' in lines[0] else [f'log lines about the socket: {lines}']
        ok &= kc.report(problems, 'no access to the default socket: one warning, still serving')
    return ok


def main():
    kc.require_kvm()
    if os.geteuid() != 0:
        kc.skip('needs root: to be an allowed peer of an unprivileged exporter and to setuid')
    fixture = kc.fixture_path(sys.argv)
    with tempfile.TemporaryDirectory(prefix='handoff-hostile-') as tmp:
        ok = part_hostile(tmp)
        ok &= part_fd_exhaustion(tmp)
    ok &= part_unprivileged(fixture)
    if not ok:
        sys.exit(1)
    kc.log('PASS')


if __name__ == '__main__':
    main()
