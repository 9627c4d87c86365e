"""The CPU benchmarks still run: one step of the tiny case and of the as-run user GPT, through
the same worker `bench_cpu.py` and `bench_busy_host.py` start (timings are not checked here)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("case", ["tiny", "user_gpt_as_run"])
def test_bench_cpu_worker_times_a_step(case):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_cpu.py"), "--worker", "ours", case,
                          "1", "0"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["times"]) == 1 and result["times"][0] > 0 and result["peak_rss_mb"] >= 0
    assert "spin" in result  # what the run-time choice of OpenBLAS's spin chose (None where it made none)


def test_bench_busy_host_runs_each_setting(monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import bench_busy_host
    seen = []
    monkeypatch.setattr(bench_busy_host.bench_cpu, "_run_worker",
                        lambda fw, case, steps, threads: seen.append(dict(os.environ)) or {"times": [0.01]})
    bench_busy_host.main(["--cases", "H", "--hogs", "0", "--rounds", "1", "--steps", "1"])
    assert [e.get("TINYGRAD_ATTN_BLAS_SPIN") for e in seen] == [None, "short", "long", None]
    assert [e.get("TINYGRAD_ATTN_PROCESS_SETTINGS") for e in seen] == [None, None, None, "0"]
    assert "TINYGRAD_ATTN_BLAS_SPIN" not in os.environ  # each setting's variables are put back
