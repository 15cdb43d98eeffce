#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A real Prometheus server (Debian package prometheus) scrapes on loopback.

usage: test_prometheus.py --goldens
       test_prometheus.py KVMTEST_VMM

--goldens: Prometheus is the OpenMetrics parser for the goldens
(tests/data/golden-*.om, plus the "# EOF" a scrape ends with), served by a
small HTTP server of ours: both targets up, every sample ingested, units in
the metadata. `promtool check metrics` only knows text 0.0.4. A copy without
"# EOF" must be refused, which shows the strict OpenMetrics parser is in use.

KVMTEST_VMM: kvmtest_vmm VMs reach the exporter by hand-off with procfs
discovery off (other VMs on the host cannot interfere). Prometheus scrapes
it every second with its own Accept header. Its HTTP API must return the
fixture's exact values for every series of the test VMs (as float64), the
family metadata must be OpenMetrics' (counter families without _total, UNIT),
and the target must have no error. The exporter's answer to Prometheus's
Accept and Accept-Encoding is checked directly too: OpenMetrics, gzip, and
the same exact values. Every wait is bounded; Prometheus is killed at the end.
"""
import gzip
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvm_common as kc  # noqa: E402

VMS, VCPUS, HLT = 2, 2, 10
NAME = 'prom'
LABELS = {'tenant': 'acme'}
JOB = 'kvmstats'
# What Prometheus 2.x sends (scrape/scrape.go, scrapeAcceptHeader), and its encoding.
PROMETHEUS_ACCEPT = ('application/openmetrics-text;version=1.0.0,'
                     'application/openmetrics-text;version=0.0.1;q=0.75,'
                     'text/plain;version=0.0.4;q=0.5,*/*;q=0.1')
CONTENT_TYPE_OM = 'application/openmetrics-text; version=1.0.0; charset=utf-8'
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


# --- the goldens ----------------------------------------------------------------

GOLDENS = {'golden_aggregate': 'golden-aggregate.om', 'golden_per_vcpu': 'golden-per-vcpu.om',
           'golden_no_eof': 'golden-aggregate.om'}


def serve_goldens():
    """A loopback HTTP server: /<job> answers that golden as an OpenMetrics scrape."""
    data = os.path.join(os.environ.get('TESTS_SOURCE_DIR',
                                       os.path.join(os.path.dirname(__file__), '..')), 'data')
    bodies = {}
    for job, name in GOLDENS.items():
        with open(os.path.join(data, name), 'rb') as f:
            bodies['/' + job] = f.read() + (b'' if job == 'golden_no_eof' else b'# EOF\n')

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = bodies.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header('Content-Type', CONTENT_TYPE_OM)
            self.send_header('Content-Length', str(len(body or b'')))
            self.end_headers()
            self.wfile.write(body or b'')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, bodies


def check_goldens(binary):
    ok = True
    server, bodies = serve_goldens()
    target = f'127.0.0.1:{server.server_address[1]}'
    try:
        with tempfile.TemporaryDirectory(prefix='prometheus-') as tmp, \
                Prometheus(binary, tmp, [(j, target, '/' + j) for j in GOLDENS]) as prom:
            for job in ('golden_aggregate', 'golden_per_vcpu'):
                body = bodies['/' + job].decode()
                samples = sum(1 for line in body.splitlines() if line and line[0] != '#')
                t = prom.wait(f'{job} up', lambda: target_up(prom, job))
                got = prom.wait(f'{job} samples',
                                lambda: prom.query(f'scrape_samples_scraped{{job="{job}"}}'))
                stored = series(prom, f'{{job="{job}",__name__=~"kvm_.+"}}')
                problems = []
                if float(got[0]['value'][1]) != samples or len(stored) != samples:
                    problems.append(f'{samples} samples in the golden, Prometheus scraped '
                                    f'{got[0]["value"][1]} and stores {len(stored)}')
                problems += check_metadata(prom, job)
                kc.log(f'  {job}: health {t["health"]}, {samples} samples, '
                       f'{len(stored)} series stored')
                ok &= kc.report(problems, f'Prometheus parses {GOLDENS[job]} as OpenMetrics')
            # The control: without "# EOF" the OpenMetrics parser refuses the scrape.
            t = prom.wait('golden_no_eof scraped',
                          lambda: [t for t in prom.targets('golden_no_eof') if t['lastError']])
            err = t[0]['lastError']
            ok &= kc.report([] if 'EOF' in err else [f'lastError {err!r}'],
                            f'a scrape without "# EOF" is refused ({err})')
    finally:
        server.shutdown()
        server.server_close()
    return ok


def check_metadata(prom, job):
    """OpenMetrics family metadata: counters named without _total, units where names end in one."""
    problems = []
    want = {'kvm_vcpu_exits': ('counter', ''), 'kvm_vcpu_halt_wait_seconds': ('histogram', 'seconds'),
            'kvm_vm_info': ('gauge', '')}
    for metric, (mtype, unit) in want.items():
        md = prom.metadata(job, metric)
        if len(md) != 1 or md[0]['type'] != mtype or md[0]['unit'] != unit:
            problems.append(f'metadata of {metric}: {md}, expected type {mtype} unit {unit!r}')
    if prom.metadata(job, 'kvm_vcpu_exits_total'):
        problems.append('metadata under kvm_vcpu_exits_total: a text 0.0.4 family name')
    return problems


# --- real VMs -------------------------------------------------------------------

def expected(dumps):
    """Exact samples and families of the fixture VMs (aggregate mode), le spelled for OpenMetrics."""
    samples, families = {}, {kc.INFO_FAMILY: 'gauge'}
    for d in dumps:
        vm = [f for f in d['files'] if f.kind == 'vm']
        vcpus = sorted((f for f in d['files'] if f.kind == 'vcpu'), key=lambda f: f.vcpu)
        s, f = kc.expected_vm(f'{NAME}-{d["index"]}', vm[0], vcpus, False)
        samples.update(s)
        families.update(f)
    return kc.openmetrics_expected(samples), families


def info_expected(dumps):
    """kvm_vm_info as Prometheus stores it: empty label values (uuid) are no labels."""
    out = {}
    for d in dumps:
        labels = {'vm': f'{NAME}-{d["index"]}', 'pid': str(d['pid']), 'vmm': 'kvmtest_vmm',
                  'kvm_id': f'kvm-{d["pid"]}', 'source': 'handoff', **LABELS}
        out[(kc.INFO_FAMILY, tuple(sorted(labels.items())))] = 1.0
    return out


def check_direct(ex, samples, families, our_vms):
    """The exporter's answer to Prometheus's own request headers."""
    status, headers, body = http_get(ex.url, {'Accept': PROMETHEUS_ACCEPT,
                                              'Accept-Encoding': 'gzip'})
    problems = []
    if status != 200:
        return [f'HTTP {status}']
    if headers.get('Content-Type') != CONTENT_TYPE_OM:
        problems.append(f'Content-Type {headers.get("Content-Type")!r}, expected {CONTENT_TYPE_OM!r}')
    if headers.get('Content-Encoding') != 'gzip':
        problems.append(f'Content-Encoding {headers.get("Content-Encoding")!r}, expected gzip')
        text = body.decode()
    else:
        text = gzip.decompress(body).decode()
    if not text.endswith('\n# EOF\n') or text.count('# EOF') != 1:
        problems.append('the exposition does not end with one "# EOF"')
    expo = kc.Exposition(text)
    problems += kc.compare(expo, samples, families, our_vms)
    kc.log(f'  exporter, Prometheus\'s Accept: {headers.get("Content-Type")}, '
           f'{headers.get("Content-Encoding")}, {len(body)} bytes ({len(text)} plain)')
    return problems


def check_stored(prom, samples, dumps):
    """Every series of the fixture VMs, as Prometheus stores it: exact float64 values."""
    want = dict(samples)
    want = {k: float(v) for k, v in want.items()}
    want.update(info_expected(dumps))
    vm_re = '|'.join(f'{NAME}-{d["index"]}' for d in dumps)
    got = prom.wait(f'{len(want)} series of the test VMs',
                    lambda: (lambda s: s if len(s) >= len(want) else None)(
                        series(prom, f'{{job="{JOB}",vm=~"{vm_re}"}}')))
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want and not k[0].startswith(kc.THREAD_PREFIX)]
    wrong = [(k, want[k], got[k][1]) for k in want if k in got and got[k][0] != want[k]]
    problems = [f'missing: {kc.fmt_key(k)}' for k in missing[:10]]
    problems += [f'extra: {kc.fmt_key(k)}' for k in extra[:10]]
    problems += [f'value: {kc.fmt_key(k)} stored {g}, expected {w!r}' for k, w, g in wrong[:10]]
    kc.log(f'  Prometheus stores {len(got)} series of the test VMs: {len(missing)} missing, '
           f'{len(extra)} extra, {len(wrong)} wrong values')
    # A few by name, for the log and so that an empty comparison cannot pass.
    first = f'{NAME}-{dumps[0]["index"]}'
    for name, extra_labels in (('kvm_vcpu_halt_exits_total', ()),
                               ('kvm_vcpu_halt_wait_seconds_sum', ()),
                               ('kvm_vcpu_halt_wait_seconds_count', ()),
                               ('kvm_vcpu_halt_wait_seconds_bucket', (('le', '+Inf'),))):
        key = (name, tuple(sorted((('vm', first),) + extra_labels)))
        if key not in got:
            problems.append(f'no {kc.fmt_key(key)}')
            continue
        kc.log(f'    {kc.fmt_key(key)} = {got[key][1]} (expected {want[key]!r})')
    halts = got.get(('kvm_vcpu_halt_exits_total', (('vm', first),)), (0,))[0]
    if halts != VCPUS * HLT + VCPUS * (VCPUS - 1) // 2:
        problems.append(f'kvm_vcpu_halt_exits_total of {first} is {halts}, the guests ran '
                        f'{VCPUS * HLT + VCPUS * (VCPUS - 1) // 2} hlt')
    return problems


def check_vms(binary, fixture):
    ok = True
    with tempfile.TemporaryDirectory(prefix='prometheus-') as tmp:
        sock = os.path.join(tmp, 'handoff.sock')
        extra = ['--handoff', sock, '--name', NAME]
        for k, v in LABELS.items():
            extra += ['--label', f'{k}={v}']
        with kc.Exporter(['--no-kvm.procfs', f'--kvm.handoff-socket={sock}']) as ex, \
                kc.Fixture(fixture, VMS, VCPUS, HLT, irqchip=True, extra=extra) as fx:
            samples, families = expected(fx.dumps)
            our_vms = {f'{NAME}-{d["index"]}' for d in fx.dumps}
            ok &= kc.report(check_direct(ex, samples, families, our_vms),
                            'the exporter answers Prometheus\'s headers with gzip\'d OpenMetrics')
            target = f'127.0.0.1:{ex.port}'
            with Prometheus(binary, tmp, [(JOB, target, '/metrics')]) as prom:
                t = prom.wait('the exporter up', lambda: target_up(prom, JOB))
                kc.log(f'  target {t["scrapeUrl"]}: health {t["health"]}, lastError '
                       f'{t["lastError"]!r}, {t["lastScrapeDuration"] * 1000:.1f} ms')
                ok &= kc.report(check_stored(prom, samples, fx.dumps),
                                'Prometheus stores the exact values of the test VMs')
                up = prom.query(f'up{{job="{JOB}"}}')
                problems = [] if up and up[0]['value'][1] == '1' else [f'up = {up}']
                problems += [] if target_up(prom, JOB) else ['the target has an error now']
                problems += check_metadata(prom, JOB)
                problems += [] if prom.metadata(JOB, 'kvmstats_exporter_scrape_duration_seconds')[0][
                    'unit'] == 'seconds' else ['no unit on kvmstats_exporter_scrape_duration_seconds']
                ok &= kc.report(problems, 'Prometheus negotiated OpenMetrics: up, no error, '
                                'OpenMetrics family names and units in its metadata')
    return ok


def main():
    binary = shutil.which('prometheus')
    if not binary:
        kc.skip('prometheus not found (Debian package "prometheus")')
    if sys.argv[1:] == ['--goldens']:
        ok = check_goldens(binary)
    else:
        kc.require_kvm()
        ok = check_vms(binary, kc.fixture_path(sys.argv))
    if not ok:
        sys.exit(1)
    kc.log('PASS')


if __name__ == '__main__':
    main()
