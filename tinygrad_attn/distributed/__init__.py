"""Data-parallel training over MPI (mpi4py), and NCCL for CUDA tensors: one model, N processes.

    mpiexec -n 2 tinygrad-attn train gpt          # the CLI does all of this by itself

    from tinygrad_attn import distributed as dist
    dist.broadcast_parameters(model)              # every rank starts from rank 0's weights
    dp = dist.DataParallel(model)                 # gradient buckets, hooks, model check
    trainer = Trainer(model, opt, dp.shard(batch_fn), ..., parallel=dp)

Or by hand, per step: `loss.backward(); dist.allreduce_gradients(model); opt.step()`.
Needs `pip install -e '.[mpi]'`; without mpi4py every call that communicates raises a
DistributedError that says so. rank()/world_size()/is_main() answer 0/1/True outside a
launcher, and the sharding helpers need no MPI at all.
"""
from __future__ import annotations

import weakref

from . import model_check
from .buckets import GradientBuckets, transport_for
from .data_parallel import DataParallel
from .launch import (INSTALL_HINT, abort_on_error, communicator, import_mpi, is_main, launched_rank, launched_size,
                     local_rank, mpiexec_command, rank, world, world_size)
from .sharding import local_batch_size, shard_batch, shard_batches

__all__ = ["DataParallel", "INSTALL_HINT", "abort_on_error", "allreduce_gradients", "broadcast_parameters",
           "check_same_model", "communicator", "import_mpi", "is_main", "launched_rank", "launched_size",
           "local_batch_size", "local_rank", "mpiexec_command", "rank", "shard_batch", "shard_batches", "world", "world_size"]

_averagers = weakref.WeakKeyDictionary()   # model -> (comm, its GradientBuckets) for allreduce_gradients


def broadcast_parameters(model, comm=None, root: int = 0) -> None:
    """Copy rank `root`'s parameters and buffers into the model on every rank (in place)."""
    model_check.broadcast_parameters(model, communicator(comm), root)


def check_same_model(model, comm=None) -> None:
    """DistributedError (on every rank) naming the rank and parameter where a model differs from rank 0's."""
    model_check.check_same_model(model, communicator(comm))


def allreduce_gradients(model, comm=None, bucket_mb: float = 25.0) -> None:
    """Average every parameter's `.grad` over all ranks, one allreduce per flat bucket of ~bucket_mb MB.

    Call it after backward and before the optimizer step. The buckets are built on the
    first call and reused. (DataParallel does the same, overlapped with backward.)
    """
    comm = communicator(comm)
    built_for, buckets = _averagers.get(model, (None, None))
    if built_for is not comm:
        params = [p for p in model.parameters() if p.requires_grad]
        buckets = GradientBuckets(params, transport_for(params, comm), bucket_mb, overlap=False)
        _averagers[model] = (comm, buckets)
    buckets.finish()
