#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Accept headers Prometheus 3 sends, answered validly and labelled correctly.

Prometheus 3 builds its Accept header from scrape_protocols (scrape/scrape.go,
acceptHeader): one media type per protocol, weights counting down from
q=0.6, ";escaping=allow-utf-8" on the 1.0.0 text formats, and "*/*" last.
With native histograms on, the protobuf type comes first. The exporter
serves saved stats files (no /dev/kvm needed) and is asked with curl, the
real HTTP client, with each header and gzip:

  - the negotiated Content-Type is the one the header prefers among what we
    speak (OpenMetrics 1.0.0, text 0.0.4), never protobuf or text 1.0.0;
  - a text answer passes `promtool check metrics`; an OpenMetrics one ends
    with one "# EOF";
  - kvm_vm_info carries no empty label value.

Then a real Prometheus (Debian's is 2.42) ingests each answer: a loopback
server replays the bodies curl received, with the exporter's Content-Type,
so Prometheus picks its parser from that header exactly as it would from
the exporter. Every sample must be stored, kvm_vm_info with exactly
{vm, kvm_id, source}. Where the installed Prometheus accepts Prometheus 3's
scrape_protocols (3.0+), it also scrapes the exporter itself with them;
2.42 rejects that configuration, which the log says.
"""
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib import prometheus as tp  # noqa: E402

DATA = os.path.join(os.environ.get('TESTS_SOURCE_DIR', ''), 'data')
FILES = [f'--kvm.stats-file={DATA}/x86_64-6.18-vm.bin',
         f'--kvm.stats-file={DATA}/x86_64-6.18-vcpu.bin']
PROTO = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited'
OM_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8'
TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
# name: (Accept, expected Content-Type)
HEADERS = {
    # Prometheus 3 defaults (native histograms off).
    'p3_default': ('application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,'
                   'application/openmetrics-text;version=0.0.1;q=0.5,'
                   'text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,'
                   'text/plain;version=0.0.4;q=0.3,*/*;q=0.2', OM_TYPE),
    # Native histograms on: protobuf first.
    'p3_proto_first': (f'{PROTO};q=0.6,'
                       'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,'
                       'application/openmetrics-text;version=0.0.1;q=0.4,'
                       'text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,'
                       'text/plain;version=0.0.4;q=0.2,*/*;q=0.1', OM_TYPE),
    # scrape_protocols: [PrometheusProto, PrometheusText1.0.0, PrometheusText0.0.4]
    'p3_text': (f'{PROTO};q=0.6,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,'
                'text/plain;version=0.0.4;q=0.4,*/*;q=0.3', TEXT_TYPE),
    # scrape_protocols: [PrometheusText1.0.0] with escaping=underscores.
    'p3_text_1_only': ('text/plain;version=1.0.0;escaping=underscores;q=0.6,*/*;q=0.5',
                       TEXT_TYPE),
}
P3_PROTOCOLS = ('PrometheusProto', 'OpenMetricsText1.0.0', 'PrometheusText1.0.0',
                'PrometheusText0.0.4')
INFO_WANT = {'vm': 'pid-5702', 'kvm_id': 'kvm-5702', 'source': 'file'}


def curl(url, accept, tmp, name):
    """(headers dict lower-cased, body text) as curl received and decompressed them."""
    hdr, body = os.path.join(tmp, name + '.hdr'), os.path.join(tmp, name + '.body')
    r = subprocess.run(['curl', '-sS', '--noproxy', '*', '--compressed', '-H', f'Accept: {accept}',
                        '-D', hdr, '-o', body, url], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        kc.fail(f'curl {url} ({name}) exited {r.returncode}: {r.stderr.strip()}')
    headers = {}
    with open(hdr) as f:
        status = f.readline().split()
        for line in f:
            if ':' in line:
                k, v = line.split(':', 1)
                headers[k.strip().lower()] = v.strip()
    headers[':status'] = status[1] if len(status) > 1 else '?'
    with open(body, 'rb') as f:
        return headers, f.read().decode()


def check_answer(name, headers, text, want_type, promtool):
    problems = []
    if headers[':status'] != '200':
        return [f'HTTP {headers[":status"]}']
    if headers.get('content-type') != want_type:
        problems.append(f'Content-Type {headers.get("content-type")!r}, expected {want_type!r}')
    if headers.get('content-encoding') != 'gzip':
        problems.append(f'Content-Encoding {headers.get("content-encoding")!r}, expected gzip '
                        '(Prometheus always asks for it)')
    expo = kc.Exposition(text)
    infos = [dict(k[1]) for k in expo.samples if k[0] == kc.INFO_FAMILY]
    if infos != [INFO_WANT]:
        problems.append(f'kvm_vm_info {infos}, expected [{INFO_WANT}]')
    if '=""' in text:
        problems.append('an empty label value in the exposition')
    if want_type == OM_TYPE:
        if not text.endswith('# EOF\n') or text.count('# EOF') != 1:
            problems.append('the OpenMetrics answer does not end with one "# EOF"')
    else:
        p = subprocess.run([promtool, 'check', 'metrics'], input=text, capture_output=True,
                           text=True, timeout=60)
        if p.returncode != 0:
            problems.append(f'promtool check metrics: {(p.stdout + p.stderr).strip()[:500]}')
    n = sum(1 for line in text.splitlines() if line and line[0] != '#')
    kc.log(f'  {name}: {headers.get("content-type")}, {headers.get("content-encoding")}, '
           f'{n} samples')
    return problems


def replay_server(answers):
    """Serves /<name> as the exporter answered it: its body and its Content-Type."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            a = answers.get(self.path.lstrip('/'))
            body = a[1].encode() if a else b''
            self.send_response(200 if a else 404)
            self.send_header('Content-Type', a[0]['content-type'] if a else 'text/plain')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def check_stored(prom, job, text):
    samples = sum(1 for line in text.splitlines() if line and line[0] != '#')
    prom.wait(f'{job} up', lambda: tp.target_up(prom, job))
    got = prom.wait(f'{job} scraped', lambda: prom.query(f'scrape_samples_scraped{{job="{job}"}}'))
    problems = []
    if float(got[0]['value'][1]) != samples:
        problems.append(f'{samples} samples in the answer, Prometheus scraped {got[0]["value"][1]}')
    info = tp.series(prom, f'kvm_vm_info{{job="{job}"}}')
    want = {(kc.INFO_FAMILY, tuple(sorted(INFO_WANT.items()))): (1.0, '1')}
    if info != want:
        problems.append(f'stored kvm_vm_info {info}, expected {want}')
    halts = tp.series(prom, f'kvm_vcpu_halt_exits_total{{job="{job}"}}')
    if [v[0] for v in halts.values()] != [50.0]:
        problems.append(f'stored kvm_vcpu_halt_exits_total {halts}, expected 50')
    kc.log(f'  Prometheus stored {job}: {got[0]["value"][1]} samples, kvm_vm_info {list(info)}')
    return problems


def main():
    binary, promtool = shutil.which('prometheus'), shutil.which('promtool')
    if not binary or not promtool:
        kc.skip('prometheus/promtool not found (Debian package "prometheus")')
    if not shutil.which('curl'):
        kc.skip('curl not found (Debian package "curl")')
    ok = True
    with tempfile.TemporaryDirectory(prefix='prometheus3-') as tmp, \
            kc.Exporter(['--no-kvm.procfs', '--kvm.handoff-socket='] + FILES) as ex:
        answers = {}
        for name, (accept, want_type) in HEADERS.items():
            headers, text = curl(ex.url, accept, tmp, name)
            answers[name] = (headers, text)
            ok &= kc.report(check_answer(name, headers, text, want_type, promtool),
                            f'the exporter answers Prometheus 3\'s Accept ({name})')
        server = replay_server(answers)
        target = f'127.0.0.1:{server.server_address[1]}'
        try:
            # The exporter itself with Prometheus 3's protocols where this Prometheus has them.
            jobs = [(n, target, '/' + n) for n in HEADERS] + [('exporter', f'127.0.0.1:{ex.port}',
                                                               '/metrics')]
            with tp.Prometheus(binary, tmp, jobs, protocols=P3_PROTOCOLS) as prom:
                if not prom.protocols:
                    kc.log(f'  prometheus {tp.version(binary)} rejects scrape_protocols '
                           f'{list(P3_PROTOCOLS)} (PrometheusText1.0.0 needs 3.0): the exporter '
                           'is scraped with its default Accept')
                for name in HEADERS:
                    ok &= kc.report(check_stored(prom, name, answers[name][1]),
                                    f'Prometheus ingests the answer to {name}')
                t = prom.wait('the exporter up', lambda: tp.target_up(prom, 'exporter'))
                info = tp.series(prom, 'kvm_vm_info{job="exporter"}')
                want = {(kc.INFO_FAMILY, tuple(sorted(INFO_WANT.items())))}
                ok &= kc.report([] if set(info) == want else [f'kvm_vm_info {info}'],
                                f'Prometheus scrapes the exporter ({t["scrapeUrl"]})')
        finally:
            server.shutdown()
            server.server_close()
    if not ok:
        sys.exit(1)
    kc.log('PASS')


if __name__ == '__main__':
    main()
