#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Prometheus rules (contrib/prometheus) and the Grafana dashboard
(contrib/grafana) against promtool and against what the exporter really emits.

usage: test_monitoring.py check|unit|names|live

check  `promtool check rules` on the rules file.
unit   `promtool test rules`: every recording rule's value and every alert's
       firing and silence (kvmstats_exporter.rules.test.yml); also that every
       alert of the rules file has a case there.
names  Every metric name in the rules and the dashboard is emitted by the
       exporter, found in a live scrape (saved stats files, canary, hand-off
       socket, vhost-user proxy, procfs discovery), recorded by a rule of the
       rules file, or one Prometheus adds to each target (`up`); every label a
       selector matches on is one the exporter puts on that metric. The
       dashboard's expressions, with Grafana's variables substituted, pass
       promtool as recording rules; its panels have unique ids and its
       variables are defined.
live   A real Prometheus (Debian package prometheus) loads the rules and
       scrapes the exporter (every optional source on) once a second: every
       rule group evaluates without error, the recording rules produce series,
       and every dashboard query runs; one whose metrics all have series and
       that filters nothing out returns data.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import deploy_common as dc

RULES = os.path.join(dc.source_dir(), 'contrib', 'prometheus', 'kvmstats_exporter.rules.yml')
RULES_TEST = os.path.join(dc.source_dir(), 'contrib', 'prometheus', 'kvmstats_exporter.rules.test.yml')
DASHBOARD = os.path.join(dc.source_dir(), 'contrib', 'grafana', 'kvmstats_exporter.json')


def load_yaml_json(path):
    """A YAML file as Python data (python3-yaml)."""
    try:
        import yaml
    except ImportError:
        dc.skip('python3-yaml not found (Debian package "python3-yaml")')
    with open(path) as f:
        return yaml.safe_load(f)


def promtool(*args, cwd=None):
    exe = dc.need('promtool', 'prometheus')
    r = subprocess.run([exe] + list(args), capture_output=True, text=True, timeout=300, cwd=cwd)
    dc.log((r.stdout + r.stderr).strip())
    return r.returncode


def part_check():
    if promtool('check', 'rules', RULES) != 0:
        dc.fail('promtool check rules found problems')


def part_unit():
    if promtool('test', 'rules', os.path.basename(RULES_TEST), cwd=os.path.dirname(RULES_TEST)) != 0:
        dc.fail('promtool test rules failed')
    rules = load_yaml_json(RULES)
    tests = load_yaml_json(RULES_TEST)
    alerts = {r['alert'] for g in rules['groups'] for r in g['rules'] if 'alert' in r}
    firing, silent = set(), set()
    for t in tests['tests']:
        for a in t.get('alert_rule_test', []):
            (firing if a.get('exp_alerts') else silent).add(a['alertname'])
    problems = [f'alert {a} never fires in the unit tests' for a in sorted(alerts - firing)]
    problems += [f'alert {a} has no case where it stays silent' for a in sorted(alerts - silent)]
    records = dc.recorded_names(rules)
    tested = set()
    for t in tests['tests']:
        for e in t.get('promql_expr_test', []):
            tested |= dc.promql_names(e['expr'])[0]
    problems += [f'recording rule {n} has no promql_expr_test' for n in sorted(records - tested)]
    dc.log(f'  {len(alerts)} alerts, {len(records)} recording rules')
    if not dc.report(problems, 'every rule is covered by the unit tests'):
        sys.exit(1)


def dashboard_exprs(dash):
    """[(where, PromQL)] of every panel target and query variable."""
    out = []
    for p in dash['panels']:
        for t in p.get('targets', []):
            out.append((f'panel {p["id"]} "{p["title"]}" {t["refId"]}', t['expr']))
    for v in dash['templating']['list']:
        if v['type'] != 'query':
            continue
        q = v['query']['query'] if isinstance(v['query'], dict) else v['query']
        m = re.fullmatch(r'label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)', q.strip())
        if not m:
            out.append((f'variable {v["name"]}', q))
        else:
            out.append((f'variable {v["name"]}', m.group(1)))
    return out


