#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Builds kvmstats_exporter(1) from its template and the binary's own --help.

usage: gen-man.py --exporter BIN --template kvmstats_exporter.1.in --version V --output OUT

The OPTIONS section is made from `BIN --help`, so the man page lists exactly
the flags the binary takes; everything else is written in the template.
--help is expected in kingpin's layout, which cli.c prints:

    Section title:
      -h, --help      One-line description.
          --flag=VALUE
              Description over several lines, indented.

Anything else in the help is kept as a plain paragraph, never dropped.
"""
import argparse
import re
import subprocess
import sys

FLAG_LINE = re.compile(r'^ {2,6}(?:(-\w), )?(--\S+)(?: {2,}(\S.*))?$')
CONTINUATION = re.compile(r'^ {7,}(\S.*)$')
SECTION = re.compile(r'^(\S.*):$')
# Flags (--web.listen-address, --no-<flag>) and paths (/-/ready) keep ASCII dashes.
FLAG_TOKEN = re.compile(r'--(?:\[no-\])?[A-Za-z<][\w.\-<>]*|/-/')


def roff_text(s):
    """Escapes running text: backslashes, and flag names get unbreakable \\- dashes."""
    s = s.replace('\\', '\\e')
    s = FLAG_TOKEN.sub(lambda m: m.group(0).replace('-', '\\-'), s)
    if s.startswith(('.', "'")):
        s = '\\&' + s
    return s


def roff_flag(short, flag):
    """--[no-]kvm.procfs, --web.listen-address=ADDR: name bold, value italic."""
    name, eq, value = flag.partition('=')
    negatable = name.startswith('--[no-]')
    if negatable:
        name = '--' + name[len('--[no-]'):]
    bold = '\\fB' + name.replace('-', '\\-') + '\\fR'
    if negatable:
        bold = '\\fB\\-\\-\\fR[\\fBno\\-\\fR]\\fB' + name[2:].replace('-', '\\-') + '\\fR'
    out = bold + (eq + '\\fI' + value.replace('-', '\\-') + '\\fR' if eq else '')
    if short:
        out = '\\fB' + short.replace('-', '\\-') + '\\fR, ' + out
    return out


def options_section(help_text):
    """The roff of the OPTIONS section, from --help."""
    lines = help_text.splitlines()
    # Skip the usage line and the description: options start at the first section.
    start = next((i for i, l in enumerate(lines) if SECTION.match(l)), None)
    if start is None:
        raise ValueError('--help has no "Title:" section line')
    out, flags, para = [], [], []

    def flush_para():
        if para:
            out.append('.PP')
            out.append(roff_text(' '.join(para)))
            para.clear()

    for line in lines[start:]:
        m_sec, m_flag, m_cont = SECTION.match(line), FLAG_LINE.match(line), CONTINUATION.match(line)
        if not line.strip():
            flush_para()
        elif m_sec:
            flush_para()
            title = m_sec.group(1)
            out.append('.SS "' + ('General' if title == 'Flags' else roff_text(title)) + '"')
        elif m_flag:
            flush_para()
            short, flag, desc = m_flag.groups()
            flags.append(flag)
            out.append('.TP')
            out.append(roff_flag(short, flag))
            if desc:
                out.append(roff_text(desc))
        elif m_cont and out and not para:
            out.append(roff_text(m_cont.group(1)))
        else:
            para.append(line.strip())
    flush_para()
    if not flags:
        raise ValueError('--help lists no flags')
    return '\n'.join(out), flags


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--exporter', required=True)
    ap.add_argument('--template', required=True)
    ap.add_argument('--version', required=True)
    ap.add_argument('--output', required=True)
    a = ap.parse_args()

    r = subprocess.run([a.exporter, '--help'], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        sys.exit(f'gen-man.py: {a.exporter} --help exited {r.returncode}: {r.stderr.strip()}')
    try:
        options, _ = options_section(r.stdout)
    except ValueError as e:
        sys.exit(f'gen-man.py: cannot read {a.exporter} --help: {e}')
    with open(a.template, encoding='utf-8') as f:
        page = f.read()
    if page.count('\n@OPTIONS@\n') != 1 or '@VERSION@' not in page:
        sys.exit(f'gen-man.py: {a.template} needs one @OPTIONS@ line and @VERSION@')
    page = page.replace('\n@OPTIONS@\n', '\n' + options + '\n').replace('@VERSION@', a.version)
    with open(a.output, 'w', encoding='utf-8') as f:
        f.write(page)


if __name__ == '__main__':
    main()
