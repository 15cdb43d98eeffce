#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""--web.config.file is re-read when it changes, under a running exporter.

With curl and openssl (as test_tls_auth.py), the test rewrites the config
and its certificate files while the exporter serves:

  1. TLS, basic auth and auth_excluded_paths: /-/healthy without a password,
     /metrics only with it; kvmstats_exporter_web_config_last_reload_successful 1.
  2. A new password: the old one is refused at once, the new one accepted.
  3. A broken edit: the last good config stays (the new password still
     works), one log line says so however many requests follow, and the
     self-metric says 0.
  4. A rotated certificate (new files renamed over the old ones) with the
     file fixed: new connections get the new certificate, the metric is 1.
  5. A header added under http_server_config.headers appears on answers.
  6. Reloads racing with requests: four clients scrape over TLS while the
     file flips between two passwords 20 times; every answer is a 200 or a
     401 (never a reset, a 5xx or a hang) and the exporter keeps running.
"""
import base64
import http.client
import os
import ssl
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import kvm_common as kc  # noqa: E402
from lib import web_tls as ta  # noqa: E402


def config(d, password_hash, cert='server', headers=''):
    return (f'tls_server_config:\n  cert_file: {cert}.crt\n  key_file: {cert}.key\n'
            f'basic_auth_users:\n  {ta.USER}: {password_hash}\n'
            f'auth_excluded_paths:\n  - /-/healthy\n{headers}')


def rewrite(d, text):
    """As configuration management does: write beside it, then rename over it."""
    path = os.path.join(d, 'web.yml')
    with open(path + '.new', 'w') as f:
        f.write(text)
    os.rename(path + '.new', path)


def served_cert(port):
    pem = ssl.get_server_certificate(('127.0.0.1', port))
    return ssl.PEM_cert_to_DER_cert(pem)


def file_cert(d, name):
    with open(os.path.join(d, f'{name}.crt')) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def reload_metric(curl, port, password):
    rc, code, _, body, err = curl.get(port, auth=(ta.USER, password))
    if code != 200:
        kc.fail(f'scrape for the reload metric: HTTP {code} (curl exit {rc}: {err})')
    for line in body.splitlines():
        if line.startswith('kvmstats_exporter_web_config_last_reload_successful '):
            return line.split()[1]
    kc.fail('no kvmstats_exporter_web_config_last_reload_successful in the scrape')


def main():
    for tool, pkg in (('curl', 'curl'), ('openssl', 'openssl')):
        if not shutil.which(tool):
            kc.skip(f'{tool} not found (Debian package "{pkg}")')
    old_pw, new_pw = 'first secret', 'second secret'
    with tempfile.TemporaryDirectory(prefix='web-reload-') as d:
        ta.make_pki(d)
        # A second server certificate, for the rotation.
        ta.openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256',
                   '-out', 'server2.key', cwd=d)
        ta.openssl('req', '-new', '-key', 'server2.key', '-out', 'server2.csr', '-subj',
                   '/CN=localhost', cwd=d)
        ta.openssl('x509', '-req', '-in', 'server2.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key',
                   '-CAcreateserial', '-out', 'server2.crt', '-days', '2', '-extfile',
                   'server.ext', cwd=d)
        old_hash, new_hash = ta.bcrypt_hash(old_pw), ta.bcrypt_hash(new_pw)
        curl = ta.Curl(d)
        probe = (lambda port: curl.get(port, path='/-/healthy')[1] == 200)
        with ta.web_exporter(d, config(d, old_hash), probe=probe) as ex:
            p = ex.port
            # 1
            ta.expect_status('excluded path without a password', curl.get(p, path='/-/healthy'),
                             200)
            ta.expect_status('/metrics without a password', curl.get(p), 401)
            ta.expect_status('/metrics with the password', curl.get(p, auth=(ta.USER, old_pw)),
                             200)
            if reload_metric(curl, p, old_pw) != '1':
                kc.fail('last reload not successful at start')
            if served_cert(p) != file_cert(d, 'server'):
                kc.fail('the served certificate is not server.crt')
            # 2
            rewrite(d, config(d, new_hash))
            ta.expect_status('old password after the change',
                             curl.get(p, auth=(ta.USER, old_pw)), 401)
            ta.expect_status('new password after the change',
                             curl.get(p, auth=(ta.USER, new_pw)), 200)
            # 3
            rewrite(d, 'basic_auth_users: [this is not\n')
            for i in range(3):
                ta.expect_status(f'new password with a broken file ({i + 1})',
                                 curl.get(p, auth=(ta.USER, new_pw)), 200)
            if reload_metric(curl, p, new_pw) != '0':
                kc.fail('the broken edit did not set the reload metric to 0')
            lines = [line for line in ex.log_text().splitlines()
                     if 'web config not reloaded' in line]
            if len(lines) != 1:
                kc.fail(f'{len(lines)} log lines about the broken edit, expected 1: {lines}')
            kc.log(f'  ok: one line: {lines[0]}')
            # 4
            for ext in ('key', 'crt'):
                os.rename(os.path.join(d, f'server2.{ext}'), os.path.join(d, f'server.{ext}'))
            rewrite(d, config(d, new_hash))
            ta.expect_status('after the rotation', curl.get(p, auth=(ta.USER, new_pw)), 200)
            if served_cert(p) != file_cert(d, 'server'):
                kc.fail('the rotated certificate is not served')
            kc.log('  ok: new connections get the rotated certificate')
            if reload_metric(curl, p, new_pw) != '1':
                kc.fail('the fixed file did not set the reload metric back to 1')
            # 5
            rewrite(d, config(d, new_hash, headers='http_server_config:\n  headers:\n'
                              '    X-Frame-Options: deny\n'))
            _, code, hdrs, _, _ = curl.get(p, auth=(ta.USER, new_pw))
            if code != 200 or ta.header(hdrs, 'X-Frame-Options') != 'deny':
                kc.fail(f'the added header is not served: HTTP {code}, {hdrs!r}')
            kc.log('  ok: a header added to the file is served')
            # 6
            race(d, ex, (old_hash, new_hash), (old_pw, new_pw))
            if ex.proc.poll() is not None:
                kc.fail(f'the exporter exited: {ex.log_text()}')
    print('PASS')


def race(d, ex, hashes, passwords):
    """Clients with either password while the file flips between them."""
    ctx = ssl.create_default_context(cafile=os.path.join(d, 'ca.crt'))
    stop, answers, errors = threading.Event(), [], []

    def client(i):
        auth = base64.b64encode(f'{ta.USER}:{passwords[i % 2]}'.encode()).decode()
        while not stop.is_set():
            try:
                c = http.client.HTTPSConnection('127.0.0.1', ex.port, context=ctx, timeout=10)
                c.request('GET', '/-/ready', headers={'Authorization': 'Basic ' + auth})
                answers.append(c.getresponse().status)
                c.close()
            except (OSError, http.client.HTTPException) as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            rewrite(d, config(d, hashes[i % 2]))
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    bad = [a for a in answers if a not in (200, 401)]
    if errors or bad or answers.count(200) == 0 or answers.count(401) == 0:
        kc.fail(f'racing reloads: {len(answers)} answers, {answers.count(200)} 200, '
                f'{answers.count(401)} 401, others {bad[:5]}, errors {errors[:3]}; '
                f'exporter exit {ex.proc.poll()}, log: {ex.log_text()[-3000:]}')
    kc.log(f'  ok: {len(answers)} requests racing 20 reloads: {answers.count(200)} 200, '
           f'{answers.count(401)} 401, nothing else')


if __name__ == '__main__':
    main()