def dashboard_structure(dash):
    problems = []
    ids = [p['id'] for p in dash['panels']]
    if len(ids) != len(set(ids)):
        problems.append('panel ids are not unique')
    defined = {v['name'] for v in dash['templating']['list']} | {
        '__rate_interval', '__interval', '__range'}
    text = json.dumps(dash['panels']) + json.dumps(dash['templating'])
    for var in sorted(set(re.findall(r'\$\{?([A-Za-z_][A-Za-z0-9_]*)', text))):
        if var not in defined:
            problems.append(f'variable ${var} is used but not defined')
    for p in dash['panels']:
        if p['type'] not in ('row', 'timeseries', 'stat', 'heatmap', 'table'):
            problems.append(f'panel {p["id"]}: type {p["type"]!r} is none of Grafana\'s built-in ones used here')
        for t in p.get('targets', []):
            if t.get('datasource', {}).get('uid') != '${datasource}':
                problems.append(f'panel {p["id"]} {t.get("refId")}: not on the $datasource variable')
        g = p.get('gridPos', {})
        if not all(k in g for k in ('h', 'w', 'x', 'y')) or g['x'] + g['w'] > 24:
            problems.append(f'panel {p["id"]}: bad gridPos {g}')
        if p['type'] != 'row' and not p.get('targets'):
            problems.append(f'panel {p["id"]} "{p["title"]}" has no query')
    return problems


def promql_syntax(exprs):
    """promtool check rules on the expressions, as recording rules."""
    with tempfile.NamedTemporaryFile('w', suffix='.yml', prefix='dashboard-exprs-') as f:
        f.write('groups:\n  - name: dashboard\n    rules:\n')
        for i, (_, e) in enumerate(exprs):
            f.write(f'      - record: dashboard_expr_{i}\n        expr: {json.dumps(dc.grafana_to_promql(e))}\n')
        f.flush()
        return promtool('check', 'rules', f.name) == 0


def part_names():
    # The extractor itself, on an expression whose answer is known.
    names, sel, grouping = dc.promql_names(
        'sum without (vcpu) (rate(kvm_vcpu_exits_total{vm=~"a|b"}[5m])) / on (vm) '
        'group_left kvm_vm_info > 0.5 and vm:x:rate5m offset 1m')
    if names != {'kvm_vcpu_exits_total', 'kvm_vm_info', 'vm:x:rate5m'} or sel != {
            'kvm_vcpu_exits_total': {'vm'}} or grouping != {'vcpu', 'vm'}:
        dc.fail(f'the PromQL name extractor is wrong: {names} {sel} {grouping}')

    expo = dc.live_exposition()
    emitted = dc.emitted_names(expo)
    dc.log(f'  live scrape: {len(expo.samples)} samples, {len(emitted)} sample names')
    if expo.errors:
        dc.fail('the live exposition does not parse: ' + '; '.join(expo.errors[:5]))

    rules = load_yaml_json(RULES)
    recorded = dc.recorded_names(rules)
    rule_exprs = [(r.get('record') or r.get('alert'), r['expr'])
                  for g in rules['groups'] for r in g['rules']]
    problems, used_rules = dc.check_names(rule_exprs, emitted, recorded, 'rule')

    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = dashboard_exprs(dash)
    p2, used_dash = dc.check_names([(w, dc.grafana_to_promql(e)) for w, e in exprs],
                                   emitted, recorded, 'dashboard')
    problems += p2
    problems += dashboard_structure(dash)
    if not promql_syntax(exprs):
        problems.append('dashboard expressions do not parse as PromQL (promtool above)')
    dc.log(f'  rules use {len(used_rules)} names, the dashboard {len(used_dash)} '
           f'in {len(exprs)} expressions')
    # The parts the issue asks the dashboard to show must be there.
    for want in ('kvmstats_exporter_vms', 'kvm_vcpu_exits_total', 'kvm_vcpu_halt_wait_seconds_bucket',
                 'kvm_vcpu_halt_successful_poll_total', 'vhost_user_external_map_requests_total',
                 'vhost_user_refused_total', 'vhost_user_invalid_messages_total',
                 'kvmstats_exporter_scrape_duration_seconds', 'kvmstats_exporter_stats_fds',
                 'kvmstats_exporter_handoff_rejected_total', 'kvmstats_exporter_canary_up'):
        reach = set(used_dash)
        for r in rules['groups'][0]['rules']:
            if r['record'] in used_dash:
                reach |= dc.promql_names(r['expr'])[0]
        for r in rules['groups'][0]['rules']:  # recorded from recorded
            if r['record'] in reach:
                reach |= dc.promql_names(r['expr'])[0]
        if want not in reach:
            problems.append(f'the dashboard shows nothing from {want}')
    if not dc.report(problems, 'metric names of rules and dashboard'):
        sys.exit(1)


