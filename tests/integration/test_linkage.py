#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The daemon links libsystemd; the LD_PRELOAD shim must not.

The shim runs inside every VMM it is preloaded into: whatever it links is
loaded into QEMU too. ldd(1) lists what the dynamic loader would really map
(direct and indirect), so a dependency that creeps in through a helper
library is caught as well.

  test_linkage.py EXPORTER SHIM
"""
import shutil
import subprocess
import sys


def fail(msg):
    print('FAIL: ' + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def libraries(path):
    r = subprocess.run(['ldd', path], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        fail(f'ldd {path} failed: {r.stderr.strip()}')
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def main():
    if not shutil.which('ldd'):
        print('SKIP: ldd not found (Debian package "libc-bin")', file=sys.stderr)
        sys.exit(77)
    exporter, shim = sys.argv[1], sys.argv[2]
    daemon_libs = libraries(exporter)
    if not any(lib.startswith('libsystemd.so') for lib in daemon_libs):
        fail(f'the daemon does not link libsystemd: {daemon_libs}')
    shim_libs = libraries(shim)
    bad = [lib for lib in shim_libs if lib.startswith(('libsystemd', 'libmicrohttpd', 'libgnutls',
                                                       'libjansson', 'libyaml'))]
    if bad:
        fail(f'the LD_PRELOAD shim links daemon libraries {bad}: {shim_libs}')
    print(f'  ok: daemon links libsystemd; shim links only {shim_libs}')
    print('PASS')


if __name__ == '__main__':
    main()
