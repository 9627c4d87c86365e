"""The GPU check script and the GPU benchmark's plan, on a machine without a GPU: the
script parses, and bench_gpu.py plans a batch-1 row (the host's cost) beside each full-batch row."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_gpu_check_script_parses():
    done = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_bench_gpu_plans_a_batch_one_row_beside_the_full_batch(capsys):
    from benchmarks import bench_gpu
    assert bench_gpu.main(["--dry-run", "--batch", "32", "--no-torch"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [l.split(", ")[1] for l in lines] == ["batch 32", "batch 32", "batch 1", "batch 1"]
    assert bench_gpu.main(["--dry-run", "--host-batch", "0", "--no-torch", "--no-unfused"]) == 0
    assert capsys.readouterr().out.count("would time") == 1
