"""The fused attention ops (ops/attention.py): Attention behind F.scaled_dot_product_attention
and PackedSelfAttention behind nn.MultiHeadAttention. Forward against the float64 NumPy
reference, gradients against finite differences, and agreement with the composite path."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn import nn
from tinygrad_attn.errors import GraphError
from tinygrad_attn.ops.attention import Attention, PackedSelfAttention, additive_mask
from tinygrad_attn.testing import arrays, gradcheck, masks
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
    """The reference for PackedSelfAttention: split heads, attend, merge heads (float64)."""
    B, S, three_d = qkv.shape
    dh = three_d // 3 // n_heads
    q, k, v = (qkv[..., i * n_heads * dh:(i + 1) * n_heads * dh].reshape(B, S, n_heads, dh).transpose(0, 2, 1, 3)
               for i in range(3))
    out, _ = np_attention(q, k, v, mask=allowed)
    return out.transpose(0, 2, 1, 3).reshape(B, S, n_heads * dh)


@fixture_ok
@given(data=st.data(), B=st.integers(1, 3), S=st.integers(1, 4), H=st.integers(1, 3), dh=st.integers(1, 3),
       kind=st.sampled_from(["none", "padding", "causal", "padding+causal", "any"]))
def test_packed_self_attention_forward_and_gradient(data, B, S, H, dh, kind):
    qkv = data.draw(arrays((B, S, 3 * H * dh)), label="qkv")
    allowed = None
    if "padding" in kind:
        allowed = data.draw(masks((B, 1, 1, S)), label="key padding")
    if "causal" in kind:
        causal = np.tril(np.ones((S, S), dtype=bool))
        allowed = causal if allowed is None else allowed & causal
    if kind == "any":
        allowed = data.draw(masks((B, H, S, S)), label="mask")
    fn = lambda t: PackedSelfAttention.apply(  # noqa: E731
        t, n_heads=H, mask=additive_mask(np, allowed, None, t.dtype), scale=1 / math.sqrt(dh), keep=None)
    close(fn(T(qkv, "cpu")), _np_packed(qkv, H, allowed))
    gradcheck(fn, T(qkv, "cpu"))


def test_packed_self_attention_with_dropout_multipliers():
    rng = np.random.default_rng(3)
    B, S, H, dh = 2, 3, 2, 2
    qkv = rng.standard_normal((B, S, 3 * H * dh))
    keep = (rng.random((B, H, S, S)) > 0.4) / 0.6
    fn = lambda t: PackedSelfAttention.apply(t, n_heads=H, mask=None, scale=0.5, keep=keep)  # noqa: E731
    gradcheck(fn, T(qkv, "cpu"))
    q, k, v = (qkv[..., i * H * dh:(i + 1) * H * dh].reshape(B, S, H, dh).transpose(0, 2, 1, 3) for i in range(3))
    w = np_attention(q, k, v, scale=0.5)[1]
    close(fn(T(qkv, "cpu")), ((w * keep) @ v).transpose(0, 2, 1, 3).reshape(B, S, H * dh))


@pytest.mark.parametrize("masking", ["none", "padding", "causal", "padding+causal", "float"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_multihead_attention_fused_equals_composite(masking, dropout):
    tga.manual_seed(0)
    mha = nn.MultiHeadAttention(12, 3, dropout=dropout, init_std=0.4).double()
    x_data = np.random.default_rng(1).standard_normal((2, 5, 12))
    kwargs = {"is_causal": "causal" in masking}
    if "padding" in masking:
        kwargs["key_padding_mask"] = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=bool)
    if masking == "float":
        kwargs["attn_mask"] = np.random.default_rng(2).uniform(-2, 0, (5, 5))
    results = []
    for fused in (True, False):
        mha.fused = fused
        mha.zero_grad()
        x = T(x_data, "cpu")
        tga.manual_seed(7)  # the same dropout draws on both paths
        y = mha(x, **kwargs)
        (y * y).sum().backward()
        results.append([y.numpy(), x.grad.numpy()] + [p.grad.numpy() for p in mha.parameters()])
    for fused_value, composite_value in zip(*results):
        close(fused_value, composite_value, rtol=1e-9, atol=1e-12)


def test_fused_path_is_skipped_while_someone_watches():
    mha = nn.MultiHeadAttention(8, 2)
    x = tga.randn(1, 3, 8)
    seen = []
    mha.on_scores = seen.append
    mha(x)
    assert len(seen) == 1 and seen[0].shape == (1, 2, 3, 3)
    mha.on_scores = None
    mha(x, need_weights=True)
    assert mha.last_weights is not None


def test_fully_masked_rows_give_zeros_and_zero_gradients():
    rng = np.random.default_rng(8)
    qkv = T(rng.standard_normal((1, 3, 6)), "cpu")
    allowed = np.array([[True, False, True], [False, False, False], [True, True, True]])
    out = PackedSelfAttention.apply(qkv, n_heads=1, mask=additive_mask(np, allowed, None, np.float64),
                                    scale=1.0, keep=None)
    close(out[0, 1], np.zeros(2))
    out.sum().backward()
    close(qkv.grad[0, 1, :2], np.zeros(2))  # the query of the empty row gets no gradient
    assert np.all(np.isfinite(qkv.grad.numpy()))


def test_fused_attention_refuses_create_graph_and_the_composite_path_allows_it():
    rng = np.random.default_rng(4)
    q, k, v = (T(rng.standard_normal((2, 3)), "cpu") for _ in range(3))
    out = F.scaled_dot_product_attention(q, k, v)
    with pytest.raises(GraphError, match="attention.*once-differentiable"):
        tga.grad((out * out).sum(), [q], create_graph=True)
    (gq,) = tga.grad((F.scaled_dot_product_attention(q, k, v, fused=False) ** 2).sum(), [q], create_graph=True)
    assert gq.requires_grad


def test_float32_stays_float32_through_the_fused_ops():
    mha = nn.MultiHeadAttention(8, 2, dropout=0.1)
    x = tga.randn(2, 4, 8, requires_grad=True)
    y = mha(x, is_causal=True)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert mha.qkv.weight.grad.dtype == np.float32
