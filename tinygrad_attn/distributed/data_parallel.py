"""DataParallel: one model trained by several processes, each on its shard of every batch.

    dp = DataParallel(model)                     # under `mpiexec -n N`; checks every rank holds rank 0's model
    trainer = Trainer(model, opt, dp.shard(batch_fn), ..., parallel=dp)

The Trainer calls the rest: `start` (model check, a dropout stream per rank),
`average_loss`, `reduce_gradients` after backward, `broadcast` for rank 0's evaluation,
and `abort_on_error` around the loop. Gradients are averaged in flat buckets, over MPI
for host arrays and over NCCL for CUDA arrays.
"""
from __future__ import annotations

import numpy as np

from .buckets import GradientBuckets, transport_for, wait_politely
from .launch import abort_on_error, communicator, import_mpi
from .model_check import check_same_model
from .sharding import shard_batches


class DataParallel:
    """Averages `model`'s gradients over all ranks of `comm` (default: MPI's COMM_WORLD).

    bucket_mb: size of the flat buffers, one allreduce each; overlap: start each bucket's
    allreduce from a gradient hook as soon as backward has filled it (else all at
    `reduce_gradients`, which also allows accumulating gradients over several backwards).
    """

    def __init__(self, model, comm=None, *, bucket_mb: float = 25.0, overlap: bool = True):
        self.comm = communicator(comm)
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        self.model = model
        self._own_stream = False
        params = [p for p in model.parameters() if p.requires_grad]
        self.buckets = GradientBuckets(params, transport_for(params, self.comm), bucket_mb, overlap)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def comm_seconds(self) -> float:
        """Seconds this rank has spent in gradient allreduce calls (not hidden behind backward)."""
        return self.buckets.comm_seconds

    def shard(self, batch_fn):
        """`batch_fn(rng) -> global batch` made to return this rank's disjoint rows of it."""
        return shard_batches(batch_fn, self.rank, self.world_size)

    def start(self, backend_rng=None, reseeded: bool = False) -> None:
        """Before training: check every rank holds rank 0's model; give each rank its own dropout stream.

        `reseeded`: the backend generator was just set from a checkpoint (rank 0's state),
        so it needs this rank's offset again.
        """
        check_same_model(self.model, self.comm)
        bit_generator = getattr(backend_rng, "bit_generator", None)
        if self.rank and hasattr(bit_generator, "jumped") and (reseeded or not self._own_stream):
            # a stream per rank that never overlaps the others; jumping commutes with drawing,
            # so rank r's stream after a resume is the one it would have had without one
            bit_generator.state = bit_generator.jumped(self.rank).state
        self._own_stream = True

    def average_loss(self, value: float) -> float:
        """The mean of `value` over all ranks: every rank sees the same loss (and stops together on NaN)."""
        MPI = import_mpi()
        buf = np.array([value], dtype=np.float64)
        wait_politely(MPI, [self.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)])
        return float(buf[0] / self.world_size)

    def reduce_gradients(self) -> None:
        """After backward: every `.grad` becomes its average over the ranks."""
        self.buckets.finish()

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (a small picklable value, e.g. the evaluation result)."""
        return self.comm.bcast(obj, root=0)

    def abort_on_error(self, collective: tuple = ()):
        """Context manager: an exception on one rank aborts all ranks with a message naming it."""
        return abort_on_error(self.comm, collective)
