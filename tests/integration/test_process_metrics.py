#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""process_* and promhttp_* against what /proc says about the running exporter.

The exporter serves saved stats files (no /dev/kvm needed). Around one
scrape the test reads /proc/<pid>/status (VmRSS, VmSize), /proc/<pid>/fd,
/proc/<pid>/limits and /proc/<pid>/stat itself and compares: fds within
the scrape's own connection and directory fd, memory within what the scrape
itself may add, the fd limit and the start time exactly, CPU time between
the readings before and after. promhttp_metric_handler_requests_total must
count every earlier scrape by code (a 400 included), the in-flight gauge
must be 1 (this scrape). --web.disable-exporter-metrics and
exclude[]=exporter hide them all, as node_exporter's flag does.
"""
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402

DATA = os.path.join(os.environ.get('TESTS_SOURCE_DIR', ''), 'data')
ARGS = ['--no-kvm.procfs', '--kvm.handoff-socket=',
        f'--kvm.stats-file={DATA}/x86_64-6.18-vm.bin',
        f'--kvm.stats-file={DATA}/x86_64-6.18-vcpu.bin']
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status_kb(pid, key):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    kc.fail(f'no {key} in /proc/{pid}/status')


def stat_fields(pid):
    with open(f'/proc/{pid}/stat') as f:
        text = f.read()
    return text[text.rindex(')') + 2:].split()  # fields from 3 (state) on


def values(text):
    out = {}
    for line in text.splitlines():
        if line and line[0] != '#':
            name, _, v = line.rpartition(' ')
            out[name] = float(v)
    return out


def get(url):
    try:
        with _opener.open(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    hz = os.sysconf('SC_CLK_TCK')
    with open('/proc/stat') as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith('btime '))
    problems = []
    with kc.Exporter(ARGS) as ex:  # its start-up check scraped once
        pid = ex.pid
        if get(ex.url + '?collect[]=nosuch') != 400:
            problems.append('collect[]=nosuch did not get a 400')
        ex.scrape()
        before = stat_fields(pid)
        fds_before = len(os.listdir(f'/proc/{pid}/fd'))
        rss, vsize = status_kb(pid, 'VmRSS'), status_kb(pid, 'VmSize')
        v = values(ex.scrape())
        fds_after = len(os.listdir(f'/proc/{pid}/fd'))
        after = stat_fields(pid)
        rss_after = status_kb(pid, 'VmRSS')
        with open(f'/proc/{pid}/limits') as f:
            nofile = next(int(line.split()[3]) for line in f if line.startswith('Max open files'))

        fds = v.get('process_open_fds', -1)
        # The scrape's own connection and /proc/self/fd directory are open while it counts.
        if not min(fds_before, fds_after) <= fds <= max(fds_before, fds_after) + 2:
            problems.append(f'process_open_fds {fds}, /proc/{pid}/fd has {fds_before} before '
                            f'and {fds_after} after')
        if v.get('process_max_fds') != nofile:
            problems.append(f'process_max_fds {v.get("process_max_fds")}, limits say {nofile}')
        r = v.get('process_resident_memory_bytes', -1)
        if not min(rss, rss_after) - (1 << 20) <= r <= max(rss, rss_after) + (4 << 20):
            problems.append(f'process_resident_memory_bytes {r}, VmRSS {rss}..{rss_after}')
        vm = v.get('process_virtual_memory_bytes', -1)
        if abs(vm - vsize) > (64 << 20):
            problems.append(f'process_virtual_memory_bytes {vm}, VmSize {vsize}')
        start = btime + int(before[19]) / hz
        if abs(v.get('process_start_time_seconds', -1) - start) > 1e-6:
            problems.append(f'process_start_time_seconds {v.get("process_start_time_seconds")}, '
                            f'/proc says {start}')
        cpu0 = (int(before[11]) + int(before[12])) / hz
        cpu1 = (int(after[11]) + int(after[12])) / hz
        if not cpu0 - 1e-9 <= v.get('process_cpu_seconds_total', -1) <= cpu1 + 1e-9:
            problems.append(f'process_cpu_seconds_total {v.get("process_cpu_seconds_total")}, '
                            f'/proc says {cpu0}..{cpu1}')
        if 'process_virtual_memory_max_bytes' not in v or \
                'process_network_receive_bytes_total' not in v:
            problems.append('process_virtual_memory_max_bytes or network bytes missing')
        # Earlier scrapes: the start-up check and the one above; and the 400.
        want = {'200': 2, '400': 1, '500': 0, '503': 0}
        for code, n in want.items():
            got = v.get(f'promhttp_metric_handler_requests_total{{code="{code}"}}')
            if got != n:
                problems.append(f'promhttp_metric_handler_requests_total{{code="{code}"}} {got}, '
                                f'expected {n}')
        if v.get('promhttp_metric_handler_requests_in_flight') != 1:
            problems.append(f'in flight {v.get("promhttp_metric_handler_requests_in_flight")}')
        kc.log(f'  open fds {fds} (/proc: {fds_before}/{fds_after}), max {nofile}, rss {r} '
               f'(VmRSS {rss}), vsize {vm} (VmSize {vsize}), cpu {cpu0}..{cpu1}')

        status, text = 0, ''
        with _opener.open(ex.url + '?exclude[]=exporter', timeout=10) as resp:
            status, text = resp.status, resp.read().decode()
        if status != 200 or 'process_' in text or 'promhttp_' in text:
            problems.append('exclude[]=exporter still shows process_/promhttp_ families')
    with kc.Exporter(ARGS + ['--web.disable-exporter-metrics']) as ex:
        text = ex.scrape()
        if 'process_' in text or 'promhttp_' in text:
            problems.append('--web.disable-exporter-metrics still shows process_/promhttp_')
    kc.finish(problems, 'process and promhttp metrics')


if __name__ == '__main__':
    main()
