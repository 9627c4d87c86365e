"""Data parallelism: 2 ranks under `mpiexec -n 2` train the same model as one process at the same global batch.

The 2-rank side runs in tests/distributed_worker.py (launched here); the 1-process
reference runs in this process with the same code. Also: gradient buckets against a
plain mean, model checks, abort on a failing rank, the CLI under mpiexec, and the
errors that need no MPI at all.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import distributed
from tinygrad_attn.errors import DistributedError

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("distributed_worker.py")
sys.path.insert(0, str(WORKER.parent))
import distributed_worker as worker  # noqa: E402

BIN_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"   # this venv first
MPIEXEC = shutil.which("mpiexec", path=BIN_PATH)
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="mpi4py or mpiexec is not installed (pip install -e '.[mpi]')")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FLOAT32 = dict(rtol=2e-5, atol=2e-6)   # float32 rounding of sums taken in another order
# After many AdamW steps: the attention's key bias has a true gradient of 0 (softmax ignores a
# shift of a whole row), so both runs move it by rounding noise that Adam normalises (seen: 6e-6)
MANY_STEPS = dict(rtol=2e-5, atol=2e-5)


def mpiexec(*args, timeout=120, ranks=2):
    # Open MPI (a GPU machine's) runs as root only when told it may: mpiexec_command knows
    argv, launcher_env = distributed.mpiexec_command(ranks, *args, mpiexec=MPIEXEC)
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT), **launcher_env}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


# ---------------------------------------------------------------- one 2-rank run, compared with one process

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The reference run of one process (20 steps, with its step-10 checkpoint) and the 2-rank worker's results."""
    out = tmp_path_factory.mktemp("dp")
    model = worker.build_model()
    trainer = worker.make_trainer(model, out / "one")
    trainer.fit(until=1)
    one = {"after_1_step": worker.params(model)}
    trainer.fit(until=10)
    shutil.copytree(out / "one", out / "one_at_10")
    trainer.fit()
    one["losses"], one["after_20_steps"] = worker.losses(trainer.history), worker.params(model)

    done = mpiexec(sys.executable, WORKER, "train", out, out / "one_at_10")
    assert done.returncode == 0, done.stdout + done.stderr
    two = json.loads((out / "results.json").read_text())
    for name in ("after_1_step", "after_20_steps", "resumed_params"):
        two[name] = dict(np.load(out / f"{name}.npz"))
    return out, one, two


def assert_same_params(got, expected, tolerance=FLOAT32):
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], **tolerance, err_msg=name)


@needs_mpi
def test_one_step_on_two_ranks_gives_the_parameters_of_one_process(runs):
    _, one, two = runs
    assert two["world_size"] == 2
    assert_same_params(two["after_1_step"], one["after_1_step"])


@needs_mpi
def test_twenty_steps_give_the_same_loss_curve(runs):
    _, one, two = runs
    assert len(two["losses"]) == len(one["losses"]) == worker.STEPS
    np.testing.assert_allclose(two["losses"], one["losses"], **FLOAT32)
    assert one["losses"][-1] < one["losses"][0] - 0.1   # it learned something: the curves are not flat
    assert_same_params(two["after_20_steps"], one["after_20_steps"], MANY_STEPS)


@needs_mpi
def test_a_two_rank_checkpoint_resumes_on_one_process(runs):
    out, one, _ = runs
    model = worker.build_model()
    trainer = worker.make_trainer(model, out / "run_at_10")
    trainer.fit(resume=True)
    assert trainer.history[0]["step"] == 11
    np.testing.assert_allclose(worker.losses(trainer.history), one["losses"][10:], **FLOAT32)
    assert_same_params(worker.params(model), one["after_20_steps"], MANY_STEPS)


@needs_mpi
def test_a_one_process_checkpoint_resumes_on_two_ranks(runs):
    _, one, two = runs
    np.testing.assert_allclose(two["resumed_from_1_process"], one["losses"][10:], **FLOAT32)
    assert_same_params(two["resumed_params"], one["after_20_steps"], MANY_STEPS)


@needs_mpi
def test_buckets_average_exactly_overlapped_or_not(runs):
    _, _, two = runs
    assert two["buckets"] > 2                       # the small bucket size really made several
    assert two["local_vs_mean"] > 1e-4              # the two ranks' own gradients did differ
    assert two["blocking_vs_overlapped"] == 0.0     # same sums, bucketed differently
    assert two["overlapped_vs_mean"] < 1e-7         # = the mean of the ranks' gradients (float32 rounding)
    assert "a second backward ran before" in two["second_backward_error"]


