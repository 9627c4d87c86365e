"""Gradient sums between GPUs over NCCL (through CuPy), for data-parallel training on CUDA.

The same three calls as the MPI transport (start, progress, wait). NCCL runs on the
current CUDA stream, after the kernels that computed the gradients and before those
that read the sums, so stream order does the waiting. MPI only hands out the NCCL id.
"""
from __future__ import annotations

from .cupy_backend import _import_cupy


def select_local_gpu(local_rank: int) -> int:
    """Make GPU `local_rank % count` current for this process (one GPU per rank on a machine); return it."""
    cupy = _import_cupy()
    index = local_rank % cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(index).use()
    return index


class NCCLTransport:
    """In-place sums of CuPy arrays over all ranks of an mpi4py communicator, through NCCL."""

    def __init__(self, comm):
        cupy = _import_cupy()
        from cupy.cuda import nccl
        self.cupy, self.nccl = cupy, nccl
        self.size = comm.Get_size()
        uid = comm.bcast(nccl.get_unique_id() if comm.Get_rank() == 0 else None, root=0)
        self.comm = nccl.NcclCommunicator(self.size, uid, comm.Get_rank())
        self._types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64, "float16": nccl.NCCL_FLOAT16}
        if hasattr(nccl, "NCCL_BFLOAT16"):
            self._types["bfloat16"] = nccl.NCCL_BFLOAT16

    def start(self, flat):
        stream = self.cupy.cuda.get_current_stream()
        self.comm.allReduce(flat.data.ptr, flat.data.ptr, flat.size, self._types[str(flat.dtype)],
                            self.nccl.NCCL_SUM, stream.ptr)
        return None   # nothing to wait on: later kernels on this stream run after the sum

    def progress(self, requests) -> None:
        pass

    def wait(self, requests) -> None:
        pass
