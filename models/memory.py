"""What a training step will need in memory, estimated before anything is allocated.

`--batch-size 10**6` or `--n-layers 10**6` used to allocate for half a minute until the OS
killed the process (24 GB here) or NumPy raised MemoryError deep in a forward pass. The
estimate is deliberately rough (within a factor of ~1.5 of the measured peak: 256 MB against
284 MB for the benchmark MLM), since it only has to tell a plausible run from an absurd one.
"""
from __future__ import annotations

import os

FLOAT_BYTES = 4
# floats a layer keeps per token for backward: q, k, v, the attention output and its projection,
# two layer norms, the MLP's two 4d-wide activations, the residuals (~20 d), plus the weights (h T)
_PER_LAYER_TOKEN = 20


def step_bytes(config, context: int, batch_size: int) -> int:
    """Parameters, gradients and AdamW's two moments, plus one step's activations and logits."""
    d, layers, vocab = config.d_model, config.n_layers, config.vocab_size
    d_ff = getattr(config, "d_ff", None) or 4 * d
    params = layers * (4 * d * d + 2 * d * d_ff) + (vocab + context) * d
    tokens = batch_size * context
    activations = tokens * (layers * (_PER_LAYER_TOKEN * d + 2 * config.n_heads * context) + 3 * vocab + 4 * d)
    return FLOAT_BYTES * (4 * params + activations)


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else the physical memory, else None (unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(config, context: int, batch_size: int, error) -> None:
    """`error` (an exception type) with the numbers when the step cannot fit in the memory there is."""
    need, have = step_bytes(config, context, batch_size), available_bytes()
    if have is not None and need > have:
        raise error(f"this run needs about {need / 2**30:,.1f} GiB for a training step (batch {batch_size:,} x "
                    f"{context:,} tokens, {config.n_layers:,} layers of d_model {config.d_model:,}), and "
                    f"{have / 2**30:,.1f} GiB is available; pick a smaller --batch-size, --seq-len, --n-layers "
                    f"or --d-model")