@needs_mpi
def test_a_model_that_differs_on_one_rank_is_named(runs):
    _, _, two = runs
    shape, value = two["shape_error"], two["value_error"]
    assert "rank 1" in shape and "blocks.0.mlp" in shape and "(64, 32)" in shape, shape
    assert "rank 1" in value and "'ln_f.weight'" in value and "different values" in value, value
    assert two["broadcast_repairs"]


@needs_mpi
def test_a_nan_loss_on_one_rank_stops_every_rank_at_the_same_step(runs):
    _, _, two = runs
    assert two["nan_stopped_at"] == [1, 1]
    assert "step 2: the loss is nan" in two["nan_message"]


@needs_mpi
def test_dropout_streams_differ_by_rank_and_resume_exactly(runs):
    _, _, two = runs
    first, second = two["dropout_draws"]
    assert first != second
    uninterrupted, resumed = two["dropout_losses"]
    assert len(resumed) == 2 and resumed == uninterrupted   # bit for bit


@needs_mpi
def test_only_rank_0_writes_the_checkpoint_and_metrics(runs):
    out, _, _ = runs
    steps = [json.loads(line)["step"] for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, worker.STEPS + 1))   # one line per step, not one per rank


# ---------------------------------------------------------------- failures and the command line

@needs_mpi
def test_a_failing_rank_aborts_every_rank_with_its_name(tmp_path):
    done = mpiexec(sys.executable, WORKER, "fail", tmp_path, timeout=60)   # a hang would time out
    assert done.returncode != 0
    assert "rank 1 of 2 failed with ValueError: a bad batch on purpose" in done.stderr, done.stderr
    assert not list(tmp_path.glob("finished_rank_*"))


@needs_mpi
def test_cli_trains_one_model_on_two_ranks(tmp_path):
    data = tmp_path / "text.txt"
    data.write_text("To be, or not to be, that is the question.\n" * 60)
    run = tmp_path / "run"
    done = mpiexec(shutil.which("tinygrad-attn", path=BIN_PATH), "train", "gpt", "--preset", "tiny", "--steps", "4", "--eval-every", "2",
                   "--batch-size", "4", "--data", data, "--out", run, "--no-sample")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("steps of 4 on cpu, 2 ranks") == 1          # rank 0 alone prints
    assert done.stdout.count("saved to") == 1
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    from models.cli import main   # the 2-rank run goes on in one process
    assert main(["train", "gpt", "--out", str(run), "--resume", "--steps", "6", "--no-sample"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    bad = mpiexec(shutil.which("tinygrad-attn", path=BIN_PATH), "train", "gpt", "--preset", "tiny", "--steps", "2", "--batch-size", "5",
                  "--data", data, "--out", tmp_path / "bad", "--no-sample")
    assert bad.returncode == 2
    assert bad.stderr.count("batch size 5 is the global batch, split over 2 ranks") == 1, bad.stderr


@needs_mpi
@pytest.mark.skipif(not tga.cuda_is_available(), reason="needs CuPy and an NVIDIA GPU")
def test_gradients_over_nccl_on_cuda(tmp_path):
    ranks = min(2, _gpu_count())   # NCCL wants a GPU of its own per rank
    done = mpiexec(sys.executable, WORKER, "nccl", tmp_path, ranks=ranks, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "nccl.json").read_text())
    assert result["transport"] == "NCCLTransport" and result["buckets"] > 2
    assert result["worst"] < 1e-6


def _gpu_count():
    import cupy
    return cupy.cuda.runtime.getDeviceCount()


# ---------------------------------------------------------------- without MPI

def test_without_mpi4py_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)   # `from mpi4py import MPI` raises ImportError
    monkeypatch.delitem(sys.modules, "mpi4py.MPI", raising=False)
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(ImportError, match=r"pip install -e '\.\[mpi\]'") as caught:
        distributed.world_size()
    assert isinstance(caught.value, DistributedError)
    monkeypatch.delenv("PMI_SIZE")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)


