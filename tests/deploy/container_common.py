# SPDX-License-Identifier: MIT
"""The container image under test: built once per test with the project's own
script (deploy/container/build), under a tag of the test's own, and run with
podman as a context manager."""
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import deploy_common as dc

kc = dc.kc


def version():
    with open(os.path.join(dc.source_dir(), 'meson.build')) as f:
        return re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)


class Image:
    """deploy/container/build --tag localhost/kvmstats_exporter:test-<pid>; in the
    nested KVM host, the image save_image.py put in the build directory, loaded."""

    def __init__(self, env):
        self.env = env
        self.tag = f'localhost/kvmstats_exporter:test-{os.getpid()}'
        if dc.in_nested_host():
            self.load()
            return
        self.seconds, self.size = dc.build_image(env, self.tag)
        dc.log(f'  built {self.tag} in {self.seconds:.1f} s: {self.size} bytes '
               f'({self.size / 1048576:.2f} MiB)')

    def load(self):
        archive = dc.nested_image_archive()
        if not os.path.exists(archive):
            dc.fail(f'{archive} is missing: in the nested KVM host the image comes from '
                    f'tests/deploy/save_image.py, run on the machine first (run-tests does)')
        start = time.monotonic()
        out = dc.podman(self.env, 'load', '-i', archive, timeout=600).stdout
        loaded = re.findall(r'^Loaded image(?:\(s\))?: (\S+)$', out, re.M)
        if len(loaded) != 1:
            dc.fail(f'podman load -i {archive} named no single image: {out[-500:]!r}')
        dc.podman(self.env, 'tag', loaded[0], self.tag)
        dc.log(f'  loaded {self.tag} from {archive} in {time.monotonic() - start:.1f} s')

    def inspect(self, fmt):
        return dc.podman(self.env, 'image', 'inspect', '--format', fmt, self.tag).stdout.strip()

    def close(self):
        dc.podman(self.env, 'rmi', self.tag, check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Every container a test starts carries this label, its value the test's pid.
TEST_LABEL = 'io.kvmstats-exporter.test'


def remove_stale_containers(env):
    """Removes test containers whose test process is gone (a run killed by its timeout)."""
    r = dc.podman(env, 'ps', '-a', '--filter', f'label={TEST_LABEL}', '--format',
                  f'{{{{.ID}}}} {{{{index .Labels "{TEST_LABEL}"}}}}', check=False)
    for line in r.stdout.splitlines():
        cid, _, pid = line.partition(' ')
        if pid.isdigit() and not os.path.exists(f'/proc/{pid}'):
            dc.log(f'  removing container {cid} left by test process {pid}')
            dc.podman(env, 'rm', '-f', '-t', '2', cid, check=False)


class Container:
    """podman run -d IMAGE ARGS, its port 9977 published on 127.0.0.1; a context manager.

    In the nested KVM host, whose kernel has no bridge or netfilter modules,
    the container shares the guest's network namespace (which only the
    test's own processes use) and the exporter listens on 127.0.0.1:PORT
    itself; the healthcheck, which needs systemd's timers, is off there."""

    _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __init__(self, image, args=(), run_opts=(), wait=True, ready_timeout=30):
        self.env = image.env
        self.name = f'kvmstats-test-{os.getpid()}-{time.monotonic_ns() % 1000000}'
        self.port = kc.free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        if dc.in_nested_host():
            net = ['--network=host', '--no-healthcheck']
            args = list(args) + [f'--web.listen-address=127.0.0.1:{self.port}']
        else:
            net = ['-p', f'127.0.0.1:{self.port}:9977']
        cmd = ['run', '-d', '--name', self.name, '--label', f'{TEST_LABEL}={os.getpid()}',
               '--read-only', '--cap-drop=all'] + net + list(run_opts) + [image.tag] + list(args)
        remove_stale_containers(self.env)
        dc.log('  podman ' + ' '.join(cmd))
        dc.podman(self.env, *cmd)
        # A failure before the caller's `with` would leave the container running,
        # holding VM stats fds and a port: remove it on the way out.
        try:
            self.pid = int(self.inspect('{{.State.Pid}}'))
            if wait:
                self.wait_ready(ready_timeout)
        except BaseException:
            self.close()
            raise

    def inspect(self, fmt):
        return dc.podman(self.env, 'inspect', '--format', fmt, self.name).stdout.strip()

    def get(self, path, timeout=10):
        """(status, body) of GET path."""
        try:
            with self._opener.open(self.url + path, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors='replace')

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.get('/-/ready')[0] == 200:
                    return
            except OSError:
                pass
            if self.inspect('{{.State.Running}}') != 'true':
                dc.fail(f'container exited: {self.logs()}')
            if time.monotonic() > deadline:
                dc.fail(f'container not ready on {self.url} after {timeout}s: {self.logs()}')
            time.sleep(0.1)

    def logs(self):
        r = dc.podman(self.env, 'logs', self.name, check=False)
        return (r.stdout + r.stderr)[-3000:]

    def close(self):
        dc.podman(self.env, 'rm', '-f', '-t', '5', self.name, check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def proc_status(pid):
    """{key: value} of /proc/PID/status."""
    out = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            k, _, v = line.partition(':')
            out[k] = v.strip()
    return out


def run_to_completion(image, args, timeout=60):
    """podman run --rm IMAGE ARGS: (exit status, stdout, stderr)."""
    r = subprocess.run(['podman', 'run', '--rm', '--read-only', '--cap-drop=all', '--network=none',
                        image.tag] + list(args), env=image.env, capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr
