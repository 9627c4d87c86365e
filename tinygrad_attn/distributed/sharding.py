"""Each rank's share of a batch: the global batch is drawn the same way on every rank, then split by rows.

Every rank draws from the same seeded generator, so all ranks agree on the global batch
without talking, and rank r keeps rows [r*B/N, (r+1)*B/N). The shards are disjoint and
together they are exactly the batch one process would train on: N ranks at global batch
B follow the run of one process at batch B, and the batch generator's state is the same
on every rank (a checkpoint written by rank 0 resumes on any number of ranks).
"""
from __future__ import annotations

from ..errors import DistributedError


def local_batch_size(global_batch: int, world_size: int) -> int:
    """Rows per rank for a global batch; a DistributedError if they do not split evenly."""
    if global_batch % world_size:
        raise DistributedError(
            f"batch size {global_batch} is the global batch, split over {world_size} ranks, and it does not "
            f"divide evenly; choose a multiple of {world_size} (e.g. {max(1, global_batch // world_size) * world_size})")
    return global_batch // world_size


def shard_batch(batch, rank: int, world_size: int):
    """Rank `rank`'s rows of `batch` (an array, or a tuple/list of arrays with the same first axis)."""
    arrays = batch if isinstance(batch, (tuple, list)) else (batch,)
    rows = local_batch_size(len(arrays[0]), world_size)
    shard = tuple(a[rank * rows:(rank + 1) * rows] for a in arrays)
    return shard if isinstance(batch, (tuple, list)) else shard[0]


def shard_batches(batch_fn, rank: int, world_size: int):
    """Wrap `batch_fn(rng) -> global batch` into a sampler of this rank's disjoint shard of every batch."""
    return lambda rng: shard_batch(batch_fn(rng), rank, world_size)
