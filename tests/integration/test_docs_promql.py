#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The PromQL in docs/metrics.md parses, and the documented queries compute
what the text says they do.

Every ```promql block becomes a recording rule that `promtool check rules`
must accept. Then `promtool test rules` evaluates the exits-per-second and
halt-polling-efficiency queries, taken verbatim from the document, on input
series with known rates: 600 exits a minute is 10/s; 8 successful polls of
every 10 attempted is 0.8.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402

DOC = os.path.join(os.environ.get('TESTS_SOURCE_DIR', os.path.join(os.path.dirname(__file__),
                                                                   '..')), '..', 'docs',
                   'metrics.md')


def blocks():
    with open(DOC) as f:
        return [b.strip() for b in re.findall(r'```promql\n(.*?)```', f.read(), re.S)]


def find(exprs, pattern):
    got = [e for e in exprs if re.fullmatch(pattern, e, re.S)]
    if len(got) != 1:
        kc.fail(f'docs/metrics.md: {len(got)} promql blocks match {pattern!r}, expected 1')
    return got[0]


def yaml_str(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    promtool = shutil.which('promtool')
    if not promtool:
        kc.skip('promtool not found (Debian package "prometheus")')
    exprs = blocks()
    if len(exprs) < 3:
        kc.fail(f'docs/metrics.md has {len(exprs)} promql blocks; expected the documented queries')
    with tempfile.TemporaryDirectory(prefix='docs-promql-') as tmp:
        rules = os.path.join(tmp, 'rules.yml')
        with open(rules, 'w') as f:
            f.write('groups:\n  - name: docs\n    rules:\n')
            for i, e in enumerate(exprs):
                f.write(f'      - record: docs:query_{i}\n        expr: {yaml_str(e)}\n')
        r = subprocess.run([promtool, 'check', 'rules', rules], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            kc.fail(f'promtool check rules: {(r.stdout + r.stderr).strip()}')
        kc.log(f'  ok: {len(exprs)} promql blocks parse (promtool check rules)')

        exits = find(exprs, r'rate\(kvm_vcpu_exits_total\[\w+\]\)')
        poll = find(exprs, r'rate\(kvm_vcpu_halt_successful_poll_total\[.*')
        test = os.path.join(tmp, 'test.yml')
        with open(test, 'w') as f:
            f.write(f'''rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'kvm_vcpu_exits_total{{vm="a"}}'
        values: '0+600x20'
      - series: 'kvm_vcpu_halt_successful_poll_total{{vm="a"}}'
        values: '0+80x20'
      - series: 'kvm_vcpu_halt_attempted_poll_total{{vm="a"}}'
        values: '0+100x20'
    promql_expr_test:
      - expr: {yaml_str(exits)}
        eval_time: 15m
        exp_samples:
          - labels: '{{vm="a"}}'
            value: 10
      - expr: {yaml_str(poll)}
        eval_time: 15m
        exp_samples:
          - labels: '{{vm="a"}}'
            value: 0.8
''')
        r = subprocess.run([promtool, 'test', 'rules', test], capture_output=True, text=True,
                           timeout=60, cwd=tmp)
        if r.returncode != 0:
            kc.fail(f'promtool test rules: {(r.stdout + r.stderr).strip()}')
        kc.log('  ok: exits/s = 10 and halt-poll efficiency = 0.8 on known input series')
    kc.log('PASS')


if __name__ == '__main__':
    main()
