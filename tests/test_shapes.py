"""shapes.broadcast_shape agrees with NumPy's broadcasting on every pair or triple of shapes."""
import numpy as np
from hypothesis import given, strategies as st

from tinygrad_attn.shapes import broadcast_shape, size_of

dims = st.lists(st.sampled_from([0, 1, 1, 2, 3]), max_size=4).map(tuple)


@given(st.lists(dims, min_size=1, max_size=3))
def test_broadcast_shape_is_numpys(shapes):
    try:
        want = np.broadcast_shapes(*shapes)
    except ValueError:
        want = None
    try:
        got = broadcast_shape(*shapes)
    except ValueError:
        got = None
    assert got == want


@given(dims)
def test_size_of_is_the_number_of_entries(shape):
    assert size_of(shape) == np.zeros(shape).size
