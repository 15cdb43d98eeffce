"""The exporter behind a --web.config.file: a test PKI made by openssl, bcrypt hashes
made by libcrypt, and curl as the client."""

import ctypes
import ctypes.util
import os
import subprocess

from lib import kvm_common as kc

DATA = os.path.join(os.environ.get('TESTS_SOURCE_DIR', os.path.join(os.path.dirname(
    os.path.abspath(__file__)), '..')), 'data')
VM_BLOB = os.path.join(DATA, 'x86_64-6.18-vm.bin')
USER, PASSWORD = 'prometheus', 'correct horse battery staple'


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def openssl(*args, cwd):
    r = run(['openssl'] + list(args), cwd=cwd)
    if r.returncode != 0:
        kc.fail(f'openssl {" ".join(args)}: {r.stderr.strip()}')


def make_pki(d):
    """ca, server (localhost/127.0.0.1), client, and a client of a look-alike CA."""
    def key(name):
        openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256',
                '-out', f'{name}.key', cwd=d)

    def ca(name):
        key(name)
        openssl('req', '-x509', '-new', '-key', f'{name}.key', '-out', f'{name}.crt',
                '-days', '2', '-subj', '/CN=kvmstats test CA', cwd=d)

    def leaf(name, issuer, cn, ext):
        key(name)
        openssl('req', '-new', '-key', f'{name}.key', '-out', f'{name}.csr', '-subj', f'/CN={cn}',
                cwd=d)
        with open(os.path.join(d, f'{name}.ext'), 'w') as f:
            f.write(ext)
        openssl('x509', '-req', '-in', f'{name}.csr', '-CA', f'{issuer}.crt', '-CAkey',
                f'{issuer}.key', '-CAcreateserial', '-out', f'{name}.crt', '-days', '2',
                '-extfile', f'{name}.ext', cwd=d)

    ca('ca')
    ca('fake_ca')  # same name, other key: clients offer its certificates, the server must refuse
    leaf('server', 'ca', 'localhost',
         'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
    leaf('client', 'ca', 'scraper',
         'subjectAltName=DNS:scraper.example\nextendedKeyUsage=clientAuth\n')
    leaf('stranger', 'fake_ca', 'stranger',
         'subjectAltName=DNS:scraper.example\nextendedKeyUsage=clientAuth\n')


def bcrypt_hash(password):
    """$2b$ hash made by the system's libcrypt (crypt_gensalt + crypt), as htpasswd -B would."""
    name = ctypes.util.find_library('crypt') or 'libcrypt.so.1'
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        kc.skip(f'libcrypt not loadable ({e})')
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b'$2b$', 5, None, 0)
    h = lib.crypt(password.encode(), salt) if salt else None
    if not h or not h.startswith(b'$2b$05$'):
        kc.fail(f'libcrypt made no bcrypt hash: {h!r}')
    return h.decode()


def web_exporter(d, config, extra_args=(), probe=None):
    """kvm_common.Exporter with the web config `config` (written to d/web.yml) and a saved
    stats blob; probe(port) says when it answers (plain HTTP is not served with TLS)."""
    path = os.path.join(d, 'web.yml')
    with open(path, 'w') as f:
        f.write(config)
    args = [f'--web.config.file={path}', '--no-kvm.procfs', f'--kvm.stats-file={VM_BLOB}']
    return kc.Exporter(args + handoff_off_args() + list(extra_args), probe=probe)


_help = None


def exporter_help():
    global _help
    if _help is None:
        _help = run([kc.exporter_path(), '--help']).stdout
    return _help


def handoff_off_args():
    # Several exporters must not fight over the default hand-off socket path.
    return ['--kvm.handoff-socket='] if 'kvm.handoff-socket' in exporter_help() else []


class Curl:
    def __init__(self, d):
        self.d = d

    def get(self, port, path='/metrics', scheme='https', cert=None, auth=None, extra=()):
        """(curl exit code, HTTP status or 0, headers text, body text, curl's stderr)."""
        hdr = os.path.join(self.d, 'curl.headers')
        body = os.path.join(self.d, 'curl.body')
        for f in (hdr, body):
            if os.path.exists(f):
                os.unlink(f)
        cmd = ['curl', '--silent', '--show-error', '--noproxy', '*', '--max-time', '10',
               '--output', body, '--dump-header', hdr, '--write-out', '%{http_code}',
               '--cacert', os.path.join(self.d, 'ca.crt')]
        if cert:
            cmd += ['--cert', os.path.join(self.d, f'{cert}.crt'),
                    '--key', os.path.join(self.d, f'{cert}.key')]
        if auth:
            cmd += ['--user', f'{auth[0]}:{auth[1]}']
        cmd += list(extra) + [f'{scheme}://127.0.0.1:{port}{path}']
        r = run(cmd)
        read = (lambda f: open(f, errors='replace').read() if os.path.exists(f) else '')
        status = int(r.stdout) if r.stdout.strip().isdigit() else 0
        return r.returncode, status, read(hdr), read(body), r.stderr.strip()


def expect_status(what, got, status):
    rc, code, _, _, err = got
    if code != status:
        kc.fail(f'{what}: expected HTTP {status}, got {code} (curl exit {rc}: {err})')
    kc.log(f'  ok: {what} -> {status}')


def expect_refused(what, got):
    rc, code, _, _, err = got
    if rc == 0 or code != 0:
        kc.fail(f'{what}: expected the connection to be refused, got HTTP {code} (curl exit {rc})')
    kc.log(f'  ok: {what} -> refused (curl exit {rc}: {err})')


def header(headers, name):
    for line in headers.splitlines():
        k, _, v = line.partition(':')
        if k.strip().lower() == name.lower():
            return v.strip()
    return None
