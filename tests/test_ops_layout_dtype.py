"""Dtypes of results that are not floats (comparisons, argmax, integer arithmetic). The float32 /
float64 and memory-layout checks of every op are generated from the op table
(tests/test_op_table.py)."""
import numpy as np

import tinygrad_attn as tga


def _x(dtype, device):
    values = np.random.default_rng(0).uniform(0.5, 1.5, size=(3, 4))
    return tga.Tensor(values.astype(dtype), requires_grad=True, device=device)

def test_int_and_bool_results_of_comparisons(device):
    x = _x(np.float32, device)
    assert (x > 1.0).dtype == np.bool_
    assert x.argmax(-1).dtype.kind == "i"
    assert (x.long() + 1).dtype == np.int64

