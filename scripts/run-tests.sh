#!/usr/bin/env bash
# The suite in two parts: most tests spread over JOBS pytest-xdist workers (they mostly wait on loopback
# HTTP and SQL, so workers overlap well even on 2 cores), then the tests marked `serial` alone (many OS
# processes and database connections each: the multi-process chaos test, the benchmark smoke run).
# Exit 5 ("no tests collected") of one part is fine when the other ran tests (PYTEST_ARGS may select only
# one kind); both parts empty is 5, which .ci/run treats as a failure.
set -uo pipefail
PY="${PY:-.venv/bin/python}"
JOBS="${JOBS:-3}"
args=("$@")
parallel=(-n "$JOBS")
[ "$JOBS" = 0 ] && parallel=()
"$PY" -m pytest -q "${parallel[@]}" -m "not serial" "${args[@]}"
a=$?
"$PY" -m pytest -q -m serial "${args[@]}"
b=$?
if [ "$a" = 5 ] && [ "$b" = 5 ]; then exit 5; fi
[ "$a" = 5 ] && a=0
[ "$b" = 5 ] && b=0
[ "$a" != 0 ] && exit "$a"
exit "$b"
