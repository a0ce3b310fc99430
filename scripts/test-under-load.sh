#!/usr/bin/env bash
# Run the test suite N times in a row (default 3) while two CPU-bound processes compete for the cores:
# a test that only passes on an idle machine fails here.  The hogs are always stopped, even on Ctrl-C.
#   bash scripts/test-under-load.sh            # the whole suite, 3 times
#   RUNS=5 bash scripts/test-under-load.sh tests/test_kernel_chat.py -x
# Hogs: `stress-ng --cpu 2` when installed, else two `python -c "while True: pass"`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-3}"
python=.venv/bin/python
[ -x "$python" ] || { echo "no .venv: run 'bash scripts/test.sh' once first" >&2; exit 1; }

hogs=()
stop_hogs() {
    # the hogs are this shell's only background jobs: `jobs -p` also finds one started just before a
    # signal arrived, before its pid was noted
    for pid in "${hogs[@]}" $(jobs -p); do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    hogs=()
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM HUP

if command -v stress-ng >/dev/null; then
    stress-ng --cpu 2 --quiet &
    hogs+=("$!")
else
    for _ in 1 2; do
        python3 -c "while True: pass" &
        hogs+=("$!")
    done
fi
echo "CPU hogs running: ${hogs[*]}"

# A shell that started this script in the background (`&` without job control, nohup) may have left
# SIGINT ignored; tests/conftest.py restores Python's handler so the interrupt tests still see Ctrl-C.
for run in $(seq 1 "$runs"); do
    echo "=== run $run of $runs (beside two CPU hogs)"
    set +e
    "$python" -m pytest -p no:cacheprovider -W error::ResourceWarning "$@"
    rc=$?
    set -e
    if [ "$rc" = 5 ]; then
        echo "pytest collected no tests: that is a failure" >&2
        exit 1
    fi
    if [ "$rc" != 0 ]; then
        echo "run $run of $runs failed (pytest exit $rc)" >&2
        exit "$rc"
    fi
done
echo "all $runs runs passed beside two CPU hogs"