def test_shards_are_disjoint_and_together_the_global_batch():
    x = np.arange(24).reshape(8, 3)
    y = -x
    shards = [distributed.shard_batch((x, y), r, 4) for r in range(4)]
    np.testing.assert_array_equal(np.concatenate([s[0] for s in shards]), x)
    np.testing.assert_array_equal(np.concatenate([s[1] for s in shards]), y)
    rng = np.random.default_rng(0)
    sampler = distributed.shard_batches(lambda g: g.integers(0, 100, (6, 2)), 1, 2)
    np.testing.assert_array_equal(sampler(rng), np.random.default_rng(0).integers(0, 100, (6, 2))[3:])
    with pytest.raises(DistributedError, match="batch size 6 .* 4 ranks"):
        distributed.shard_batch(x[:6], 0, 4)
    assert tga.TinygradAttnError in DistributedError.__mro__


class _TwoRanksByHand:
    """A transport that stands in for a second rank whose gradients are 3x this one's: every bucket
    it sums comes back as 4x, so the average is 2x, and a parameter it never saw keeps 1x."""
    size = 2

    def __init__(self):
        self.summed = []

    def start(self, flat):
        flat *= 4
        self.summed.append(flat.size)
        return object()

    def progress(self, requests):
        pass

    def wait(self, requests):
        pass


def _layout(case):
    """Parameters in registration order; backward and the buckets meet them in reverse."""
    def param(n, dtype=np.float32):
        return tga.nn.Parameter(tga.zeros(n, dtype=dtype))
    if case == "first-has-another-dtype":       # the last group is the first parameter, alone
        return [param(3, np.float64), param(5), param(4)], 1.0
    if case == "first-is-too-big-to-share":
        return [param(4096), param(8), param(8)], 16 * 1024 / 2 ** 20
    if case == "every-parameter-alone":
        return [param(2), param(3), param(4)], 1e-9
    return [param(6)], 1.0                      # "one-parameter-model"


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("case", ["first-has-another-dtype", "first-is-too-big-to-share", "every-parameter-alone",
                                  "one-parameter-model"])
def test_buckets_average_every_parameter_whatever_group_comes_last(case, overlap):
    from tinygrad_attn.distributed.buckets import GradientBuckets
    params, bucket_mb = _layout(case)
    transport = _TwoRanksByHand()
    buckets = GradientBuckets(params, transport, bucket_mb=bucket_mb, overlap=overlap)
    held = [p for b in buckets.buckets for p in b.params]
    assert sorted(map(id, held)) == sorted(map(id, params))            # each parameter in exactly one bucket
    weights = [np.arange(1, p.size + 1, dtype=np.float64) for p in params]
    sum((p * tga.tensor(w, dtype=p.dtype)).sum() for p, w in zip(params, weights)).backward()
    buckets.finish()
    assert sorted(transport.summed) == sorted(b.flat.size for b in buckets.buckets)
    for p, w in zip(params, weights):
        np.testing.assert_allclose(p.grad.numpy(), 2 * w, err_msg=f"a parameter of shape {p.shape}")
        assert p.grad.dtype == p.dtype


def _fake_mpiexec(tmp_path, banner):
    exe = tmp_path / "mpiexec"
    exe.write_text(f"#!/bin/sh\necho '{banner}'\n")
    exe.chmod(0o755)
    return str(exe)


@pytest.mark.parametrize("banner, flavor", [("mpiexec (OpenRTE) 4.1.2", "openmpi"), ("mpiexec (Open MPI) 5.0.3", "openmpi"),
                                            ("HYDRA build details:\n    Version: 4.2.0", "mpich"),
                                            ("something else", "unknown")])
def test_the_launcher_tells_open_mpi_from_mpich_and_lets_open_mpi_run_as_root(tmp_path, monkeypatch, banner, flavor):
    exe = _fake_mpiexec(tmp_path, banner)
    assert distributed.launch.mpiexec_flavor(exe) == flavor
    for uid in (0, 1000):
        monkeypatch.setattr(os, "geteuid", lambda uid=uid: uid)
        argv, env = distributed.mpiexec_command(3, "python", "w.py", mpiexec=exe)
        assert argv[:3] == [exe, "-n", "3"] and argv[-2:] == ["python", "w.py"]
        as_root = flavor == "openmpi" and uid == 0
        assert ("--allow-run-as-root" in argv) == as_root
        assert (env.get("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM") == "1") == as_root
        assert ("--oversubscribe" in argv) == (flavor == "openmpi")


def test_without_any_mpiexec_the_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImportError, match=r"no mpiexec found.*pip install -e '\.\[mpi\]'"):
        distributed.mpiexec_command(2, "x")
