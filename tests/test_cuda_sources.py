"""The CUDA kernel sources compile for every storage dtype, without a GPU.

CuPy compiles cupy_kernels.py's sources with NVRTC at first use, on the GPU machine;
a typo would surface only there. Where the CUDA compiler `nvcc` is installed (it needs
no GPU), each dtype's module is compiled to PTX here, and every kernel the Python side
launches must be in it.
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tinygrad_attn.backend import cupy_kernels

NVCC = shutil.which("nvcc")


def _launched_names():
    source = Path(cupy_kernels.__file__).read_text()
    return set(re.findall(r'_kernel\([^,]+, "(\w+)"\)', source))


@pytest.mark.skipif(NVCC is None, reason="needs the CUDA compiler nvcc (no GPU needed)")
@pytest.mark.parametrize("dtype", sorted(cupy_kernels._TYPES))
def test_the_kernels_compile_for_each_dtype(tmp_path, dtype):
    storage, acc, convert = cupy_kernels._TYPES[dtype]
    source = f"typedef {storage} T;\ntypedef {acc} A;\n" + cupy_kernels._MATH[acc] + convert + cupy_kernels._KERNELS
    (tmp_path / "k.cu").write_text(source)
    done = subprocess.run([NVCC, "-ptx", "-arch=sm_80", "-o", str(tmp_path / "k.ptx"), str(tmp_path / "k.cu")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    entries = set(re.findall(r"\.entry (\w+)", (tmp_path / "k.ptx").read_text()))
    launched = _launched_names()
    assert "segment_sum_rows" in launched and "softmax_fwd" in launched
    assert launched <= entries, f"launched but not compiled: {launched - entries}"
