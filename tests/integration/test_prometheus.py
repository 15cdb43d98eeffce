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
import os
import shutil
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib.prometheus import Prometheus, http_get, series, target_up  # noqa: E402

VMS, VCPUS, HLT = 2, 2, 10
NAME = 'prom'
LABELS = {'tenant': 'acme'}
JOB = 'kvmstats'
# What Prometheus 2.x sends (scrape/scrape.go, scrapeAcceptHeader), and its encoding.
PROMETHEUS_ACCEPT = ('application/openmetrics-text;version=1.0.0,'
                     'application/openmetrics-text;version=0.0.1;q=0.75,'
                     'text/plain;version=0.0.4;q=0.5,*/*;q=0.1')
CONTENT_TYPE_OM = 'application/openmetrics-text; version=1.0.0; charset=utf-8'


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
