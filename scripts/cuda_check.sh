#!/usr/bin/env bash
# The checks a machine with an NVIDIA GPU runs (`make test-cuda`; docs/cuda.md): the devices, the test
# suite on the CUDA devices, the parity matrix, and the GEMM and conv2d sweeps beside cuBLAS and cuDNN
# (PyTorch's CUDA build). Each step has a time limit of its own and a log; a failing step does not stop
# the next. Results go to the folder named by the first argument (default: cuda-check/):
#   summary.txt        each step's exit status and time, nvidia-smi, `xgpu devices`
#   pytest.log         pytest --xgpu-backend cuda (PYTEST_ARGS: more arguments)
#   parity.json/.md    xgpu parity --backend cuda (the JSON merges with other machines': xgpu parity merge)
#   gemm-sweep.json    xgpu bench gemm --sweep --json on cuda:0
#   conv-sweep.json    xgpu bench conv2d --network all --json on cuda:0
#   bench.log          the sweeps' progress and errors
# Environment: PYTHON (default python3, with xgpu[cuda] installed), PYTEST_JOBS (default 8),
# TEST_LIMIT / PARITY_LIMIT / SWEEP_LIMIT (seconds per step; defaults 1500 / 600 / 900), ROUNDS (sweep
# rounds, default 2), STEPS (the steps to run, of: devices pytest parity gemm-sweep conv-sweep; default all).
set -u
out=${1:-cuda-check}
mkdir -p "$out"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
summary="$out/summary.txt"
: >"$summary"

steps=" ${STEPS:-devices pytest parity gemm-sweep conv-sweep} "

step() {  # step NAME LIMIT LOG COMMAND...: run COMMAND under a time limit, output to LOG, status to summary
    local name=$1 limit=$2 log=$3 start rc
    shift 3
    case $steps in *" $name "*) ;; *) return 0 ;; esac
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    printf '%-12s rc=%-3s %4ss%s\n' "$name" "$rc" "$(($(date +%s) - start))" \
        "$([ "$rc" = 124 ] && echo " (stopped at its ${limit}s limit)")" | tee -a "$summary"
}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
    "$PY" -c 'import pycuda, numpy; print("pycuda", pycuda.VERSION_TEXT, "numpy", numpy.__version__)' 2>&1
} >>"$summary"
step devices 60 "$summary" "$PY" -m xgpu.tools.cli devices
# pytest-benchmark (installed beside PyTorch on some images) warns under xdist, an error here; the
# subprocesses some tests start inherit PYTEST_ADDOPTS
export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} -p no:benchmark -p no:cacheprovider"
# shellcheck disable=SC2086  # PYTEST_ARGS: extra arguments, split on spaces
step pytest "${TEST_LIMIT:-1500}" "$out/pytest.log" \
    "$PY" -m pytest --xgpu-backend cuda -n "${PYTEST_JOBS:-8}" --dist loadfile -q -rfE --tb=short ${PYTEST_ARGS:-}
[ -f "$out/pytest.log" ] && tail -n 3 "$out/pytest.log" >>"$summary"
step parity "${PARITY_LIMIT:-600}" "$out/bench.log" \
    "$PY" -m xgpu.tools.cli parity --backend cuda --output "$out/parity.json" --markdown "$out/parity.md"
step gemm-sweep "${SWEEP_LIMIT:-900}" "$out/bench.log" sh -c \
    "'$PY' -m xgpu.tools.cli bench gemm --sweep --device cuda:0 --rounds ${ROUNDS:-2} --json >'$out/gemm-sweep.json'"
step conv-sweep "${SWEEP_LIMIT:-900}" "$out/bench.log" sh -c \
    "'$PY' -m xgpu.tools.cli bench conv2d --network all --device cuda:0 --rounds ${ROUNDS:-2} --json >'$out/conv-sweep.json'"
"$PY" - "$out" <<'EOF' >>"$summary" 2>&1
import json, pathlib, sys
for name in ("gemm-sweep", "conv-sweep"):
    p = pathlib.Path(sys.argv[1]) / f"{name}.json"
    try:
        r = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        print(f"{name}: no result ({exc})")
        continue
    w = r["worst"] or {}
    print(f"{name}: xgpu/{r['peer']} geomean {r['geomean']:.2f} (all {r['geomean_all']:.2f}), worst "
          f"{w.get('ratio', float('nan')):.2f} {w.get('shape', '')}, launch {r['launch_latency_s'] * 1e6:.1f} us")
EOF
cat "$summary"
