#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Kubernetes manifests (deploy/kubernetes) against the Kubernetes schemas
and against the exporter and image they describe.

usage: test_kubernetes.py schema|consistency

schema       Every manifest validates against the API schemas of the npm
             packages kubernetes-models and @kubernetes-models/prometheus-operator
             (installed into a cache directory on first use), unknown fields
             refused (k8s_validate.mjs); a broken copy of the DaemonSet must be
             refused, so a validator that passes everything fails the test.
consistency  The manifests name only what exists: flags from the exporter's
             --help (and the exporter accepts each container's arguments),
             images the build script makes, the hand-off socket directory and
             the endpoints the exporter serves, container ports its listen
             address uses, Service, monitor and pod selectors that select
             each other, the job name the alerts expect, paths in the image
             that collect-runtime puts there; every file is part of a
             kustomization, and the PrometheusRule equals the rules file.
"""
import copy
import json
import os
import re
import subprocess
import sys
import tempfile

import deploy_common as dc

SRC = dc.source_dir()
KDIR = os.path.join(SRC, 'deploy', 'kubernetes')
RULES = os.path.join(SRC, 'contrib', 'prometheus', 'kvmstats_exporter.rules.yml')
# The npm packages, pinned: the schemas of Kubernetes 1.3x and of the
# Prometheus Operator's CRDs, and a YAML parser.
NPM_PACKAGES = {'kubernetes-models': '5.1.0', '@kubernetes-models/prometheus-operator': '6.0.0',
                'yaml': '2.9.1'}
OUR_IMAGE = 'localhost/kvmstats_exporter'


def yaml_module():
    try:
        import yaml
    except ImportError:
        dc.skip('python3-yaml not found (Debian package "python3-yaml")')
    return yaml


def manifest_files():
    out = []
    for root, _, files in os.walk(KDIR):
        out += [os.path.join(root, f) for f in files if f.endswith(('.yaml', '.yml'))]
    return sorted(out)


def documents():
    """[(path, doc)] of every Kubernetes object (kustomization files aside)."""
    yaml = yaml_module()
    out = []
    for f in manifest_files():
        if os.path.basename(f) == 'kustomization.yaml':
            continue
        with open(f) as fh:
            out += [(f, d) for d in yaml.safe_load_all(fh) if d]
    return out


# --- schema ------------------------------------------------------------------------------
def npm_modules():
    """node_modules with NPM_PACKAGES, installed once into a cache directory."""
    node, npm = dc.need('node', 'nodejs'), dc.need('npm', 'npm')
    base = os.environ.get('KVMSTATS_NPM_CACHE') or (
        '/var/cache/kvmstats_exporter/npm' if os.geteuid() == 0
        else os.path.join(dc.build_dir(), 'npm'))
    key = '-'.join(f'{n.replace("/", "_")}@{v}' for n, v in sorted(NPM_PACKAGES.items()))
    d = os.path.join(base, key)
    modules = os.path.join(d, 'node_modules')

    def installed():
        for name, version in NPM_PACKAGES.items():
            try:
                with open(os.path.join(modules, name, 'package.json')) as f:
                    if json.load(f).get('version') != version:
                        return False
            except (OSError, ValueError):
                return False
        return True

    if not installed():
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'package.json'), 'w') as f:
            json.dump({'name': 'kvmstats-manifest-schemas', 'private': True,
                       'dependencies': NPM_PACKAGES}, f, indent=2)
        dc.log(f'  npm install {" ".join(f"{n}@{v}" for n, v in NPM_PACKAGES.items())} in {d}')
        r = subprocess.run([npm, 'install', '--no-audit', '--no-fund', '--loglevel=error'],
                           cwd=d, capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not installed():
            dc.skip(f'npm could not install the schema packages: {(r.stderr or r.stdout)[-500:]}')
    return node, modules


def validate(node, modules, files):
    script = os.path.join(dc.HERE, 'k8s_validate.mjs')
    r = subprocess.run([node, script, modules] + files, capture_output=True, text=True,
                       timeout=300)
    return r.returncode, (r.stdout + r.stderr).strip()


def part_schema():
    node, modules = npm_modules()
    files = [f for f in manifest_files() if os.path.basename(f) != 'kustomization.yaml']
    rc, out = validate(node, modules, files)
    dc.log(out)
    if rc != 0:
        dc.fail(f'{len(files)} manifest files: schema validation failed')
    m = re.search(r'^(\d+) documents, 0 problems$', out, re.M)
    if not m or int(m.group(1)) != len(documents()):
        dc.fail(f'the validator did not check every document: {out.splitlines()[-1:]}')
    # Negative controls: a wrong type, a misspelt field, a bad enum value.
    yaml = yaml_module()
    ds = next(d for _, d in documents() if d['kind'] == 'DaemonSet')
    broken = []
    for mutate in (lambda c: c['ports'][0].__setitem__('containerPort', 'nine'),
                   lambda c: c['securityContext'].__setitem__('readOnlyRootFileSystem', True),
                   lambda c: c.__setitem__('imagePullPolicy', 'Sometimes')):
        bad = copy.deepcopy(ds)
        mutate(bad['spec']['template']['spec']['containers'][0])
        broken.append(bad)
    with tempfile.TemporaryDirectory(prefix='kvmstats-k8s-') as tmp:
        for i, b in enumerate(broken):
            path = os.path.join(tmp, f'broken-{i}.yaml')
            with open(path, 'w') as f:
                yaml.safe_dump(b, f)
            rc, out = validate(node, modules, [path])
            if rc == 0:
                dc.fail(f'the validator accepted a broken DaemonSet ({i}): {out}')
    dc.log(f'  ok: {len(files)} files valid; 3 broken DaemonSets refused')


# --- consistency ----------------------------------------------------------------------------
def help_flags():
    """{flag name: takes --no- form} from --help."""
    r = subprocess.run([kc_exporter(), '--help'], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        dc.fail(f'--help exited {r.returncode}')
    flags = {}
    for m in re.finditer(r'^\s+(?:-\w, )?--(\[no-\])?([a-z][a-z0-9.-]*)', r.stdout, re.M):
        flags[m.group(2)] = bool(m.group(1))
    if 'web.listen-address' not in flags or 'kvm.procfs' not in flags:
        dc.fail(f'could not read the flags from --help: {sorted(flags)}')
    return flags, r.stdout


def kc_exporter():
    return dc.kc.exporter_path()


def help_default(help_text, flag):
    m = re.search(r'--' + re.escape(flag) + r'=\S+\n(.*?)(?=\n\s+--|\n\n)', help_text, re.S)
    d = m and re.search(r'Default:\s+"([^"]*)"', m.group(1))
    if not d:
        dc.fail(f'no default for --{flag} in --help')
    return d.group(1)


def pod_specs(docs):
    """[(where, pod template metadata, pod spec)] of DaemonSets and Pods."""
    out = []
    for f, d in docs:
        where = f'{os.path.relpath(f, SRC)} {d["kind"]}/{d["metadata"]["name"]}'
        if d['kind'] == 'DaemonSet':
            out.append((where, d['spec']['template']['metadata'], d['spec']['template']['spec']))
        elif d['kind'] == 'Pod':
            out.append((where, d['metadata'], d['spec']))
    return out


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def image_paths():
    """Paths collect-runtime puts into the image."""
    with open(os.path.join(SRC, 'deploy', 'container', 'collect-runtime')) as f:
        text = f.read()
    paths = set(re.findall(r'place "\$prog" (/\S+)', text))
    if not paths:
        dc.fail('no paths found in deploy/container/collect-runtime')
    return paths


def check_container_args(where, c, flags, problems):
    """Each argument a flag of --help; returns {flag: value}."""
    values = {}
    for a in c.get('args', []):
        m = re.fullmatch(r'--([a-z][a-z0-9.-]*)(?:=(.*))?', a)
        if not m:
            problems.append(f'{where} {c["name"]}: argument {a!r} is not --flag[=value]')
            continue
        name, value = m.group(1), m.group(2)
        if name.startswith('no-') and flags.get(name[3:]):
            name = name[3:]
        elif name not in flags:
            problems.append(f'{where} {c["name"]}: the exporter has no flag --{name}')
            continue
        values[name] = value
    return values


def exporter_accepts(args):
    """The exporter parses ARGS: --once with them, as nobody without
    capabilities so that procfs discovery touches no VM of this host."""
    prefix = []
    if os.geteuid() == 0:
        prefix = [dc.need('setpriv', 'util-linux'), '--reuid=65534', '--regid=65534',
                  '--clear-groups', '--inh-caps=-all', '--bounding-set=-all']
    r = subprocess.run(prefix + [kc_exporter()] + args + ['--once'], capture_output=True,
                       text=True, timeout=60)
    return r.returncode == 0, r.stderr.strip()[-300:]


def part_consistency():
    yaml = yaml_module()
    flags, help_text = help_flags()
    default_socket = help_default(help_text, 'kvm.handoff-socket')
    default_listen = help_default(help_text, 'web.listen-address')
    endpoints = {'/metrics', '/-/healthy', '/-/ready', '/'}
    for e in ('"/-/healthy"', '"/-/ready"'):
        if e not in help_text:
            dc.fail(f'--help does not name the endpoint {e}')
    with open(os.path.join(SRC, 'meson.build')) as f:
        version = re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)
    want_image = f'{OUR_IMAGE}:{version}'
    in_image = image_paths()
    docs = documents()
    problems = []
    pods = pod_specs(docs)
    if not pods:
        dc.fail('no DaemonSet or Pod found')
    ours = 0
    for where, meta, spec in pods:
        image_mounts = {}  # image volume name -> image
        for v in spec.get('volumes', []):
            if 'image' in v:
                image_mounts[v['name']] = v['image']['reference']
            if 'hostPath' in v and v['hostPath']['path'] != os.path.dirname(default_socket):
                problems.append(f'{where}: hostPath {v["hostPath"]["path"]} is not the hand-off '
                                f'socket directory {os.path.dirname(default_socket)}')
        images = [c['image'] for c in spec['containers'] + spec.get('initContainers', [])]
        images += list(image_mounts.values())
        for img in images:
            if img.split(':')[0] == OUR_IMAGE:
                if img != want_image:
                    problems.append(f'{where}: image {img}, but deploy/container/build makes {want_image}')
            elif '.invalid/' not in img:
                problems.append(f'{where}: image {img} is neither ours nor a placeholder (*.invalid)')
        for c in spec['containers']:
            mounts = {m['mountPath']: m['name'] for m in c.get('volumeMounts', [])}
            ports = {p.get('name'): p['containerPort'] for p in c.get('ports', [])}
            for probe in ('livenessProbe', 'readinessProbe', 'startupProbe'):
                g = c.get(probe, {}).get('httpGet')
                if g and (g['path'] not in endpoints or g['port'] not in ports):
                    problems.append(f'{where} {c["name"]}: {probe} {g} names no endpoint/port')
            for e in c.get('env', []):
                if e['name'] == 'LD_PRELOAD':
                    ok = any(e['value'].startswith(mp + '/') and e['value'][len(mp):] in in_image
                             and mounts[mp] in image_mounts for mp in mounts)
                    if not ok:
                        problems.append(f'{where} {c["name"]}: LD_PRELOAD {e["value"]} is not a '
                                        'file of an image volume')
                if e['name'] == 'KVMSTATS_HANDOFF_SOCKET' and os.path.dirname(e['value']) not in mounts:
                    problems.append(f'{where} {c["name"]}: hand-off socket {e["value"]} is on no volume')
            if c['image'].split(':')[0] != OUR_IMAGE:
                continue
            ours += 1
            values = check_container_args(where, c, flags, problems)
            listen = values.get('web.listen-address') or default_listen
            port = int(listen.rsplit(':', 1)[1])
            if ports.get('metrics') != port:
                problems.append(f'{where} {c["name"]}: port "metrics" {ports.get("metrics")}, '
                                f'the exporter listens on {port}')
            sock = values.get('kvm.handoff-socket', default_socket)
            if sock and os.path.dirname(sock) not in mounts:
                problems.append(f'{where} {c["name"]}: hand-off socket {sock} is on no volume')
            ok, err = exporter_accepts(c.get('args', []))
            if not ok:
                problems.append(f'{where} {c["name"]}: the exporter refuses its arguments: {err}')
    if ours < 2:
        problems.append(f'only {ours} containers run the exporter (DaemonSet and sidecar expected)')

    # Selectors: Service -> pods, monitors -> Services / pods, port names.
    services = [d for _, d in docs if d['kind'] == 'Service']
    for s in services:
        sel = [p for p in pods if matches(s['spec']['selector'], p[1].get('labels', {}))]
        if not sel:
            problems.append(f'Service {s["metadata"]["name"]} selects no pod')
        for port in s['spec']['ports']:
            for where, _, spec in sel:
                names = {p.get('name') for c in spec['containers'] for p in c.get('ports', [])}
                if port['targetPort'] not in names:
                    problems.append(f'Service {s["metadata"]["name"]}: targetPort {port["targetPort"]} '
                                    f'not in {where}')
    alert_job = None
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    for g in rules['groups']:
        for r in g['rules']:
            m = re.search(r'\bup\{job="([^"]+)"\}', r['expr'])
            alert_job = alert_job or (m and m.group(1))
    for f, d in docs:
        kind = d['kind']
        if kind not in ('ServiceMonitor', 'PodMonitor'):
            continue
        name = f'{kind} {d["metadata"]["name"]}'
        sel = d['spec']['selector'].get('matchLabels', {})
        eps = d['spec'].get('endpoints') or d['spec'].get('podMetricsEndpoints')
        if kind == 'ServiceMonitor':
            targets = [s for s in services if matches(sel, s['metadata'].get('labels', {}))]
            tlabels = [s['metadata']['labels'] for s in targets]
            tports = [{p['name'] for p in s['spec']['ports']} for s in targets]
        else:
            targets = [p for p in pods if matches(sel, p[1].get('labels', {}))]
            tlabels = [p[1]['labels'] for p in targets]
            tports = [{p.get('name') for c in p[2]['containers'] for p in c.get('ports', [])}
                      for p in targets]
        if not targets:
            problems.append(f'{name} selects nothing')
        for ep in eps:
            if ep.get('path', '/metrics') != '/metrics' or any(ep['port'] not in tp for tp in tports):
                problems.append(f'{name}: endpoint {ep} names no port or path of its targets')
            relabel_job = [r.get('replacement') for r in ep.get('relabelings', [])
                           if r.get('targetLabel') == 'job']
            jobs = set(relabel_job) if relabel_job else {l.get(d['spec'].get('jobLabel', ''))
                                                         for l in tlabels}
            if jobs != {alert_job}:
                problems.append(f'{name}: job would be {sorted(map(str, jobs))}, the alerts expect '
                                f'{alert_job!r}')

    # KubeVirt: vm="<namespace>_<name>" (libvirt's domain name) becomes
    # namespace and name, also when the name holds "_"; other names are left.
    cases = {'default_testvm': ('default', 'testvm'), 'kube-system_vm_a': ('kube-system', 'vm_a'),
             'a1-b_c': ('a1-b', 'c'), 'pid-4242': (None, None), 'web-1': (None, None)}
    kubevirt = [ep for _, d in docs if d['kind'] == 'ServiceMonitor'
                for ep in d['spec']['endpoints'] if ep.get('metricRelabelings')]
    if len(kubevirt) != 1:
        problems.append(f'{len(kubevirt)} ServiceMonitor endpoints relabel metrics, expected 1 (KubeVirt)')
    for ep in kubevirt:
        for vm, want in cases.items():
            got = {}
            for r in ep['metricRelabelings']:
                if r.get('sourceLabels') != ['vm'] or r.get('action', 'replace') != 'replace':
                    continue
                m = re.fullmatch(r['regex'], vm)  # Prometheus anchors relabel regexes
                if m:
                    got[r['targetLabel']] = re.sub(r'\$\{?(\d+)\}?', lambda g: m.group(int(g.group(1))) or '',
                                                   r['replacement'])
            if (got.get('namespace'), got.get('name')) != want:
                problems.append(f'KubeVirt relabeling of vm="{vm}" gives {got}, expected {want}')

    # The PrometheusRule carries the rules file's groups unchanged.
    prs = [d for _, d in docs if d['kind'] == 'PrometheusRule']
    if len(prs) != 1 or prs[0]['spec'] != rules:
        problems.append('the PrometheusRule differs from contrib/prometheus/kvmstats_exporter.rules.yml')

    # Kustomizations: every resource exists, every manifest is in one.
    referenced = set()
    for f in manifest_files():
        if os.path.basename(f) != 'kustomization.yaml':
            continue
        with open(f) as fh:
            k = yaml.safe_load(fh)
        extra = set(k) - {'apiVersion', 'kind', 'namespace', 'resources', 'images'}
        if k.get('kind') != 'Kustomization' or extra:
            problems.append(f'{os.path.relpath(f, SRC)}: not a plain Kustomization ({sorted(extra)})')
        for r in k.get('resources', []):
            p = os.path.normpath(os.path.join(os.path.dirname(f), r))
            if os.path.isdir(p):
                if not os.path.exists(os.path.join(p, 'kustomization.yaml')):
                    problems.append(f'{os.path.relpath(f, SRC)}: {r} has no kustomization.yaml')
            elif not os.path.isfile(p) or os.path.dirname(p) != os.path.dirname(f):
                problems.append(f'{os.path.relpath(f, SRC)}: {r} is not a file of this directory')
            referenced.add(p)
    for f in manifest_files():
        if os.path.basename(f) != 'kustomization.yaml' and f not in referenced:
            problems.append(f'{os.path.relpath(f, SRC)} is in no kustomization')
    dc.log(f'  {len(docs)} objects, {len(pods)} pod specs, {ours} exporter containers, '
           f'{len(flags)} flags in --help')
    if not dc.report(problems, 'manifests name only what exists'):
        sys.exit(1)


def main():
    parts = {'schema': part_schema, 'consistency': part_consistency}
    if len(sys.argv) != 2 or sys.argv[1] not in parts:
        dc.fail(f'usage: {sys.argv[0]} {"|".join(parts)}')
    parts[sys.argv[1]]()


if __name__ == '__main__':
    main()
