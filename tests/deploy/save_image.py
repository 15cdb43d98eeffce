#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Builds the container image on this machine and saves it (`podman save`) in
BUILD_DIR for the container-kvm tests in the nested KVM host, which load it
there (container_common.Image): building needs containers and a network of
its own, the tests only need the image.

usage: save_image.py BUILD_DIR     (a meson build directory)
"""
import os
import sys
import time

if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
    sys.exit(f'usage: {sys.argv[0]} BUILD_DIR')
# What tests/meson.build gives the tests as TESTS_BUILD_DIR.
os.environ['TESTS_BUILD_DIR'] = os.path.join(os.path.abspath(sys.argv[1]), 'tests')

import deploy_common as dc  # noqa: E402


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def main():
    env = dc.podman_env()
    # No archive of an earlier source is left for the tests if this fails.
    archive = dc.nested_image_archive()
    remove(archive)
    tag = f'localhost/kvmstats_exporter:save-{os.getpid()}'
    seconds, size = dc.build_image(env, tag)
    start = time.monotonic()
    tmp = archive + '.tmp'
    remove(tmp)
    try:
        dc.podman(env, 'save', '-q', '-o', tmp, tag)
    finally:
        dc.podman(env, 'rmi', tag, check=False)
    os.replace(tmp, archive)
    dc.log(f'save_image: {tag} built in {seconds:.1f} s ({size / 1048576:.2f} MiB), '
           f'saved to {archive} in {time.monotonic() - start:.1f} s')


if __name__ == '__main__':
    main()
