#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The tap between a real QEMU 7.2 frontend and a scripted backend of ours.

usage: test_vhost_qemu_scripted_backend.py [observe|enforce]   (default: both)

QEMU (KVM or TCG, memfd shared memory, -S: the guest never runs) has two
vhost-user-blk-pci devices, each through a proxy of the tap to a scripted
backend (vhost_user.BlkBackend) that answers QEMU's set-up like a blk
backend, advertising BACKEND_REQ, so that QEMU passes the backend channel
(SET_BACKEND_REQ_FD), which the tap interposes. Proxy "t" is trusted=yes
with regions 0 (1 MiB) and 1 (2 MiB); proxy "u" is untrusted, region 0.

The backends then send on the backend channel valid and invalid EXTERNAL_MAP,
SHMEM_MAP (with a memfd), SHMEM_UNMAP and unknown requests, with and without
NEED_REPLY, each invalid one breaking exactly one rule, and read every reply.
QEMU 7.2 knows none of these requests: it logs "Received unexpected msg type:
N." for each it receives and answers u64 1 when NEED_REPLY is set, echoing the
request's other flag bits (checked here too).

Checked exactly, from the script's own annotations: every vhost_user_* counter
and gauge of both proxies; the frontend-channel counts against what the
backends received; the replies the backend gets (QEMU's, or under enforce the
tap's own failure); under enforce, that QEMU's log shows exactly the relayed
requests and none of the refused ones, and under observe all of them. After
QEMU quits: proxy_connected 0 and the exporter's fd count back to baseline.
"""
import collections
import os
import re
import select
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib import vhost_user as vb  # noqa: E402
from lib.qemu import Qemu, require_qemu  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
PTR = 0x7f00_0000_0000
V, NR = vb.VERSION, vb.NEED_REPLY
UNKNOWN = 77  # a backend request number nobody defines
REGIONS = {'t': {0: 1 * MiB, 1: 2 * MiB}, 'u': {0: 1 * MiB}}


def ext(shmid, offset, length, ptr=PTR):
    return vb.map_payload(shmid, offset, length, ptr, None)


def shm(shmid, shm_offset, length, flags=1, fd_offset=0):
    return vb.map_payload(shmid, fd_offset, shm_offset, length, flags)


class Step:
    """One backend request and the rule it breaks (None: valid)."""

    def __init__(self, what, request, flags, payload, nfds, reason, check=None):
        self.what, self.request, self.flags = what, request, flags
        self.payload, self.nfds, self.reason = payload, nfds, reason
        self.check = check  # {shmid: (mappings, bytes)} to see after this step

    def decodable_map(self):
        """Header valid and payload the right size: the tap decodes the mapping."""
        return self.reason not in ('bad_version', 'reserved_flags', 'size_mismatch', 'fd_count')

    def shmid(self):
        return self.payload[0]

    def length(self):
        off = 16 if self.request == vb.EXTERNAL_MAP else 24
        return int.from_bytes(self.payload[off:off + 8], 'little')


SCRIPT = {
    't': [
        Step('external_map valid, NEED_REPLY', vb.EXTERNAL_MAP, V | NR, ext(0, 0, 64 * KiB), 0, None),
        Step('external_map valid, no NEED_REPLY', vb.EXTERNAL_MAP, V, ext(1, 0, 128 * KiB), 0, None),
        Step('external_map len 0', vb.EXTERNAL_MAP, V | NR, ext(0, 0, 0), 0, 'len_zero'),
        Step('external_map offset+len wraps', vb.EXTERNAL_MAP, V | NR,
             ext(0, 2**64 - 4 * KiB, 8 * KiB), 0, 'overflow'),
        Step('external_map unaligned', vb.EXTERNAL_MAP, V | NR, ext(0, 100, 4 * KiB), 0,
             'unaligned'),
        Step('external_map unknown shmid', vb.EXTERNAL_MAP, V | NR, ext(7, 0, 4 * KiB), 0,
             'unknown_shmid'),
        Step('external_map beyond its region, no NEED_REPLY', vb.EXTERNAL_MAP, V,
             ext(0, 1 * MiB, 4 * KiB), 0, 'unknown_shmid'),
        Step('external_map non-canonical ptr', vb.EXTERNAL_MAP, V | NR,
             ext(0, 0, 4 * KiB, 0x0000_8000_0000_0000), 0, 'noncanonical_ptr'),
        Step('external_map 24 bytes', vb.EXTERNAL_MAP, V | NR, ext(0, 0, 4 * KiB)[:24], 0,
             'size_mismatch'),
        Step('external_map version 2', vb.EXTERNAL_MAP, 0x2 | NR, ext(0, 0, 4 * KiB), 0,
             'bad_version'),
        Step('external_map reserved flag bit 4', vb.EXTERNAL_MAP, V | NR | 0x10,
             ext(0, 0, 4 * KiB), 0, 'reserved_flags'),
        Step('shmem_map valid, no NEED_REPLY (applied as relayed)', vb.SHMEM_MAP, V,
             shm(0, 256 * KiB, 64 * KiB), 1, None, check={0: (1, 64 * KiB)}),
        Step('shmem_map overlapping it', vb.SHMEM_MAP, V | NR, shm(0, 260 * KiB, 4 * KiB), 1,
             'overlap'),
        Step('shmem_map without its fd', vb.SHMEM_MAP, V | NR, shm(0, 512 * KiB, 4 * KiB), 0,
             'fd_count'),
        Step('shmem_map reserved map flag', vb.SHMEM_MAP, V | NR,
             shm(0, 512 * KiB, 4 * KiB, flags=4), 1, 'bad_map_flags'),
        Step('shmem_map valid, NEED_REPLY (QEMU fails it: not applied)', vb.SHMEM_MAP, V | NR,
             shm(1, 0, 4 * KiB), 1, None, check={0: (1, 64 * KiB), 1: (0, 0)}),
        Step('shmem_unmap of nothing mapped', vb.SHMEM_UNMAP, V | NR, shm(0, 768 * KiB, 4 * KiB, 0),
             0, 'not_mapped'),
        Step('shmem_unmap of the mapping', vb.SHMEM_UNMAP, V, shm(0, 256 * KiB, 64 * KiB, 0), 0,
             None, check={0: (0, 0)}),
        Step('unknown request, NEED_REPLY', UNKNOWN, V | NR, b'', 0, None),
        Step('unknown request', UNKNOWN, V, b'\0' * 8, 0, None),
    ],
    'u': [
        Step('external_map of an untrusted backend', vb.EXTERNAL_MAP, V | NR, ext(0, 0, 64 * KiB),
             0, 'out_of_process'),
        Step('external_map of an untrusted backend, no NEED_REPLY', vb.EXTERNAL_MAP, V,
             ext(0, 64 * KiB, 64 * KiB), 0, 'out_of_process'),
        Step('shmem_map valid, NEED_REPLY', vb.SHMEM_MAP, V | NR, shm(0, 0, 4 * KiB), 1, None),
        Step('unknown request, NEED_REPLY', UNKNOWN, V | NR, b'', 0, None),
    ],
}
# Last on each channel: QEMU handles backend requests in order, so once this is
# answered every earlier one has been handled (and logged).
SYNC = Step('sync', UNKNOWN, V | NR, b'', 0, None)


def relayed(step, policy):
    return not (policy == 'enforce' and step.reason)


def wants_reply(step):
    """The tap expects (and under enforce gives) a reply: NEED_REPLY, or EXTERNAL_MAP."""
    return bool(step.flags & NR) or step.request == vb.EXTERNAL_MAP


def expected_reply(step, policy):
    """(flags, u64) of the reply the backend must get, or None."""
    if relayed(step, policy):
        # QEMU 7.2 answers only NEED_REPLY, echoing the request's other flag bits.
        return ((step.flags & ~NR) | vb.REPLY, 1) if step.flags & NR else None
    return (V | vb.REPLY, 1) if wants_reply(step) else None


def request_label(step):
    return vb.BACKEND_NAMES.get(step.request, str(step.request))


def run_script(name, backend, policy, exporter, problems):
    for step in SCRIPT[name] + [SYNC]:
        fds = [os.memfd_create('shm') for _ in range(step.nfds)]
        for fd in fds:
            os.ftruncate(fd, 1 * MiB)
        backend.send(step.request, step.flags, step.payload, fds)
        for fd in fds:
            os.close(fd)
        want = expected_reply(step, policy)
        if want is not None:
            reply = backend.read_reply()
            got = None if reply is None else (reply.request, reply.flags, reply.u64())
            if got != (step.request, want[0], want[1]):
                problems.append(f'{name}: {step.what}: reply {got}, expected '
                                f'{(step.request, want[0], want[1])}')
        if step.check:
            # Mappings applied as relayed: after the sync of the next reply at the latest.
            sync_channel(backend)
            check_mappings(exporter, name, step.check, step.what, problems)
    # Nothing more may come: a reply nobody expected would be here.
    r, _, _ = select.select([backend.channel], [], [], 0.3)
    if r:
        problems.append(f'{name}: unexpected data on the backend channel: {vb.recv_msg(backend.channel)}')


def sync_channel(backend):
    backend.send(SYNC.request, SYNC.flags, SYNC.payload)
    backend.read_reply()


def check_mappings(exporter, name, check, what, problems):
    expo = kc.Exposition(exporter.scrape())
    for shmid, (mappings, nbytes) in check.items():
        for fam, want in (('vhost_user_shmem_mappings', mappings),
                          ('vhost_user_shmem_mapped_bytes', nbytes)):
            key = (fam, (('proxy', name), ('shmid', str(shmid))))
            got = expo.samples.get(key, (None,))[0]
            if got != want:
                problems.append(f'after "{what}": {kc.fmt_key(key)} = {got}, expected {want}')


def expected_metrics(name, policy, extra_syncs, frontend_counts):
    """{(family, labels): value} of proxy `name` after its script."""
    exp = collections.Counter()
    steps = SCRIPT[name] + [SYNC] * (1 + extra_syncs)
    lab = (('proxy', name),)

    def add(fam, labels, v=1):
        exp[(fam, tuple(sorted(lab + labels)))] += v

    add('vhost_user_proxy_connected', (), 1)
    add('vhost_user_proxy_connections_total', (), 1)
    for req, n in frontend_counts.items():
        add('vhost_user_messages_total', (('channel', 'frontend'),
                                          ('request', vb.FRONTEND_NAMES[req])), n)
    for reason in ('bad_version', 'reserved_flags', 'size_mismatch', 'too_large', 'fd_count',
                   'truncated'):
        add('vhost_user_invalid_messages_total', (('channel', 'frontend'), ('reason', reason)), 0)
    for reason in ('bad_version', 'reserved_flags', 'size_mismatch', 'too_large', 'fd_count',
                   'len_zero', 'overflow', 'unaligned', 'unknown_shmid', 'overlap',
                   'noncanonical_ptr', 'out_of_process', 'not_mapped', 'bad_map_flags',
                   'truncated', 'unexpected_reply'):
        add('vhost_user_invalid_messages_total', (('channel', 'backend'), ('reason', reason)), 0)
    for result in ('success', 'failure'):
        add('vhost_user_external_map_replies_total', (('result', result),), 0)
    for shmid in REGIONS[name]:
        add('vhost_user_shmem_mappings', (('shmid', str(shmid)),), 0)
        add('vhost_user_shmem_mapped_bytes', (('shmid', str(shmid)),), 0)

    for s in steps:
        add('vhost_user_messages_total', (('channel', 'backend'), ('request', request_label(s))))
        if s.reason:
            add('vhost_user_invalid_messages_total', (('channel', 'backend'), ('reason', s.reason)))
            # QEMU's reply echoes the flags: a bad one is counted again.
            if relayed(s, policy) and s.flags & NR and s.reason in ('bad_version',
                                                                    'reserved_flags'):
                add('vhost_user_invalid_messages_total', (('channel', 'backend'),
                                                          ('reason', s.reason)))
        if s.reason and policy == 'enforce':
            add('vhost_user_refused_total', (('request', request_label(s)), ('reason', s.reason)))
        if s.request in (vb.EXTERNAL_MAP, vb.SHMEM_MAP, vb.SHMEM_UNMAP) and s.decodable_map():
            for fam in ('vhost_user_shmem_mappings', 'vhost_user_shmem_mapped_bytes'):
                add(fam, (('shmid', str(s.shmid())),), 0)  # exported from the first request on
        if s.request == vb.EXTERNAL_MAP:
            if s.decodable_map():
                add('vhost_user_external_map_requests_total', (('shmid', str(s.shmid())),))
                add('vhost_user_external_map_bytes_total', (('shmid', str(s.shmid())),),
                    s.length() if s.reason in (None, 'out_of_process') else 0)
            if relayed(s, policy) and s.flags & NR:
                add('vhost_user_external_map_replies_total', (('result', 'failure'),))
    return exp


def compare_metrics(expo, name, exp, problems):
    got = {k: v[0] for k, v in expo.samples.items()
           if k[0].startswith('vhost_user_') and ('proxy', name) in k[1]}
    for k in sorted(set(exp) | set(got)):
        if exp.get(k) != got.get(k):
            problems.append(f'{kc.fmt_key(k)} = {got.get(k)}, expected {exp.get(k)}')


def qemu_unknown_counts(qemu):
    """Backend requests QEMU received, by number, from its log."""
    return collections.Counter(int(n) for n in
                               re.findall(r'Received unexpected msg type: (\d+)\.', qemu.stderr_text()))


def run(policy):
    kc.log(f'policy {policy}')
    problems = []
    work = tempfile.mkdtemp(prefix='vt-')
    backends, proxies = {}, []
    for name in ('t', 'u'):
        backends[name] = vb.BlkBackend(f'{work}/{name}-backend.sock')
        regions = ';'.join(f'{i}:{size}' for i, size in REGIONS[name].items())
        proxies.append(f'--vhost.proxy=name={name},listen={work}/{name}-tap.sock,'
                       f'backend={work}/{name}-backend.sock,shmem={regions}'
                       + (',trusted=yes' if name == 't' else ''))
    args = proxies + [f'--vhost.policy={policy}', '--no-kvm.procfs', '--kvm.handoff-socket=',
                      '--log.level=debug']
    with kc.Exporter(args) as exporter:
        baseline = vb.settled_fds(exporter.pid)
        qemu = Qemu(vb.SHARED_MEMORY + [
            '-S',
            '-chardev', f'socket,id=t,path={work}/t-tap.sock',
            '-device', 'vhost-user-blk-pci,chardev=t',
            '-chardev', f'socket,id=u,path={work}/u-tap.sock',
            '-device', 'vhost-user-blk-pci,chardev=u'], work, connect=False)
        for name, b in backends.items():
            if not (b.channel_ready.wait(30) and b.config_done.wait(30)):
                qemu.quit()
                kc.fail(f'{name}: QEMU never finished the device set-up (backend saw '
                        f'{b.requests}); QEMU: {qemu.stderr_text()}\nexporter: {exporter.log_text()}')
        if qemu.qmp.cmd('query-status')['status'] != 'prelaunch':
            problems.append('QEMU is not paused in prelaunch')

        extra_syncs = {'t': 0, 'u': 0}
        for name, b in backends.items():
            run_script(name, b, policy, exporter, problems)
            extra_syncs[name] = sum(1 for s in SCRIPT[name] if s.check)

        expo = kc.Exposition(exporter.scrape())
        problems += expo.errors
        for name, b in backends.items():
            exp = expected_metrics(name, policy, extra_syncs[name], b.request_counts())
            compare_metrics(expo, name, exp, problems)

        # What reached QEMU: exactly the relayed requests.
        want = collections.Counter()
        for name in backends:
            for s in SCRIPT[name] + [SYNC] * (1 + extra_syncs[name]):
                if relayed(s, policy):
                    want[s.request] += 1
        got = qemu_unknown_counts(qemu)
        if got != want:
            problems.append(f'QEMU received backend requests {dict(got)}, expected {dict(want)}')
        kc.log(f'  QEMU received {sum(got.values())} backend requests; '
               f'{sum(1 for n in backends for s in SCRIPT[n] if not relayed(s, policy))} refused')

        rc = qemu.quit()
        if rc not in (0, None):
            problems.append(f'QEMU exited with {rc}: {qemu.stderr_text()}')
        for b in backends.values():
            b.closed.wait(10)
        n = vb.wait_fds(exporter.pid, baseline)
        n = vb.settled_fds(exporter.pid) if n != baseline else n
        if n != baseline:
            problems.append(f'exporter holds {n} fds after QEMU quit, {baseline} before')
        expo = kc.Exposition(exporter.scrape())
        for name in backends:
            key = ('vhost_user_proxy_connected', (('proxy', name),))
            if expo.samples.get(key, (None,))[0] != 0:
                problems.append(f'{kc.fmt_key(key)} = {expo.samples.get(key)} after QEMU quit')
        for b in backends.values():
            b.close()
        if problems:
            print(exporter.log_text()[-3000:], file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return kc.report(problems, f'QEMU through the tap to a scripted backend ({policy})')


def main():
    require_qemu()
    kc.exporter_path()
    policies = sys.argv[1:] or ['observe', 'enforce']
    ok = all([run(p) for p in policies])
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
