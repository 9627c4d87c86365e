"""matmul (1-D, 2-D, batched and broadcast N-D) and linear: forward against NumPy, gradient
against finite differences in float64."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.testing import arrays, gradcheck, matmul_shapes
from helpers import T, close, fixture_ok


@fixture_ok
@given(data=st.data(), pair=matmul_shapes(max_batch_dims=2))
def test_matmul_forward_and_grad(device, data, pair):
    a = data.draw(arrays(pair[0]), label="a")
    b = data.draw(arrays(pair[1]), label="b")
    ta, tb = T(a, device), T(b, device)
    close(ta @ tb, np.matmul(a, b))
    gradcheck(F.matmul, ta, tb)


@fixture_ok
@given(data=st.data(), pair=matmul_shapes(max_batch_dims=2))
def test_matmul_grad_with_only_one_side_requiring_grad(device, data, pair):
    a = data.draw(arrays(pair[0]), label="a")
    b = data.draw(arrays(pair[1]), label="b")
    gradcheck(F.matmul, T(a, device), T(b, device, grad=False))
    gradcheck(F.matmul, T(a, device, grad=False), T(b, device))


@fixture_ok
@given(data=st.data(), batch=st.sampled_from([(), (2,), (3, 2)]), dims=st.tuples(*[st.integers(1, 4)] * 3))
def test_matmul_gradient_matches_closed_form(device, data, batch, dims):
    # dL/dA = G B^T and dL/dB = A^T G, summed over broadcast batch dims (B is 2-D here)
    m, k, n = dims
    a = data.draw(arrays(batch + (m, k)), label="a")
    b = data.draw(arrays((k, n)), label="b")
    g = data.draw(arrays(batch + (m, n)), label="g")
    ta, tb = T(a, device), T(b, device)
    (ta @ tb).backward(tga.Tensor(g, device=device))
    close(ta.grad, g @ b.T)
    close(tb.grad, (np.swapaxes(a, -1, -2) @ g).reshape((-1, k, n)).sum(axis=0))


@fixture_ok
@given(data=st.data(), lead=st.sampled_from([(), (3,), (2, 3)]), fin=st.integers(1, 4), fout=st.integers(1, 4))
def test_linear_forward_and_grad(device, data, lead, fin, fout):
    x = data.draw(arrays(lead + (fin,)), label="x")
    w = data.draw(arrays((fout, fin)), label="w")
    b = data.draw(arrays((fout,)), label="b")
    tx, tw, tb = T(x, device), T(w, device), T(b, device)
    close(F.linear(tx, tw, tb), x @ w.T + b)
    close(F.linear(tx, tw), x @ w.T)
    gradcheck(F.linear, tx, tw, tb)
