# SPDX-License-Identifier: MIT
"""Helpers of the deployment tests (tests/deploy): paths, podman set-up, a live
scrape of the exporter, and the metric and label names a PromQL expression uses.

stdlib only; the exposition parser and the exporter runner are those of the
real-kernel tests (tests/integration/lib/kvm_common.py).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'integration'))
from lib import kvm_common as kc  # noqa: E402

log, fail, skip, report = kc.log, kc.fail, kc.skip, kc.report


def source_dir():
    """The project's source root."""
    tests = os.environ.get('TESTS_SOURCE_DIR') or os.path.dirname(HERE)
    return os.path.dirname(os.path.abspath(tests))


def build_dir():
    """A directory of this build for state the tests keep (podman config)."""
    d = os.environ.get('TESTS_BUILD_DIR')
    if not d:
        fail('TESTS_BUILD_DIR is not set (run through meson test)')
    return d


def need(tool, package):
    path = shutil.which(tool)
    if not path:
        skip(f'{tool} not found (Debian package "{package}"; contrib/tools/install-deps --tests)')
    return path


# --- podman -----------------------------------------------------------------------
# Debian 12's podman 4.3 on these hosts: crun fails under hybrid cgroups and the
# default ulimits cannot be set, so runc, cgroupfs and no default ulimits. The
# file lives in the build directory and reaches podman through CONTAINERS_CONF,
# leaving the machine's own configuration alone.
CONTAINERS_CONF = """\
# Written by tests/deploy: podman settings for the deployment tests.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


# In the nested KVM host (tests/vmhost/run-in-kvm-host) the root is an overlay
# on 9p, which overlay storage cannot sit on: podman keeps its images and
# containers in the guest's own /run (a tmpfs, private to that guest).
NESTED_STORAGE = '/run/kvmstats-tests-podman'


def in_nested_host():
    """True inside the nested KVM host (its control share is at /run/kvm-host)."""
    return os.path.exists('/run/kvm-host/shares')


def _write_if_changed(path, text):
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def podman_env():
    """The environment for podman: CONTAINERS_CONF in the build directory (idempotent);
    in the nested KVM host also CONTAINERS_STORAGE_CONF for storage on its tmpfs."""
    need('podman', 'podman')
    need('runc', 'runc')
    conf = os.path.join(build_dir(), 'tests-deploy-containers.conf')
    _write_if_changed(conf, CONTAINERS_CONF)
    env = dict(os.environ)
    env['CONTAINERS_CONF'] = conf
    if in_nested_host():
        os.makedirs(NESTED_STORAGE, exist_ok=True)
        storage = os.path.join(NESTED_STORAGE, 'storage.conf')
        _write_if_changed(storage, f'[storage]\ndriver = "overlay"\n'
                          f'graphroot = "{NESTED_STORAGE}/root"\n'
                          f'runroot = "{NESTED_STORAGE}/runroot"\n')
        env['CONTAINERS_STORAGE_CONF'] = storage
    return env


def nested_image_archive():
    """The image for the nested KVM host: a `podman save` archive in the build
    directory, made on this machine by save_image.py (the build runs
    containers of its own and downloads packages, which the guest cannot)."""
    return os.path.join(build_dir(), 'tests-deploy-image.tar')


def podman(env, *args, check=True, timeout=120, capture=True):
    """Runs podman ARGS; returns the CompletedProcess (text). Fails on error when check."""
    cmd = ['podman'] + list(args)
    r = subprocess.run(cmd, env=env, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        fail(f'{" ".join(cmd)} exited {r.returncode}: {(r.stderr or "")[-2000:]}')
    return r


def build_image(env, tag):
    """deploy/container/build --tag TAG; returns (seconds, image size in bytes)."""
    import time
    script = os.path.join(source_dir(), 'deploy', 'container', 'build')
    start = time.monotonic()
    r = subprocess.run([script, '--tag', tag], env=env, capture_output=True, text=True,
                       timeout=1500)
    took = time.monotonic() - start
    if r.returncode != 0:
        fail(f'deploy/container/build exited {r.returncode}:\n{r.stderr[-4000:]}')
    if r.stdout.strip() != tag:
        fail(f'deploy/container/build printed {r.stdout.strip()!r}, expected the tag {tag!r}')
    size = int(podman(env, 'image', 'inspect', '--format', '{{.Size}}', tag).stdout.strip())
    return took, size


# --- a live scrape ----------------------------------------------------------------------
def full_exporter_args(tmp):
    """Flags that switch on every optional part of the exporter but procfs
    discovery (which would take other users' VMs on this host): the saved
    stats files, the canary, a hand-off socket and a vhost-user proxy in TMP."""
    data = os.path.join(source_dir(), 'tests', 'data')
    return ['--no-kvm.procfs', '--kvm.canary',
            f'--kvm.stats-file={data}/x86_64-6.18-vm.bin',
            f'--kvm.stats-file={data}/x86_64-6.18-vcpu.bin',
            f'--kvm.handoff-socket={tmp}/handoff.sock',
            f'--vhost.proxy=name=names,listen={tmp}/front.sock,backend={tmp}/back.sock']


def live_exposition():
    """One exposition of the exporter with every optional part switched on.

    The saved stats files in tests/data give the KVM families, the canary its
    own metrics (canary_up 0 on a host without /dev/kvm), a hand-off socket
    and a vhost-user proxy theirs; a second run without CAP_SYS_PTRACE (as
    nobody, so that no other VMM on the host is touched) adds procfs's.
    Returns the parsed kc.Exposition of both, merged.
    """
    with tempfile.TemporaryDirectory(prefix='kvmstats-names-') as tmp:
        with kc.Exporter(full_exporter_args(tmp)) as ex:
            text = ex.scrape()
    prefix = []
    if os.geteuid() == 0:
        prefix = [need('setpriv', 'util-linux'), '--reuid=65534', '--regid=65534',
                  '--clear-groups', '--inh-caps=-all', '--bounding-set=-all']
    r = subprocess.run(prefix + [kc.exporter_path(), '--once', '--kvm.handoff-socket='],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f'--once with procfs discovery exited {r.returncode}: {r.stderr[-2000:]}')
    expo = kc.Exposition(text + '\n' + ''.join(
        l + '\n' for l in r.stdout.splitlines() if not l.startswith('# ')))
    # The second run repeats self-metrics the first one has: keep the first.
    expo.errors = [e for e in expo.errors if 'duplicate series' not in e]
    return expo


def emitted_names(expo):
    """{sample name: set of label names} of an exposition, families without
    samples included through their TYPE lines (with the sample names their
    type gives them)."""
    names = {}
    for name, labels in expo.samples:
        names.setdefault(name, set()).update(k for k, _ in labels)
    for fam, typ in expo.types.items():
        if typ == 'histogram':
            for suffix in ('_bucket', '_sum', '_count'):
                names.setdefault(fam + suffix, set())
        elif typ == 'summary':
            for suffix in ('', '_sum', '_count'):
                names.setdefault(fam + suffix, set())
        else:
            names.setdefault(fam, set())
    return names


# Series Prometheus itself adds to every target it scrapes (not the exporter's).
PROMETHEUS_TARGET_SERIES = {'up', 'scrape_duration_seconds', 'scrape_samples_scraped',
                            'scrape_samples_post_metric_relabeling', 'scrape_series_added'}
# Labels Prometheus attaches to every scraped series (default target labels).
TARGET_LABELS = {'job', 'instance'}


# --- PromQL: which metric names and labels an expression names ----------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r'\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)')
_SELECTOR = re.compile(r'([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}')
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"')
_IDENT = re.compile(r'[A-Za-z_:][A-Za-z0-9_:]*')
_NUMBER = re.compile(r'(?<![A-Za-z0-9_:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?'
                     r'(?:ms|s|m|h|d|w|y)?(?:\d+(?:ms|s|m|h|d|w|y))*)')
_KEYWORDS = {'and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left',
             'group_right', 'bool', 'offset', 'atan2', 'inf', 'nan', 'Inf', 'NaN'}
# Grafana's template variables, replaced by something PromQL accepts.
_GRAFANA_VARS = re.compile(r'\$\{?(__rate_interval|__interval|__range)\}?')


def grafana_to_promql(expr):
    """A dashboard expression with Grafana's variables made plain PromQL."""
    expr = _GRAFANA_VARS.sub('5m', expr)
    return re.sub(r'\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?', '.*', expr)


def promql_names(expr):
    """(metric names, {metric name: labels named in its matchers}, grouping labels)."""
    masked = _STRING.sub(lambda m: '""', expr)
    selectors = {}
    for m in _SELECTOR.finditer(masked):
        if m.group(1) and m.group(1) not in _KEYWORDS:
            selectors.setdefault(m.group(1), set()).update(
                l.group(1) for l in _MATCHER.finditer(m.group(2)))
    grouping = set()
    for m in _GROUPING.finditer(masked):
        grouping.update(x.strip() for x in m.group(2).split(',') if x.strip())
    bare = _GROUPING.sub(' ', masked)
    bare = re.sub(r'\{[^{}]*\}', ' ', bare)
    bare = re.sub(r'\[[^\[\]]*\]', ' ', bare)
    bare = _NUMBER.sub(' ', bare)
    names = set()
    for m in _IDENT.finditer(bare):
        word = m.group(0)
        if word in _KEYWORDS or re.match(r'\s*\(', bare[m.end():]):
            continue  # an operator keyword, or a function / aggregation
        names.add(word)
    return names, selectors, grouping


def recorded_names(rules_doc):
    return {r['record'] for g in rules_doc['groups'] for r in g['rules'] if 'record' in r}


def check_names(exprs, emitted, recorded, what):
    """Problems: names in EXPRS neither emitted, recorded nor Prometheus's own;
    matcher labels the exporter does not put on that metric."""
    problems = []
    used = set()
    for where, expr in exprs:
        names, selectors, _ = promql_names(expr)
        if not names:
            problems.append(f'{what} {where}: no metric name found in {expr!r}')
        used |= names
        for name in sorted(names):
            if ':' in name:
                if name not in recorded:
                    problems.append(f'{what} {where}: {name} is recorded by no rule')
            elif name not in emitted and name not in PROMETHEUS_TARGET_SERIES:
                problems.append(f'{what} {where}: the exporter emits no {name}')
        for name, labels in selectors.items():
            have = emitted.get(name)
            if not have:
                continue  # recorded, Prometheus's own, or a family without series yet
            for label in sorted(labels - have - TARGET_LABELS):
                problems.append(f'{what} {where}: {name} has no label "{label}"')
    return problems, used
