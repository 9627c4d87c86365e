"""Which process am I: rank and world size under an MPI launcher, the communicator, and abort-on-error;
and how to start N ranks with the machine's `mpiexec` (MPICH's or Open MPI's, as root too).

mpi4py is imported only when a launcher started more than one process (or the caller
already uses mpi4py), so a plain `tinygrad-attn train` never initialises MPI.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager

from ..errors import MPIMissingError

# The launcher forwards each rank's stderr through a pipe, but it handles an abort as soon as it
# arrives and kills the job: a message still in the pipe is lost (seen on a busy CI machine, where
# a failing rank's whole report vanished). Give the launcher this long to read it first.
ABORT_GRACE_SECONDS = 1.0

INSTALL_HINT = "pip install -e '.[mpi]' (mpi4py and the mpich wheel, which brings mpiexec)"
# set by the launchers in every process they start: MPICH/Intel MPI (hydra), Open MPI, MVAPICH
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_LOCAL_RANK_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")


def mpiexec_flavor(mpiexec: str) -> str:
    """"openmpi", "mpich" (MPICH, Intel MPI and MVAPICH: the hydra launcher) or "unknown", from `--version`."""
    try:
        done = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout + done.stderr).lower()
    if "open mpi" in text or "open-mpi" in text or "openrte" in text or "prrte" in text:
        return "openmpi"
    if "hydra" in text or "mpich" in text or "intel(r) mpi" in text or "mvapich" in text:
        return "mpich"
    return "unknown"


def mpiexec_command(ranks: int, *program, mpiexec: str | None = None):
    """(argv, extra environment) that start `program` on `ranks` processes of this machine.

    `mpiexec` defaults to the one beside this Python (the pip mpich wheel of the `mpi`
    extra), else the first on PATH. Open MPI refuses to start as root unless told that it
    may (containers and lent GPU machines run as root), and refuses more ranks than cores
    unless allowed to oversubscribe; MPICH's hydra needs neither. With no mpiexec at all,
    an MPIMissingError says how to install one."""
    if mpiexec is None:
        beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        mpiexec = beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")
    if mpiexec is None:
        raise MPIMissingError(f"no mpiexec found beside {sys.executable} or on PATH; install one with: {INSTALL_HINT}")
    argv, env = [mpiexec, "-n", str(int(ranks))], {}
    if mpiexec_flavor(mpiexec) == "openmpi":
        argv.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-run-as-root")
            env = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    return argv + [str(a) for a in program], env


def import_mpi():
    """mpi4py's MPI module, or an MPIMissingError (a DistributedError and an ImportError) saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise MPIMissingError(f"data-parallel training needs mpi4py and an MPI library, which are not "
                               f"installed ({e}); install them with: {INSTALL_HINT}") from None
    return MPI


def _from_environment(names, default: int) -> int:
    for var in names:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return default


def launched_size() -> int:
    """How many processes the MPI launcher started (1 when run without one)."""
    return _from_environment(_SIZE_VARS, 1)


def launched_rank() -> int:
    """This process's rank as the launcher numbered it (0 without one); needs no MPI library."""
    return _from_environment(_RANK_VARS, 0)


def world():
    """MPI's COMM_WORLD when this process runs under a launcher with other ranks (or mpi4py is in use), else None."""
    if "mpi4py.MPI" in sys.modules or launched_size() > 1:
        return import_mpi().COMM_WORLD
    return None


def communicator(comm=None):
    """`comm` if given, else COMM_WORLD (a DistributedError if mpi4py is missing)."""
    return comm if comm is not None else (world() or import_mpi().COMM_WORLD)


def rank() -> int:
    """This process's rank: 0 for the first (or only) process."""
    comm = world()
    return 0 if comm is None else comm.Get_rank()


def world_size() -> int:
    """How many processes train together (1 without a launcher)."""
    comm = world()
    return 1 if comm is None else comm.Get_size()


def is_main() -> bool:
    """True on rank 0, the only rank that writes checkpoints, metrics and progress."""
    return rank() == 0


def local_rank() -> int:
    """This process's index among the ranks on its own machine (to pick its GPU)."""
    if any(os.environ.get(var, "").isdigit() for var in _LOCAL_RANK_VARS):
        return _from_environment(_LOCAL_RANK_VARS, 0)
    comm = world()
    if comm is None:
        return 0
    MPI = import_mpi()
    return comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()


@contextmanager
def abort_on_error(comm, collective: tuple = ()):
    """Run a block; if it raises on this rank, say which rank and why, then abort every rank.

    Without this, the other ranks would wait forever in their next collective for a rank
    that is gone. `collective` lists exceptions that every rank raises together (they
    agree on their cause, e.g. a non-finite averaged loss): those propagate normally.
    """
    try:
        yield
    except collective:
        raise
    except BaseException as e:  # KeyboardInterrupt and SystemExit too: the others would still hang
        if comm is None or comm.Get_size() == 1:
            raise
        sys.stderr.write(
            f"tinygrad_attn: rank {comm.Get_rank()} of {comm.Get_size()} failed with "
            f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
            f"tinygrad_attn: aborting all {comm.Get_size()} ranks (rank {comm.Get_rank()} failed)\n")
        sys.stderr.flush()
        time.sleep(ABORT_GRACE_SECONDS)
        comm.Abort(1)
        os._exit(1)   # MPICH's Abort can return before the launcher's kill arrives: never run on
