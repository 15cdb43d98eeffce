#!/bin/sh
# SPDX-License-Identifier: MIT
# `promtool check metrics` on the golden expositions (Prometheus's own linter).
#
# usage: promtool_golden.sh [GOLDEN...]
# Without arguments, checks tests/data/golden-aggregate.prom and
# tests/data/golden-per-vcpu.prom (from $TESTS_SOURCE_DIR, else next to this
# script). Exit 0: clean; 77 (meson's SKIP): promtool not installed; anything
# else: a finding or a missing golden.
set -u

promtool=$(command -v promtool) || {
	echo "SKIP: promtool not found (Debian package \"prometheus\")" >&2
	exit 77
}

if [ $# -eq 0 ]; then
	dir=${TESTS_SOURCE_DIR:-$(dirname "$0")/..}
	set -- "$dir/data/golden-aggregate.prom" "$dir/data/golden-per-vcpu.prom"
fi

status=0
for golden in "$@"; do
	if [ ! -s "$golden" ]; then
		echo "FAIL: $golden is missing or empty" >&2
		status=1
		continue
	fi
	# promtool exits non-zero on lint problems and on parse errors; any output is a finding too.
	out=$("$promtool" check metrics <"$golden" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		echo "FAIL: $golden (promtool exit $rc):" >&2
		printf '%s\n' "$out" >&2
		status=1
	else
		echo "ok: $golden"
	fi
done
exit $status
