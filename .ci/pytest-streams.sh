#!/usr/bin/env bash
# `make test`'s pytest, in two streams at once (the suite mostly waits on guests, daemons and workers; one stream
# alone left a core idle half of the time):
#   lab:  everything that uses the libvirt lab or the Redis broker (e2e flushes its Redis database; the lab's
#         daemons and users are one per run): tests/e2e, tests/integration/libvirt, tests/contract;
#   rest: unit, API, browser and the other integration tests on PostgreSQL, then the API tests again on SQLite,
#         the embedded default (but the modules in $HTTP_ONLY, which exercise HTTP and not the database).
# Each stream has its own pytest temporary directory; both logs are printed, and it fails if either failed.
set -uo pipefail
PY=${PY:-.venv/bin/python}
source .ci/test-env.sh
base=$(mktemp -d /tmp/confluencia-tests.XXXXXX)
ignores=()
for m in ${HTTP_ONLY:-}; do ignores+=("--ignore=tests/api/$m"); done

"$PY" -m pytest -q -p no:cacheprovider --basetemp="$base/lab" tests/e2e tests/integration/libvirt tests/contract \
  > "$base/lab.log" 2>&1 &
lab=$!
trap 'kill -- "$lab" "$rest" 2>/dev/null' INT TERM
( "$PY" -m pytest -q -p no:cacheprovider --basetemp="$base/rest" tests/unit tests/api tests/browser tests/integration \
    --ignore=tests/integration/libvirt \
  && TEST_DATABASE_URL= "$PY" -m pytest -q -p no:cacheprovider --basetemp="$base/sqlite" tests/api \
    tests/integration/test_concurrent_claims.py "${ignores[@]}" ) > "$base/rest.log" 2>&1 &
rest=$!
wait "$lab"; lab_rc=$?
wait "$rest"; rest_rc=$?
echo "=== lab stream (tests/e2e, tests/integration/libvirt, tests/contract): exit $lab_rc"; cat "$base/lab.log"
echo "=== other tests, then the API on SQLite: exit $rest_rc"; cat "$base/rest.log"
[ "$lab_rc" = 0 ] && [ "$rest_rc" = 0 ] && rm -rf "$base"
exit $(( lab_rc != 0 || rest_rc != 0 ))
