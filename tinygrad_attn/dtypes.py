"""The dtype rules, in one place: which dtype an op's result has.

PyTorch's promotion, reduced to what this library has:
- Operands fall into categories bool < integer < float. The result takes the highest
  category among the tensors (and arrays); within it, NumPy's promotion of those
  tensors' dtypes (float32 with float64 gives float64, int8 with uint8 int16).
- Python and NumPy scalars (and lists) are weak: they only matter when their category
  is higher than every tensor's, and then give the default dtype of that category,
  float32 for a float and int64 for an int. So `int_tensor + 0.5` is float32 and
  `float16_tensor * 2.5` stays float16.
- Float ops (exp, log, sqrt, division, ...) take integers and bools as float32.
- A gradient always has its leaf's dtype (the graph walk casts where dtypes mixed).
Unlike PyTorch, a 0-d tensor counts as a full tensor, not as a weak scalar.
"""
from __future__ import annotations

import numpy as np

DEFAULT_FLOAT = np.dtype(np.float32)
DEFAULT_INT = np.dtype(np.int64)


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f" or str(dtype) == "bfloat16"


def is_half(dtype) -> bool:
    """float16 or bfloat16: sums and statistics of these accumulate in float32."""
    return is_float(dtype) and np.dtype(dtype).itemsize < 4


def accumulator(dtype):
    """The dtype a sum of `dtype` values accumulates in: float32 for float16/bfloat16, else None
    (the array's own), as `xp.sum(..., dtype=accumulator(a.dtype))` takes it."""
    return np.float32 if is_half(dtype) else None


def category(dtype) -> int:
    """0 for bool, 1 for integers, 2 for floats."""
    if is_float(dtype):
        return 2
    return 1 if np.dtype(dtype).kind in "iu" else 0


def _is_strong(x) -> bool:
    return hasattr(x, "dtype") and not isinstance(x, np.generic)


def _weak_category(x) -> int:
    if isinstance(x, (bool, np.bool_)):
        return 0
    if isinstance(x, (int, np.integer)):
        return 1
    if isinstance(x, (float, np.floating)):
        return 2
    return category(np.asarray(x).dtype)


def result_dtype(*operands) -> np.dtype:
    """The dtype of an elementwise op on `operands` (tensors, arrays, Python numbers, lists)."""
    strong = [o.dtype for o in operands if _is_strong(o)]
    top, dtype = -1, None
    if strong:
        top = max(category(d) for d in strong)
        tops = [d for d in strong if category(d) == top]
        dtype = tops[0] if all(d == tops[0] for d in tops) else np.result_type(*tops)
    weak = [_weak_category(o) for o in operands if not _is_strong(o)]
    if weak and max(weak) > top:
        return (np.dtype(np.bool_), DEFAULT_INT, DEFAULT_FLOAT)[max(weak)]
    return dtype


def float_dtype(dtype):
    """The dtype a float op computes in: the input's if it is a float, else the default float."""
    return dtype if is_float(dtype) else DEFAULT_FLOAT
