"""A real Prometheus server (Debian package prometheus) on loopback, and reading its HTTP API."""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from lib import kvm_common as kc

STARTUP_TIMEOUT = 30
SCRAPE_TIMEOUT = 30

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url, headers=None, timeout=10):
    """(status, headers, body bytes); loopback never goes through a proxy."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with _opener.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class Prometheus:
    """prometheus on 127.0.0.1:<free port> with temporary storage; a context manager."""

    def __init__(self, binary, tmp, jobs, protocols=('OpenMetricsText1.0.0', 'PrometheusText0.0.4')):
        self.port = kc.free_port()
        self.base = f'http://127.0.0.1:{self.port}'
        self.log = open(os.path.join(tmp, 'prometheus.log'), 'w+')
        config = os.path.join(tmp, 'prometheus.yml')
        self.protocols = write_config(config, jobs, protocols)
        if self.protocols and not config_ok(config):
            # scrape_protocols came in Prometheus 2.49 (PrometheusText1.0.0 in 3.0);
            # before, its Accept header prefers OpenMetrics anyway.
            self.protocols = write_config(config, jobs, None)
        kc.log(f'  prometheus {version(binary)}, scrape_protocols '
               f'{"set" if self.protocols else "not supported: default Accept"}')
        cmd = [binary, f'--config.file={config}', f'--web.listen-address=127.0.0.1:{self.port}',
               f'--storage.tsdb.path={os.path.join(tmp, "tsdb")}']
        kc.log('  starting: ' + ' '.join(cmd))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                kc.fail(f'prometheus exited with {self.proc.returncode}:\n{self.log_text()}')
            try:
                if http_get(self.base + '/-/ready', timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                kc.fail(f'prometheus not ready after {STARTUP_TIMEOUT}s:\n{self.log_text()}')
            time.sleep(0.1)

    def api(self, path, **params):
        url = f'{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}'
        status, _, body = http_get(url)
        doc = json.loads(body)
        if status != 200 or doc.get('status') != 'success':
            kc.fail(f'GET {url}: HTTP {status}: {body[:500]!r}')
        return doc['data']

    def query(self, q):
        return self.api('query', query=q)['result']

    def targets(self, job):
        return [t for t in self.api('targets', state='active')['activeTargets']
                if t['labels']['job'] == job]

    def metadata(self, job, metric):
        return self.api('targets/metadata', metric=metric, match_target=f'{{job="{job}"}}')

    def wait(self, what, ready, timeout=SCRAPE_TIMEOUT):
        """Polls ready() until it returns something true; fails after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            got = ready()
            if got:
                return got
            if time.monotonic() > deadline:
                kc.fail(f'prometheus: {what} not seen within {timeout}s; targets: '
                        f'{json.dumps(self.api("targets", state="active"))[:2000]}')
            time.sleep(0.2)

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_config(path, jobs, protocols):
    """jobs: [(name, target, metrics_path)]. Returns whether scrape_protocols is set."""
    lines = ['global:', '  scrape_interval: 1s', '  scrape_timeout: 1s', 'scrape_configs:']
    for name, target, metrics_path in jobs:
        lines += [f'  - job_name: {name}', f'    metrics_path: {metrics_path}']
        if protocols:
            lines += [f'    scrape_protocols: [{", ".join(protocols)}]']
        lines += ['    static_configs:', f"      - targets: ['{target}']"]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return bool(protocols)


def config_ok(path):
    promtool = shutil.which('promtool')
    if not promtool:
        return False
    return subprocess.run([promtool, 'check', 'config', path], capture_output=True,
                          timeout=60).returncode == 0


def version(binary):
    r = subprocess.run([binary, '--version'], capture_output=True, text=True, timeout=30)
    m = re.search(r'version (\S+)', r.stdout + r.stderr)
    return m.group(1) if m else '?'


def target_up(prom, job):
    """The job's one target once it was scraped without error; None before."""
    ts = prom.targets(job)
    if len(ts) == 1 and ts[0]['health'] == 'up' and ts[0]['lastError'] == '':
        return ts[0]
    return None


def series(prom, selector):
    """{(name, labels tuple without job/instance): (float, raw string)} of an instant query."""
    out = {}
    for r in prom.query(selector):
        m = dict(r['metric'])
        name = m.pop('__name__')
        m.pop('job', None)
        m.pop('instance', None)
        out[(name, tuple(sorted(m.items())))] = (float(r['value'][1]), r['value'][1])
    return out
