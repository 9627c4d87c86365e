#!/usr/bin/env bash
# Every GPU check in one run, for a machine with an NVIDIA GPU and CuPy (a few minutes):
#   bash benchmarks/gpu_check.sh            # from the repository root
#   OUT=/some/dir bash benchmarks/gpu_check.sh   # also keep the logs there
# 1. installs this checkout without touching the machine's packages (no network needed),
# 2. runs every CUDA test (pytest -k "cuda or gpu": the [cuda] cases and tests/test_gpu.py; 8 workers where pytest-xdist is installed),
# 3. runs bench_gpu.py: the full-batch row and the batch-1 row (the host's cost per step).
# Prints the GPU and the versions first. Exits non-zero if the tests fail; the benchmark
# still runs, so one session gets both.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOGS=${OUT:-$(mktemp -d)}
mkdir -p "$LOGS"

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
"$PY" -c "import cupy, numpy, sys; print('python', sys.version.split()[0], '| numpy', numpy.__version__, '| cupy', cupy.__version__, '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion()); print('GPU:', cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())" \
    || { echo "CuPy cannot see a GPU here: nothing to check"; exit 2; }
command -v mpiexec >/dev/null && mpiexec --version 2>&1 | head -1

echo "== install (editable, no dependencies, no build isolation)"
"$PY" -m pip install -q --no-deps --no-build-isolation -e . || { echo "install failed"; exit 2; }

echo "== CUDA tests"
WORKERS=()
"$PY" -c "import xdist" 2>/dev/null && WORKERS=(-n 8)
start=$(date +%s)
"$PY" -m pytest -q -k "cuda or gpu" "${WORKERS[@]}" -p no:cacheprovider -rfs tests 2>&1 | tee "$LOGS/cuda_tests.log" | tail -40
tests_rc=${PIPESTATUS[0]}
echo "CUDA tests: exit $tests_rc in $(( $(date +%s) - start )) s (log: $LOGS/cuda_tests.log)"

echo "== benchmark: full batch and batch 1"
"$PY" benchmarks/bench_gpu.py --steps 10 --rounds 2 --host-batch 1 2>&1 | tee "$LOGS/bench_gpu.log" | tail -20

exit "$tests_rc"
