"""Bounded waiting: every wait of the tests has a timeout."""

import time

from lib import kvm_common as kc


def poll(pred, timeout, step=0.05):
    """Calls pred() until it returns something true or timeout seconds passed; returns its
    last value (false after the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def wait_for(what, pred, timeout, diagnose=None):
    """poll() that fails the test naming `what` (and diagnose()'s text) after timeout;
    returns the seconds it took."""
    start = time.monotonic()
    if not poll(pred, timeout):
        kc.fail(f'{what}: not after {timeout}s' + (diagnose() if diagnose else ''))
    return time.monotonic() - start