class Prometheus:
    """prometheus with the rules, scraping TARGET as job kvmstats_exporter every
    second, on 127.0.0.1:<free port> with storage in TMP; a context manager."""

    _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __init__(self, tmp, target):
        binary = dc.need('prometheus', 'prometheus')
        self.port = dc.kc.free_port()
        self.base = f'http://127.0.0.1:{self.port}'
        config = os.path.join(tmp, 'prometheus.yml')
        with open(config, 'w') as f:
            f.write('global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n'
                    '  evaluation_interval: 1s\n'
                    f'rule_files: [{json.dumps(RULES)}]\n'
                    'scrape_configs:\n  - job_name: kvmstats_exporter\n'
                    f'    static_configs: [{{targets: [{json.dumps(target)}]}}]\n')
        self.log = open(os.path.join(tmp, 'prometheus.log'), 'w+')
        self.proc = subprocess.Popen(
            [binary, f'--config.file={config}', f'--web.listen-address=127.0.0.1:{self.port}',
             f'--storage.tsdb.path={os.path.join(tmp, "tsdb")}'],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait('ready', lambda: self._status('/-/ready') == 200)

    def _status(self, path):
        try:
            with self._opener.open(self.base + path, timeout=5) as r:
                return r.status
        except OSError:
            return None

    def api(self, path, **params):
        url = f'{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}'
        try:
            with self._opener.open(url, timeout=20) as r:
                return json.load(r)['data']
        except urllib.error.HTTPError as e:
            return {'error': e.read().decode(errors='replace')[:500]}

    def wait(self, what, ready, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                dc.fail(f'prometheus exited with {self.proc.returncode}: {self.log_text()}')
            got = ready()
            if got:
                return got
            if time.monotonic() > deadline:
                dc.fail(f'prometheus: {what} not within {timeout}s: {self.log_text()}')
            time.sleep(0.2)

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def part_live():
    with open(DASHBOARD) as f:
        exprs = dashboard_exprs(json.load(f))
    problems = []
    with tempfile.TemporaryDirectory(prefix='kvmstats-live-') as tmp:
        with dc.kc.Exporter(dc.full_exporter_args(tmp)) as ex, \
                Prometheus(tmp, f'127.0.0.1:{ex.port}') as prom:
            def recorded():
                r = prom.api('query', query='instance:kvm_vcpu_exits:rate5m')
                return isinstance(r, dict) and r.get('result')
            prom.wait('recorded series', recorded)
            time.sleep(2)  # a few more evaluations of every group
            groups = prom.api('rules')['groups']
            for g in groups:
                for r in g['rules']:
                    if r.get('health') != 'ok' or r.get('lastError'):
                        problems.append(f'rule {r["name"]}: health {r.get("health")} '
                                        f'{r.get("lastError")}')
            names = {r['name'] for g in groups for r in g['rules']}
            rules = load_yaml_json(RULES)
            want = {r.get('record') or r.get('alert') for g in rules['groups'] for r in g['rules']}
            if names != want:
                problems.append(f'prometheus loaded rules {sorted(names ^ want)} differently')
            present = set(prom.api('label/__name__/values'))
            answered, empty = 0, []
            for where, e in exprs:
                q = dc.grafana_to_promql(e)
                r = prom.api('query', query=q)
                if 'error' in r or 'result' not in r:
                    problems.append(f'dashboard {where}: {q!r}: {r.get("error")}')
                    continue
                used = dc.promql_names(q)[0]
                filters = re.search(r'==|!=|>|<', dc._STRING.sub('""', q))
                if not r['result']:
                    empty.append(where)
                    if used <= present and not filters:
                        problems.append(f'dashboard {where}: no data from {q!r} although '
                                        f'{sorted(used)} have series')
                else:
                    answered += 1
            dc.log(f'  {len(names)} rules healthy; dashboard: {answered} queries with data, '
                   f'{len(empty)} empty (metrics without series, or filters):')
            for where in empty:
                dc.log(f'    {where}')
    if not dc.report(problems, 'rules and dashboard on a live Prometheus'):
        sys.exit(1)


def main():
    parts = {'check': part_check, 'unit': part_unit, 'names': part_names, 'live': part_live}
    if len(sys.argv) != 2 or sys.argv[1] not in parts:
        dc.fail(f'usage: {sys.argv[0]} {"|".join(parts)}')
    parts[sys.argv[1]]()


if __name__ == '__main__':
    main()
