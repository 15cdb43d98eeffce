#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The container image: built with deploy/container/build from the git tree
(no registry), then run with podman; and built again from a fresh clone.

usage: test_container.py

1. The image: labels (org.opencontainers.image.* with this version and
   revision), user 65534, entrypoint, the hand-off volume, port 9977, a
   healthcheck; its files are the exporter, the shim, the healthcheck, their
   shared libraries and the account files, and nothing else (no shell).
2. `--help` in the container is the built binary's, byte for byte.
3. Run read-only with every capability dropped: it serves /metrics (a
   parseable exposition with this version's build_info) and /-/ready, its
   process runs as uid/gid 65534 with no capability, the hand-off socket
   appears in the volume, and the healthcheck passes; a container whose
   exporter listens elsewhere fails the same healthcheck.
4. A fresh `git clone` builds with its own script, to the same file system
   layers when the working tree has no change outside tests/.
"""
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import container_common as cc
import deploy_common as dc

kc = dc.kc


def part_image(image, problems):
    labels = json.loads(image.inspect('{{json .Labels}}'))
    rev = subprocess.run(['git', '-C', dc.source_dir(), 'rev-parse', '--short=12', 'HEAD'],
                         capture_output=True, text=True).stdout.strip() or 'unknown'
    want = {'org.opencontainers.image.title': 'kvmstats_exporter',
            'org.opencontainers.image.version': cc.version(),
            'org.opencontainers.image.revision': rev,
            'org.opencontainers.image.licenses': 'MIT'}
    for k, v in want.items():
        if labels.get(k) != v:
            problems.append(f'label {k}={labels.get(k)!r}, expected {v!r}')
    if not labels.get('org.opencontainers.image.created', '').endswith('Z'):
        problems.append(f'label created={labels.get("org.opencontainers.image.created")!r}')
    cfg = json.loads(image.inspect('{{json .Config}}'))
    if cfg.get('User') != '65534:65534':
        problems.append(f'User {cfg.get("User")!r}, expected 65534:65534')
    if cfg.get('Entrypoint') != ['/usr/bin/kvmstats_exporter']:
        problems.append(f'Entrypoint {cfg.get("Entrypoint")}')
    if '/run/kvmstats_exporter' not in (cfg.get('Volumes') or {}):
        problems.append(f'Volumes {cfg.get("Volumes")}: no /run/kvmstats_exporter')
    if '9977/tcp' not in (cfg.get('ExposedPorts') or {}):
        problems.append(f'ExposedPorts {cfg.get("ExposedPorts")}')
    hc = json.loads(image.inspect('{{json .HealthCheck}}') or 'null') or {}
    if (hc.get('Test') or [None])[0] != 'CMD' or '/-/healthy' not in hc.get('Test', []):
        problems.append(f'HEALTHCHECK {hc}')

    # The files: podman export of a created (never started) container.
    name = f'kvmstats-files-{os.getpid()}'
    dc.podman(image.env, 'create', '--name', name, image.tag)
    try:
        with tempfile.TemporaryFile() as tar:
            subprocess.run(['podman', 'export', name], env=image.env, stdout=tar, check=True,
                           timeout=120)
            tar.seek(0)
            with tarfile.open(fileobj=tar) as t:
                members = {('/' + m.name.lstrip('./')): m for m in t.getmembers()}
    finally:
        dc.podman(image.env, 'rm', name, check=False)
    files = {p for p, m in members.items() if not m.isdir()}
    programs = {'/usr/bin/kvmstats_exporter', '/usr/lib/kvmstats_exporter/libkvmstats_preload.so',
                '/usr/libexec/kvmstats_exporter/kvmstats_healthcheck'}
    for p in sorted(programs - files):
        problems.append(f'{p} is not in the image')
    # The exporter's gzip is isa-l's in the image (-Disal=enabled), loaded from there.
    if not any(os.path.basename(p).startswith('libisal.so') for p in files):
        problems.append('libisal.so (the exporter\'s gzip) is not in the image')
    allowed = programs | {'/etc/passwd', '/etc/group'}
    for p in sorted(files - allowed):
        if not ('/lib' in p and '.so' in os.path.basename(p)):
            problems.append(f'unexpected file in the image: {p}')
    if '/run/kvmstats_exporter' not in members or members['/run/kvmstats_exporter'].uid != 65534:
        problems.append('/run/kvmstats_exporter is missing or not owned by 65534')
    dc.log(f'  image: {len(files)} files, {sum(members[p].size for p in files)} bytes of files')
    return files


def part_help(image, problems):
    host = subprocess.run([kc.exporter_path(), '--help'], capture_output=True, text=True,
                          timeout=30)
    rc, out, err = cc.run_to_completion(image, ['--help'])
    if rc != host.returncode or out != host.stdout:
        problems.append(f'--help in the container (exit {rc}, {len(out)} bytes) differs from '
                        f'the binary\'s (exit {host.returncode}, {len(host.stdout)} bytes)')
    rc, out, err = cc.run_to_completion(image, ['--version'])
    if rc != 0 or cc.version() not in out + err:
        problems.append(f'--version in the container: exit {rc}, {(out + err).strip()!r}')


def part_run(image, problems):
    with tempfile.TemporaryDirectory(prefix='kvmstats-volume-') as vol:
        os.chown(vol, 65534, 65534) if os.geteuid() == 0 else None
        with cc.Container(image, ['--log.level=debug'],
                          run_opts=['-v', f'{vol}:/run/kvmstats_exporter']) as ct:
            status, body = ct.get('/metrics')
            expo = kc.Exposition(body)
            build = [dict(k[1]) for k in expo.samples if k[0] == 'kvmstats_exporter_build_info']
            if status != 200 or expo.errors or not build or build[0].get('version') != cc.version():
                problems.append(f'/metrics: HTTP {status}, {len(expo.samples)} samples, '
                                f'errors {expo.errors[:3]}, build_info {build}')
            st = cc.proc_status(ct.pid)
            uids, gids = st['Uid'].split(), st['Gid'].split()
            if set(uids) != {'65534'} or set(gids) != {'65534'} or int(st['CapEff'], 16) != 0:
                problems.append(f'exporter process: Uid {uids} Gid {gids} CapEff {st["CapEff"]}')
            sock = os.path.join(vol, 'handoff.sock')
            if not os.path.exists(sock):
                problems.append(f'no hand-off socket in the volume: {os.listdir(vol)}')
            r = dc.podman(image.env, 'healthcheck', 'run', ct.name, check=False)
            health = ct.inspect('{{.State.Health.Status}}')
            if r.returncode != 0 or health != 'healthy':
                problems.append(f'healthcheck: exit {r.returncode} {r.stdout.strip()!r}, '
                                f'status {health!r}')
            dc.log(f'  running: HTTP {status}, {len(expo.samples)} samples, uid {uids[0]}, '
                   f'CapEff {st["CapEff"]}, healthcheck {health}, VmRSS {st["VmRSS"]}')
    # The same healthcheck against an exporter that is not on :9977 must fail.
    with cc.Container(image, ['--web.listen-address=:9988'], wait=False) as ct:
        deadline = time.monotonic() + 20
        while 'listening' not in ct.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        r = dc.podman(image.env, 'healthcheck', 'run', ct.name, check=False)
        health = ct.inspect('{{.State.Health.Status}}')
        if r.returncode == 0 or health == 'healthy':
            problems.append(f'healthcheck passed with nothing on :9977 (exit {r.returncode}, '
                            f'{health!r})')


def part_clone(image, problems):
    """The build script in a fresh clone builds the same image: the same file
    system layers, when the working tree holds no change outside tests/."""
    src = dc.source_dir()
    dirty = subprocess.run(['git', '-C', src, 'status', '--porcelain', '--', '.', ':!tests'],
                           capture_output=True, text=True, timeout=60).stdout.strip()
    with tempfile.TemporaryDirectory(prefix='kvmstats-clone-') as tmp:
        clone = os.path.join(tmp, 'src')
        subprocess.run(['git', 'clone', '--quiet', src, clone], check=True, timeout=300)
        tag = f'localhost/kvmstats_exporter:test-clone-{os.getpid()}'
        r = subprocess.run([os.path.join(clone, 'deploy', 'container', 'build'), '--tag', tag,
                            '--quiet'], env=image.env, capture_output=True, text=True, timeout=1500)
        if r.returncode != 0:
            problems.append(f'the build script failed in a fresh clone: {r.stderr[-2000:]}')
            return
        try:
            layers = [dc.podman(image.env, 'image', 'inspect', '--format', '{{json .RootFS.Layers}}',
                                t).stdout.strip() for t in (image.tag, tag)]
        finally:
            dc.podman(image.env, 'rmi', tag, check=False)
    if dirty:
        dc.log('  fresh clone builds; its layers are not compared: the working tree has changes')
    elif layers[0] != layers[1]:
        problems.append(f'a fresh clone builds other layers: {layers[1]} vs {layers[0]}')
    else:
        dc.log('  fresh clone builds the same file system layers')


def main():
    env = dc.podman_env()
    problems = []
    with cc.Image(env) as image:
        print(f'image size: {image.size} bytes; build: {image.seconds:.1f} s')
        part_image(image, problems)
        part_help(image, problems)
        part_run(image, problems)
        part_clone(image, problems)
    if not dc.report(problems, 'container image'):
        sys.exit(1)


if __name__ == '__main__':
    main()
