"""The attention op (ops/attention.py) behind F.scaled_dot_product_attention, which
nn.MultiHeadAttention calls on strided views of its projection. Forward against the float64
NumPy reference, gradients (first and second) against finite differences, agreement with the
step-by-step path that inspection uses, and views that stay views."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn import nn
from tinygrad_attn.ops.attention import Attention
from tinygrad_attn.testing import arrays, gradcheck, gradgradcheck, masks
from helpers import T, close, fixture_ok, np_attention

# (q batch, k/v batch): equal, and broadcasting either way (e.g. keys shared by every head)
BATCHES = [((), ()), ((2,), (2,)), ((2, 2), (2, 2)), ((2, 2), (2, 1)), ((2, 1), (1, 2)), ((2,), ())]


def _fused_sdpa(monkeypatch):
    """F.scaled_dot_product_attention, with a check that the fused op really ran."""
    calls = []
    original = Attention.forward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Attention, "forward", counting)
    return calls


@fixture_ok
@given(data=st.data(), batches=st.sampled_from(BATCHES), tq=st.integers(1, 4), tk=st.integers(1, 4),
       d=st.integers(1, 3), kind=st.sampled_from(["none", "bool", "causal", "bool+causal", "float", "float+causal"]))
def test_fused_sdpa_forward_and_gradient(monkeypatch, data, batches, tq, tk, d, kind):
    calls = _fused_sdpa(monkeypatch)
    qb, kb = batches
    q = data.draw(arrays(qb + (tq, d)), label="q")
    k = data.draw(arrays(kb + (tk, d)), label="k")
    v = data.draw(arrays(kb + (tk, d + 1)), label="v")
    # masks broadcast from fewer axes than the scores: per (Tq, Tk), or per key only
    mask_shape = data.draw(st.sampled_from([(tq, tk), (1, tk)]), label="mask shape")
    bool_mask = data.draw(masks(mask_shape), label="mask") if "bool" in kind else None
    float_mask = data.draw(arrays(mask_shape, low=-3, high=0), label="float mask") if "float" in kind else None
    causal = "causal" in kind
    attn_mask = bool_mask if bool_mask is not None else float_mask
    fn = lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=attn_mask, is_causal=causal)  # noqa: E731
    out = fn(T(q, "cpu"), T(k, "cpu"), T(v, "cpu"))
    assert calls, "the fused op did not run"
    close(out, np_attention(q, k, v, bool_mask, causal, float_mask)[0])
    gradcheck(fn, T(q, "cpu"), T(k, "cpu"), T(v, "cpu"))


def _np_packed(qkv, n_heads, allowed):
    """The reference for attention over a fused projection: split heads, attend, merge heads (float64)."""
    B, S, three_d = qkv.shape
    dh = three_d // 3 // n_heads
    q, k, v = (qkv[..., i * n_heads * dh:(i + 1) * n_heads * dh].reshape(B, S, n_heads, dh).transpose(0, 2, 1, 3)
               for i in range(3))
    out, _ = np_attention(q, k, v, mask=allowed)
    return out.transpose(0, 2, 1, 3).reshape(B, S, n_heads * dh)


def _attend_packed(qkv, n_heads, **kwargs):
    """What a user writes (nanoGPT's recipe): split, split heads as views, sdpa, merge heads."""
    B, S, three_d = qkv.shape
    d = three_d // 3
    q, k, v = (t.reshape(B, S, n_heads, d // n_heads).permute(0, 2, 1, 3) for t in F.split(qkv, d, axis=-1))
    out = F.scaled_dot_product_attention(q, k, v, **kwargs)
    return out.permute(0, 2, 1, 3).reshape(B, S, d)


@fixture_ok
@given(data=st.data(), B=st.integers(1, 3), S=st.integers(1, 4), H=st.integers(1, 3), dh=st.integers(1, 3),
       kind=st.sampled_from(["none", "padding", "causal", "padding+causal", "any"]))
def test_attention_on_views_of_one_projection_forward_and_gradient(data, B, S, H, dh, kind):
    qkv = data.draw(arrays((B, S, 3 * H * dh)), label="qkv")
    allowed = None
    if "padding" in kind:
        allowed = data.draw(masks((B, 1, 1, S)), label="key padding")
    if "causal" in kind:
        causal = np.tril(np.ones((S, S), dtype=bool))
        allowed = causal if allowed is None else allowed & causal
    if kind == "any":
        allowed = data.draw(masks((B, H, S, S)), label="mask")
    fn = lambda t: _attend_packed(t, H, attn_mask=allowed)  # noqa: E731
    close(fn(T(qkv, "cpu")), _np_packed(qkv, H, allowed))
    gradcheck(fn, T(qkv, "cpu"))


def test_heads_are_read_and_merged_as_views():
    """q, k, v as permuted views of one projection: the output is laid out so that merging the
    heads back is a view, and the gradients of the three pieces land in one buffer."""
    B, S, H, dh = 2, 5, 3, 4
    qkv = tga.randn(B, S, 3 * H * dh, requires_grad=True)
    d = H * dh
    q, k, v = (t.reshape(B, S, H, dh).permute(0, 2, 1, 3) for t in F.split(qkv, d, axis=-1))
    assert all(np.shares_memory(t.data, qkv.data) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    merged = out.permute(0, 2, 1, 3).reshape(B, S, d)
    assert np.shares_memory(merged.data, out.data)
    merged.sum().backward()
    assert qkv.grad.shape == qkv.shape and qkv.grad.dtype == np.float32


def test_attention_op_with_dropout_multipliers():
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 3, 2)) for _ in range(3))
    keep = (rng.random((2, 3, 3)) > 0.4) / 0.6
    fn = lambda a, b, c: Attention.apply(a, b, c, mask=None, scale=0.5, keep=keep)  # noqa: E731
    gradcheck(fn, T(q, "cpu"), T(k, "cpu"), T(v, "cpu"))
    w = np_attention(q, k, v, scale=0.5)[1]
    close(fn(T(q, "cpu"), T(k, "cpu"), T(v, "cpu")), (w * keep) @ v)


@pytest.mark.parametrize("masking", ["none", "padding", "causal", "padding+causal", "float"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_multihead_attention_one_op_equals_step_by_step(masking, dropout):
    """Watching the weights (need_weights) runs the same maths step by step: same numbers."""
    tga.manual_seed(0)
    mha = nn.MultiHeadAttention(12, 3, dropout=dropout, init_std=0.4).double()
    x_data = np.random.default_rng(1).standard_normal((2, 5, 12))
    kwargs = {"is_causal": "causal" in masking}
    if "padding" in masking:
        kwargs["key_padding_mask"] = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=bool)
    if masking == "float":
        kwargs["attn_mask"] = np.random.default_rng(2).uniform(-2, 0, (5, 5))
    results = []
    for watched in (False, True):
        mha.zero_grad()
        x = T(x_data, "cpu")
        tga.manual_seed(7)  # the same dropout draws on both paths
        y = mha(x, need_weights=watched, **kwargs)
        (y * y).sum().backward()
        results.append([y.numpy(), x.grad.numpy()] + [p.grad.numpy() for p in mha.parameters()])
    for one_op, step_by_step in zip(*results):
        close(one_op, step_by_step, rtol=1e-9, atol=1e-12)


def test_watchers_get_scores_and_weights():
    mha = nn.MultiHeadAttention(8, 2)
    x = tga.randn(1, 3, 8)
    seen = []
    mha.on_scores = seen.append
    mha(x)
    assert len(seen) == 1 and seen[0].shape == (1, 2, 3, 3)
    mha.on_scores = None
    mha(x, need_weights=True)
    assert mha.last_weights is not None


@pytest.mark.parametrize("how", ["bool", "float"])
@pytest.mark.parametrize("watched", [False, True])
def test_fully_masked_rows_give_zeros_and_zero_gradients(how, watched):
    rng = np.random.default_rng(8)
    q, k, v = (T(rng.standard_normal((3, 2)), "cpu") for _ in range(3))
    allowed = np.array([[True, False, True], [False, False, False], [True, True, True]])
    mask = allowed if how == "bool" else np.where(allowed, 0.0, -np.inf)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=watched)
    out = out[0] if watched else out
    close(out[1], np.zeros(2))
    out.sum().backward()
    close(q.grad[1], np.zeros(2))  # the query of the empty row gets no gradient
    assert all(np.all(np.isfinite(t.grad.numpy())) for t in (q, k, v))


def test_second_derivatives_through_the_attention_op_match_the_step_by_step_path():
    rng = np.random.default_rng(4)
    q, k, v = (T(rng.standard_normal((2, 3, 2)), "cpu") for _ in range(3))
    mask = np.array([[True, True, False], [True, False, False], [False, False, False]])
    for watched in (False, True):
        def fn(a, b, c):
            out = F.scaled_dot_product_attention(a, b, c, attn_mask=mask, return_weights=watched)
            return out[0] if watched else out
        assert gradgradcheck(fn, q, k, v)
    grads = []
    for watched in (False, True):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=watched)
        out = out[0] if watched else out
        (gq,) = tga.grad((out * out).sum(), [q], create_graph=True)
        grads.append(tga.grad((gq * gq).sum(), [k])[0].numpy())
    close(grads[0], grads[1], rtol=1e-9, atol=1e-12)


def test_integer_masks_are_refused():
    q = tga.randn(3, 2)
    with pytest.raises(tga.DTypeError, match="scaled_dot_product_attention.*int64"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.eye(3, dtype=np.int64))


def test_float32_stays_float32_through_attention():
    mha = nn.MultiHeadAttention(8, 2, dropout=0.1)
    x = tga.randn(2, 4, 8, requires_grad=True)
    y = mha(x, is_causal=True)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert mha.qkv.weight.grad.dtype == np.float32
