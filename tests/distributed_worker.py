"""The side of tests/test_distributed.py that runs under `mpiexec -n 2` (and the shared tiny training run).

    mpiexec -n 2 python tests/distributed_worker.py train RESULTS_DIR REFERENCE_AT_10
    mpiexec -n 2 python tests/distributed_worker.py fail RESULTS_DIR
    mpiexec -n N python tests/distributed_worker.py nccl RESULTS_DIR      # one GPU per rank

Rank 0 writes what the test compares into RESULTS_DIR (JSON and .npz files).
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinygrad_attn as tga  # noqa: E402
from models.config import GPTConfig  # noqa: E402
from models.decoder import GPT  # noqa: E402
from tinygrad_attn import distributed, optim  # noqa: E402
from tinygrad_attn.batching import lm_batches  # noqa: E402
from tinygrad_attn.errors import DistributedError  # noqa: E402
from tinygrad_attn.train import NonFiniteError, Trainer  # noqa: E402

STEPS, BATCH, SEQ, VOCAB = 20, 8, 16, 40
# a learnable sequence: each token mostly follows from the one before (so the loss curve falls)
_NOISE = np.random.default_rng(7).integers(0, 3, 4000)
IDS = np.cumsum(7 + _NOISE) % VOCAB
EVAL_X = IDS[None, :SEQ * 4].reshape(4, SEQ)
EVAL_Y = IDS[None, 1:SEQ * 4 + 1].reshape(4, SEQ)


def build_model(d_ff=None, dropout=0.0):
    tga.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, seq_len=SEQ, d_model=32, n_heads=2, n_layers=2, d_ff=d_ff,
                         dropout=dropout))


def make_trainer(model, out_dir=None, parallel=None):
    """The same tiny run on any number of ranks: global batch BATCH, AdamW, warm-up + cosine, clipping."""
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    sched = optim.WarmupCosine(opt, 4, STEPS, 0.1)
    batch_fn = lambda rng: lm_batches(IDS, BATCH, SEQ, rng)  # noqa: E731
    if parallel is not None:
        batch_fn = parallel.shard(batch_fn)
    return Trainer(model, opt, batch_fn, steps=STEPS, schedule=sched, eval_every=10, out_dir=out_dir, seed=1,
                   eval_fn=lambda m: m.loss(EVAL_X, EVAL_Y).item(), progress=False, print_fn=lambda *a: None,
                   parallel=parallel)


def params(model) -> dict:
    return {name: p.numpy().copy() for name, p in model.named_parameters()}


def losses(history) -> list:
    return [r["loss"] for r in history]


def _grads_three_ways(comm, results):
    """The same averaged gradient from allreduce_gradients, from overlapped buckets, and from an allgather."""
    model = build_model()
    x, y = distributed.shard_batch(lm_batches(IDS, BATCH, SEQ, np.random.default_rng(3)), comm.rank, comm.size)
    model.loss(x, y).backward()
    local = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    distributed.allreduce_gradients(model, bucket_mb=0.01)
    blocking = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    dp = distributed.DataParallel(model, bucket_mb=0.02, overlap=True)
    for p in model.parameters():
        p.grad = None
    model.loss(x, y).backward()
    dp.reduce_gradients()
    overlapped = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    model.loss(x, y).backward()
    try:   # a second backward before the first one's gradients were averaged: a clear error
        model.loss(x, y).backward()
    except DistributedError as e:
        results["second_backward_error"] = str(e)
    dp.reduce_gradients()
    every = comm.allgather(local)
    mean = {n: sum(g[n] for g in every) / comm.size for n in local}
    results["buckets"] = len(dp.buckets.buckets)
    results["blocking_vs_overlapped"] = max(float(np.abs(blocking[n] - overlapped[n]).max()) for n in local)
    results["overlapped_vs_mean"] = max(float(np.abs(overlapped[n] - mean[n]).max()) for n in local)
    results["local_vs_mean"] = max(float(np.abs(local[n] - mean[n]).max()) for n in local)


def _mismatch_messages(comm, results):
    """check_same_model names the rank and parameter; broadcast_parameters repairs different values."""
    model = build_model(d_ff=64 if comm.rank == 1 else None)
    try:
        distributed.check_same_model(model)
    except DistributedError as e:
        results["shape_error"] = str(e)
    model = build_model()
    if comm.rank == 1:
        model.get_submodule("ln_f").weight.data[3] += 1.0
    try:
        distributed.check_same_model(model)
    except DistributedError as e:
        results["value_error"] = str(e)
    distributed.broadcast_parameters(model)
    distributed.check_same_model(model)   # raises if the broadcast did not make them equal
    results["broadcast_repairs"] = True


def _nan_on_one_rank(comm, results):
    """A NaN loss on rank 1 alone stops both ranks at the same step with NonFiniteError (no abort, no hang)."""
    model = build_model()
    trainer = make_trainer(model, None, distributed.DataParallel(model))
    loss = trainer.loss_fn
    trainer.loss_fn = lambda m, b: loss(m, b) * (float("nan") if comm.rank == 1 and trainer.step == 1 else 1.0)
    try:
        trainer.fit()
    except NonFiniteError as e:
        results["nan_message"] = str(e)
    results["nan_stopped_at"] = comm.allgather(trainer.step)


def _dropout_streams(comm, out, results):
    """With dropout each rank has its own mask stream, and a 2-rank resume continues bit for bit."""
    model = build_model(dropout=0.2)
    trainer = make_trainer(model, out / "drop", distributed.DataParallel(model))
    trainer.fit(until=2)
    if comm.rank == 0:
        shutil.copytree(out / "drop", out / "drop_at_2")
    comm.Barrier()
    trainer.fit(until=4)
    results["dropout_draws"] = comm.allgather(float(tga.get_backend("cpu").rng.random()))
    model = build_model(dropout=0.2)
    resumed = make_trainer(model, out / "drop_at_2", distributed.DataParallel(model))
    resumed.fit(resume=True, until=4)
    results["dropout_losses"] = [losses(trainer.history)[2:], losses(resumed.history)]


def train(out: Path, reference_at_10: Path):
    comm = distributed.world()
    results = {"world_size": comm.size}
    model = build_model()
    dp = distributed.DataParallel(model, bucket_mb=0.02)   # several buckets even for this tiny model
    trainer = make_trainer(model, out / "run", dp)
    trainer.fit(until=1)
    if comm.rank == 0:
        np.savez(out / "after_1_step.npz", **params(model))
    trainer.fit(until=10)
    if comm.rank == 0:
        shutil.copytree(out / "run", out / "run_at_10")   # the 2-rank checkpoint a 1-process run resumes
    comm.Barrier()
    trainer.fit()
    results["losses"] = losses(trainer.history)
    results["comm_seconds"] = dp.comm_seconds
    if comm.rank == 0:
        np.savez(out / "after_20_steps.npz", **params(model))

    model = build_model()   # a checkpoint of one process at step 10, continued on 2 ranks
    resumed = make_trainer(model, reference_at_10, distributed.DataParallel(model))
    resumed.fit(resume=True)
    results["resumed_from_1_process"] = losses(resumed.history)
    if comm.rank == 0:
        np.savez(out / "resumed_params.npz", **params(model))

    _grads_three_ways(comm, results)
    _mismatch_messages(comm, results)
    _nan_on_one_rank(comm, results)
    _dropout_streams(comm, out, results)
    if comm.rank == 0:
        (out / "results.json").write_text(json.dumps(results))


def fail(out: Path):
    """Rank 1 raises in its third batch: every rank must stop (abort), none may hang."""
    comm = distributed.world()
    model = build_model()
    dp = distributed.DataParallel(model)
    trainer = make_trainer(model, None, dp)
    draw = trainer.batch_fn

    def batch_fn(rng):
        if comm.rank == 1 and trainer.step == 2:
            raise ValueError("a bad batch on purpose")
        return draw(rng)
    trainer.batch_fn = batch_fn
    trainer.fit()
    (out / f"finished_rank_{comm.rank}").write_text("should not get here")


def nccl(out: Path):
    """On CUDA the buckets go over NCCL: the averaged gradients equal the mean of every rank's own."""
    comm = distributed.world()
    model = build_model().to("cuda")
    dp = distributed.DataParallel(model, bucket_mb=0.02)
    x, y = distributed.shard_batch(lm_batches(IDS, BATCH, SEQ, np.random.default_rng(3)), comm.rank, comm.size)
    model.loss(x, y).backward()
    local = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None
    model.loss(x, y).backward()
    dp.reduce_gradients()
    every = comm.allgather(local)
    worst = max(float(np.abs(p.grad.numpy() - sum(g[n] for g in every) / comm.size).max())
                for n, p in model.named_parameters())
    if comm.rank == 0:
        (out / "nccl.json").write_text(json.dumps({"worst": worst, "buckets": len(dp.buckets.buckets),
                                                   "transport": type(dp.buckets.transport).__name__}))


if __name__ == "__main__":
    what, out = sys.argv[1], Path(sys.argv[2])
    if what == "train":
        train(out, Path(sys.argv[3]))
    elif what == "nccl":
        nccl(out)
    else:
        fail(out)
