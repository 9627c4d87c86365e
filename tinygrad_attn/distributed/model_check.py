"""Same model on every rank: broadcast rank 0's parameters, and check shapes and checksums against rank 0."""
from __future__ import annotations

import zlib

import numpy as np

from ..errors import DistributedError


def _host(p) -> np.ndarray:
    return np.ascontiguousarray(p.numpy())


def broadcast_parameters(model, comm, root: int = 0) -> None:
    """Overwrite every parameter and buffer with rank `root`'s values (in place: optimizers keep working)."""
    for _, t in _named_tensors(model):
        host = _host(t)
        comm.Bcast(host, root=root)
        t.data[...] = t.backend.asarray(host)  # no copy on the CPU


def _named_tensors(model):
    yield from model.named_parameters()
    yield from model.named_buffers()


def _fingerprint(model) -> list:
    """(name, shape, dtype, crc32 of the bytes) for every parameter, in the model's order."""
    return [(name, tuple(p.shape), str(p.dtype), zlib.crc32(_host(p).view(np.uint8)))
            for name, p in model.named_parameters()]


def _difference(mine: list, root: list, me: int, root_rank: int) -> str | None:
    """What first differs between this rank's fingerprint and the root's, in words (None if nothing)."""
    theirs = {name: rest for name, *rest in root}
    names = [name for name, *_ in mine]
    for name, shape, dtype, crc in mine:
        if name not in theirs:
            return f"parameter {name!r} of shape {shape} exists on rank {me} but not on rank {root_rank}"
        root_shape, root_dtype, root_crc = theirs[name]
        if shape != root_shape or dtype != root_dtype:
            return (f"parameter {name!r} is {dtype} {shape} on rank {me} but {root_dtype} {root_shape} "
                    f"on rank {root_rank}")
        if crc != root_crc:
            return (f"parameter {name!r} holds different values on rank {me} than on rank {root_rank} "
                    f"(checksum {crc:#010x} against {root_crc:#010x})")
    missing = [name for name in theirs if name not in names]
    if missing:
        return f"parameter {missing[0]!r} exists on rank {root_rank} but not on rank {me}"
    return None


def check_same_model(model, comm, root: int = 0) -> None:
    """Raise DistributedError on every rank if any rank's parameters differ from rank `root`'s.

    Compares names, shapes, dtypes and a CRC-32 of the values. All ranks learn every
    rank's verdict, so all raise together (nobody is left waiting).
    """
    mine = _fingerprint(model)
    root_print = comm.bcast(mine, root=root)
    verdicts = comm.allgather(_difference(mine, root_print, comm.Get_rank(), root))
    problems = [v for v in verdicts if v is not None]
    if problems:
        raise DistributedError(
            "data parallel: the ranks do not hold the same model: " + "; ".join(problems)
            + ". Build the model the same way on every rank (same config, tga.manual_seed before building it) "
            "or copy rank 0's weights with distributed.broadcast_parameters(model).")

