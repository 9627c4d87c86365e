"""Second derivatives beyond the op table (tests/test_op_table.py runs gradgradcheck on every
twice-differentiable op): where/masked_fill inside curved functions, and an exact Hessian."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.testing import arrays, broadcastable_shapes, gradgradcheck, masks
from helpers import T, fixture_ok


@fixture_ok
@given(data=st.data(), pair=broadcastable_shapes(max_dims=3, max_side=3))
def test_where_and_masked_fill_second_order(device, data, pair):
    out = np.broadcast_shapes(*pair)
    cond = data.draw(masks(out))
    a, b = data.draw(arrays(pair[0])), data.draw(arrays(pair[1]))
    # multiply by the inputs so the second derivative is not trivially zero
    gradgradcheck(lambda x, y: F.where(cond, x * x, y * x.sum()), T(a, device), T(b, device), atol=1e-4, rtol=1e-3)
    mask = data.draw(masks(pair[0]))
    gradgradcheck(lambda x: F.masked_fill(x * x, mask, 0.0), T(a, device), atol=1e-4, rtol=1e-3)



def test_hessian_vector_product_of_quadratic_form(device):
    # f = x^T A x has Hessian A + A^T: an exact, independent check of double backward
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4))
    v = rng.standard_normal(4)
    x = T(rng.standard_normal(4), device)
    At = tga.Tensor(A, device=device)
    f = (x * (At @ x)).sum()
    (g,) = tga.grad(f, x, create_graph=True)
    (hv,) = tga.grad((g * tga.Tensor(v, device=device)).sum(), x)
    np.testing.assert_allclose(hv.numpy(), (A + A.T) @ v, rtol=1e-10)

