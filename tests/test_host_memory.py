"""The CPU backend asks glibc to keep freed memory (backend/host_memory.py); opting out works."""
import os
import subprocess
import sys

from tinygrad_attn.backend import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = ("import tinygrad_attn as tga; tga.zeros(1); "
         "from tinygrad_attn.backend import host_memory as h; print(h.keep_freed_host_memory())")


def _probe(**env):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, **env), check=True)
    return out.stdout.strip()


def _is_glibc():
    import platform
    return platform.libc_ver()[0] == "glibc"


def test_cpu_backend_applies_the_settings_on_glibc():
    expected = "True" if _is_glibc() else "False"
    assert _probe(**{host_memory.ENV_VAR: "1"}) == expected


def test_opting_out_leaves_malloc_alone():
    assert _probe(**{host_memory.ENV_VAR: "0"}) == "False"
    assert _probe(**{host_memory.SETTINGS_ENV_VAR: "0"}) == "False"  # the switch for every process setting


def test_the_first_cpu_tensor_applies_the_settings_with_no_call():
    code = ("import tinygrad_attn as tga; from tinygrad_attn.backend import host_memory as h; "
            "before = h._applied; tga.zeros(1); print(before, h._applied)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith("TINYGRAD_ATTN_")})
    assert out.stdout.split() == ["None", str(_is_glibc())]


def test_settings_are_accepted_by_glibc_and_refused_elsewhere():
    # the function reports mallopt's own answers: both settings must be values glibc accepts
    assert host_memory._set_glibc_malloc_options() is _is_glibc()


def test_the_cli_the_trainer_the_examples_and_the_benchmarks_set_nothing_of_their_own():
    # the backend's first use is the one place the process settings are made, so that its
    # opt-out holds for every program and a user's script runs as the trainer does
    import pathlib
    root = pathlib.Path(ROOT)
    files = [root / "tinygrad_attn" / "train.py", *root.glob("models/*.py"), *root.glob("examples/*.py"),
             *root.glob("benchmarks/our_steps.py")]
    for path in files:
        source = path.read_text()
        assert "keep_freed_host_memory(" not in source, f"{path.name} calls keep_freed_host_memory"
        assert "OPENBLAS_THREAD_TIMEOUT" not in source, f"{path.name} sets OPENBLAS_THREAD_TIMEOUT"
