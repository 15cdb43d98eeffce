#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""TLS and basic-auth matrix of --web.config.file, checked with the real peers curl and openssl.

usage: test_tls_auth.py

openssl makes a CA, a server certificate, a client certificate and one from a
look-alike CA in a temporary directory; libcrypt (the same library the
exporter uses, through ctypes) makes the bcrypt hash. The exporter serves a
saved stats blob (no /dev/kvm needed) and curl checks: no password 401, wrong
password 401, right one 200, the configured header, plain HTTP refused, no
client certificate or a foreign one refused in the handshake, a valid one 200,
min_version TLS13 refusing a TLS 1.2 client, and a bad file stopping startup
with one line naming the key. SKIP (77) if curl or openssl is missing, or if
the exporter has no --web.config.file yet.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib.web_tls import (PASSWORD, USER, Curl, bcrypt_hash, expect_refused,  # noqa: E402
                         expect_status, exporter_help, handoff_off_args, header, make_pki, run,
                         web_exporter)


def main():
    for tool in ('curl', 'openssl'):
        if not shutil.which(tool):
            kc.skip(f'{tool} is not installed (Debian package {tool})')
    if 'web.config.file' not in exporter_help():
        kc.skip('this exporter has no --web.config.file flag yet')

    with tempfile.TemporaryDirectory() as d:
        make_pki(d)
        hashed = bcrypt_hash(PASSWORD)
        curl = Curl(d)
        good = (USER, PASSWORD)

        # 1. TLS with required, verified client certificates, basic auth and a header.
        #    Relative paths: from the config file's directory.
        config = (
            'tls_server_config:\n'
            '  cert_file: server.crt\n'
            '  key_file: server.key\n'
            '  client_auth_type: RequireAndVerifyClientCert\n'
            '  client_ca_file: ca.crt\n'
            'http_server_config:\n'
            '  headers:\n'
            '    X-Frame-Options: deny\n'
            '    Strict-Transport-Security: max-age=31536000\n'
            'basic_auth_users:\n'
            f'  {USER}: {hashed}\n')
        kc.log('mTLS + basic auth:')
        with web_exporter(d, config, probe=lambda p: curl.get(p, '/-/healthy', cert='client',
                                                              auth=good)[1] == 200) as ex:
            expect_status('client cert, no password', curl.get(ex.port, cert='client'), 401)
            rc, code, hdrs, _, _ = curl.get(ex.port, '/-/healthy', cert='client')
            expect_status('client cert, no password, /-/healthy', (rc, code, hdrs, '', ''), 401)
            if header(hdrs, 'WWW-Authenticate') != 'Basic realm="kvmstats_exporter"':
                kc.fail(f'401 without WWW-Authenticate: Basic realm="kvmstats_exporter":\n{hdrs}')
            expect_status('client cert, wrong password',
                          curl.get(ex.port, cert='client', auth=(USER, 'wrong')), 401)
            expect_status('client cert, unknown user',
                          curl.get(ex.port, cert='client', auth=('root', PASSWORD)), 401)
            got = curl.get(ex.port, cert='client', auth=good)
            expect_status('client cert, right password', got, 200)
            _, _, hdrs, body, _ = got
            if 'kvm_' not in body:
                kc.fail(f'200 without metrics: {body[:200]!r}')
            if header(hdrs, 'X-Frame-Options') != 'deny' or \
                    header(hdrs, 'Strict-Transport-Security') != 'max-age=31536000':
                kc.fail(f'configured headers missing:\n{hdrs}')
            kc.log('  ok: configured headers present')
            # Again: the cached check gives the same answer.
            expect_status('right password again', curl.get(ex.port, cert='client', auth=good), 200)
            expect_refused('no client certificate', curl.get(ex.port, auth=good))
            expect_refused('no client certificate, TLS 1.2',
                           curl.get(ex.port, auth=good, extra=['--tls-max', '1.2']))
            expect_refused('certificate from a look-alike CA',
                           curl.get(ex.port, cert='stranger', auth=good))
            expect_refused('plain HTTP on the TLS port',
                           curl.get(ex.port, scheme='http', auth=good))

        # 2. min_version TLS13 (no client certificates, no users): TLS 1.2 clients are refused.
        config = ('tls_server_config:\n'
                  f'  cert_file: {os.path.join(d, "server.crt")}\n'
                  f'  key_file: {os.path.join(d, "server.key")}\n'
                  '  min_version: TLS13\n')
        kc.log('min_version TLS13:')
        with web_exporter(d, config, extra_args=['--web.max-requests=1'],
                          probe=lambda p: curl.get(p, '/-/healthy')[1] == 200) as ex:
            expect_status('TLS 1.3 client', curl.get(ex.port, extra=['--tlsv1.3']), 200)
            expect_refused('TLS 1.2 client', curl.get(ex.port, extra=['--tls-max', '1.2']))
            # One scrape at a time is allowed: sequential scrapes all succeed.
            for i in range(3):
                expect_status(f'sequential scrape {i + 1} with --web.max-requests=1',
                              curl.get(ex.port), 200)

        # 3. A bad file stops startup with one line that names the key and the line.
        kc.log('bad web config:')
        path = os.path.join(d, 'bad.yml')
        with open(path, 'w') as f:
            f.write('tls_server_config:\n  cert_file: server.crt\n  key_filez: server.key\n')
        r = run([kc.exporter_path(), f'--web.config.file={path}', '--no-kvm.procfs',
                 f'--web.listen-address=127.0.0.1:{kc.free_port()}'] + handoff_off_args())
        lines = [ln for ln in r.stderr.splitlines() if 'level=' not in ln]
        if r.returncode == 0 or len(lines) != 1 or \
                'tls_server_config.key_filez' not in lines[0] or 'bad.yml:3' not in lines[0]:
            kc.fail(f'bad config: exit {r.returncode}, stderr:\n{r.stderr}')
        kc.log(f'  ok: exit {r.returncode}: {lines[0]}')

    print('PASS: TLS, client certificates, basic auth and headers behave as configured')


if __name__ == '__main__':
    main()
