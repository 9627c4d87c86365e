"""Attention: gradients by finite differences for every mask kind, invariants, inspection hooks, KV cache."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn import nn
from tinygrad_attn.testing import gradcheck, gradgradcheck
from tinygrad_attn.functional.references import attention_with_weights as np_attention
from tinygrad_attn.testing import module_gradcheck

MASK_KINDS = ["none", "padding", "causal", "causal+padding", "random"]


def numpy_attention(q, k, v, mask):
    """The reference: softmax over allowed keys, rows with none allowed give 0."""
    s = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])
    s = np.where(mask, s, -np.inf)
    m = np.max(s, -1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    z = e.sum(-1, keepdims=True)
    return (e / np.where(z > 0, z, 1)) @ v


def make_mask(kind, rng, B, tq, tk):
    """(bool mask broadcasting to (B, 1, tq, tk) or None, is_causal) for a mask kind."""
    padding = rng.random((B, tk)) < 0.7
    if kind == "none":
        return None, False
    if kind == "padding":
        return padding[:, None, None, :], False
    if kind == "causal":
        return None, True
    if kind == "causal+padding":
        return padding[:, None, None, :], True
    m = rng.random((B, 1, tq, tk)) < 0.5
    m[:, :, 0] = False  # a fully masked row in every example
    return m, False


def full_mask(mask, causal, shape):
    out = np.ones(shape, dtype=bool)
    if mask is not None:
        out = out & mask
    if causal:
        tq, tk = shape[-2:]
        out = out & np.tril(np.ones((tq, tk), dtype=bool), k=tk - tq)
    return out


# ---------------------------------------------------------------- scaled_dot_product_attention

@given(B=st.integers(1, 2), H=st.integers(1, 2), tq=st.integers(1, 4), tk=st.integers(1, 4), dh=st.integers(1, 3),
       kind=st.sampled_from(MASK_KINDS), seed=st.integers(0, 2**16))
def test_sdpa_matches_numpy_and_finite_differences(B, H, tq, tk, dh, kind, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (tga.tensor(rng.standard_normal(s), requires_grad=True)
               for s in [(B, H, tq, dh), (B, H, tk, dh), (B, H, tk, dh + 1)])
    mask, causal = make_mask(kind, rng, B, tq, tk)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    ref = numpy_attention(q.numpy(), k.numpy(), v.numpy(), full_mask(mask, causal, (B, H, tq, tk)))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)
    gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal), q, k, v)


def test_fully_masked_rows_give_zero_output_and_zero_gradient():
    q, k, v = (tga.randn(1, 2, 3, 4, requires_grad=True) for _ in range(3))
    mask = np.array([True, False, True])[None, :, None] & np.ones((1, 3, 3), dtype=bool)  # query 1 sees nothing
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert not out.numpy()[:, :, 1].any() and np.isfinite(out.numpy()).all()
    out.sum().backward()
    assert not q.grad.numpy()[:, :, 1].any() and np.isfinite(k.grad.numpy()).all()


def test_permuting_keys_and_values_together_changes_nothing():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    pad = rng.random((2, 1, 1, 5)) < 0.7
    perm = rng.permutation(5)
    a = F.scaled_dot_product_attention(tga.tensor(q), tga.tensor(k), tga.tensor(v), attn_mask=pad)
    b = F.scaled_dot_product_attention(tga.tensor(q), tga.tensor(k[:, :, perm]), tga.tensor(v[:, :, perm]),
                                       attn_mask=pad[..., perm])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- MultiHeadAttention

def test_mha_equals_per_head_sdpa_and_numpy(device):
    tga.manual_seed(0)
    mha = nn.MultiHeadAttention(12, 3).to(device)
    for p in mha.parameters():
        nn.init.normal_(p, std=0.3)
    x = tga.randn(2, 5, 12, device=device)
    pad = tga.tensor(np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool), device=device)
    y = mha(x, key_padding_mask=pad, is_causal=True)
    qkv = x.numpy() @ mha.qkv.weight.numpy().T + mha.qkv.bias.numpy()
    q, k, v = (a.reshape(2, 5, 3, 4).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, axis=-1))
    mask = full_mask(pad.numpy()[:, None, None, :], True, (2, 3, 5, 5))
    per_head = numpy_attention(q, k, v, mask)                      # (B, H, T, dh)
    heads = per_head.transpose(0, 2, 1, 3).reshape(2, 5, 12)
    ref = heads @ mha.out_proj.weight.numpy().T + mha.out_proj.bias.numpy()
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-4, atol=1e-5)
    sdpa = F.scaled_dot_product_attention(*(tga.tensor(a, device=device) for a in (q, k, v)),
                                          attn_mask=pad.numpy()[:, None, None, :], is_causal=True)
    np.testing.assert_allclose(sdpa.numpy(), per_head, rtol=1e-4, atol=1e-5)


@given(B=st.integers(1, 2), T=st.integers(1, 4), H=st.integers(1, 2), dh=st.integers(1, 2),
       kind=st.sampled_from(MASK_KINDS), seed=st.integers(0, 2**16))
def test_mha_gradcheck(B, T, H, dh, kind, seed):
    rng = np.random.default_rng(seed)
    mha = nn.MultiHeadAttention(H * dh, H)
    for p in mha.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.5
    x = tga.tensor(rng.standard_normal((B, T, H * dh)), requires_grad=True)
    mask, causal = make_mask(kind, rng, B, T, T)
    if kind in ("padding", "causal+padding"):
        kw = dict(key_padding_mask=mask[:, 0, 0, :], is_causal=causal)
    else:
        kw = dict(attn_mask=mask, is_causal=causal)
    module_gradcheck(mha, lambda x: mha(x, **kw), x)


@given(B=st.integers(1, 2), T=st.integers(1, 3), causal=st.booleans(), padded=st.booleans(), seed=st.integers(0, 2**16))
def test_transformer_block_gradcheck(B, T, causal, padded, seed):
    rng = np.random.default_rng(seed)
    blk = nn.TransformerBlock(4, 2, d_ff=6)
    for p in blk.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.5
    x = tga.tensor(rng.standard_normal((B, T, 4)), requires_grad=True)
    pad = (rng.random((B, T)) < 0.7) if padded else None
    module_gradcheck(blk, lambda x: blk(x, key_padding_mask=pad, is_causal=causal), x)


def test_self_attention_is_permutation_equivariant_without_positions():
    mha = nn.MultiHeadAttention(8, 2).double()
    x = np.random.default_rng(1).standard_normal((2, 6, 8))
    perm = np.random.default_rng(2).permutation(6)
    a, b = mha(tga.tensor(x)).numpy(), mha(tga.tensor(x[:, perm])).numpy()
    np.testing.assert_allclose(a[:, perm], b, rtol=1e-12, atol=1e-12)


@given(T=st.integers(2, 6), data=st.data())
def test_causal_outputs_and_gradients_never_see_the_future(T, data):
    t = data.draw(st.integers(0, T - 2))
    blocks = nn.Sequential(nn.TransformerBlock(8, 2), nn.TransformerBlock(8, 2)).double()
    rng = np.random.default_rng(t)
    x_np = rng.standard_normal((2, T, 8))
    changed = x_np.copy()
    changed[:, t + 1:] = rng.standard_normal(changed[:, t + 1:].shape) * 5

    def run(arr):
        x = tga.tensor(arr, requires_grad=True)
        h = x
        for blk in blocks:
            h = blk(h, is_causal=True)
        (h[:, : t + 1] * tga.tensor(np.cos(np.arange(8.0)))).sum().backward()
        return h.numpy(), x.grad.numpy()

    (h1, g1), (h2, g2) = run(x_np), run(changed)
    np.testing.assert_allclose(h1[:, : t + 1], h2[:, : t + 1], rtol=1e-12, atol=1e-12)
    assert not g1[:, t + 1:].any() and not g2[:, t + 1:].any()
    np.testing.assert_allclose(g1[:, : t + 1], g2[:, : t + 1], rtol=1e-12, atol=1e-12)


def test_padding_keys_get_zero_weight_and_zero_gradient(device):
    mha = nn.MultiHeadAttention(8, 2).to(device)
    mha.keep_weights = True
    real = np.array([[True, True, True, False, False], [True, True, True, True, True]])
    x = tga.randn(2, 5, 8, device=device, requires_grad=True)
    y = mha(x, key_padding_mask=tga.tensor(real, device=device))
    w = mha.last_weights.numpy()
    assert w.shape == (2, 2, 5, 5) and not w[0, :, :, 3:].any()
    np.testing.assert_allclose(w.sum(-1), 1, rtol=1e-5)
    (y * tga.tensor(real[..., None].astype(np.float32), device=device)).sum().backward()  # loss on real tokens
    g = x.grad.numpy()
    assert not g[0, 3:].any() and np.abs(g[0, :3]).min() > 0 and np.abs(g[1]).min() > 0


def test_inspection_scores_weights_and_their_gradients():
    mha = nn.MultiHeadAttention(8, 2).double()
    seen = []
    mha.on_scores = lambda s: seen.append(("scores", s.shape))
    mha.on_weights = lambda w: seen.append(("weights", w.shape))
    x = tga.randn(2, 4, 8, dtype=np.float64)
    y = mha(x, is_causal=True, need_weights=True)
    assert seen == [("scores", (2, 2, 4, 4)), ("weights", (2, 2, 4, 4))]
    scores, weights = mha.last_scores, mha.last_weights
    scores.retain_grad()
    weights.retain_grad()
    (y * y).sum().backward()
    W, dW = weights.numpy(), weights.grad.numpy()
    np.testing.assert_allclose(scores.grad.numpy(), W * (dW - (dW * W).sum(-1, keepdims=True)), rtol=1e-10, atol=1e-12)
    assert not scores.grad.numpy()[..., np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]].any()
    mha(x)
    assert mha.last_weights is None  # kept only when asked: no graph held by accident


def test_float_attn_mask_is_added_to_scores():
    mha = nn.MultiHeadAttention(8, 2).double()
    x = tga.randn(1, 4, 8, dtype=np.float64)
    allowed = np.random.default_rng(0).random((4, 4)) < 0.6
    allowed[:, 0] = True
    a = mha(x, attn_mask=allowed).numpy()
    b = mha(x, attn_mask=np.where(allowed, 0.0, -1e30)).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- learned biases (a float mask that requires grad)

BIAS_SHAPES = [(2, 3, 4, 5), (3, 4, 5), (3, 1, 5), (4, 5), (1, 5)]  # (B, H, Tq, Tk) and masks broadcasting to it


@pytest.mark.parametrize("bias_shape", BIAS_SHAPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("watched", [False, True])
def test_learned_bias_is_differentiated_like_the_scores(bias_shape, causal, watched):
    """dL/d(bias) = dL/d(scores), summed over the axes the bias broadcasts along: by finite
    differences (float64), through the one op and step by step, with and without is_causal."""
    rng = np.random.default_rng(len(bias_shape) + 7 * causal)
    q = tga.tensor(rng.standard_normal((2, 3, 4, 3)), requires_grad=True)
    k = tga.tensor(rng.standard_normal((2, 3, 5, 3)), requires_grad=True)
    v = tga.tensor(rng.standard_normal((2, 3, 5, 2)), requires_grad=True)
    bias = tga.tensor(rng.standard_normal(bias_shape), requires_grad=True)

    def attend(q, k, v, bias):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=causal, return_weights=watched)
        return out[0] if watched else out
    gradcheck(attend, q, k, v, bias)
    allowed = full_mask(None, causal, (2, 3, 4, 5))
    ref, w = np_attention(q.numpy(), k.numpy(), v.numpy(), mask=allowed, float_mask=bias.numpy())
    np.testing.assert_allclose(attend(q, k, v, bias).numpy(), ref, rtol=1e-10, atol=1e-12)
    # the gradient is the scores': softmax's backward of dL/dW = dO v^T, summed to the bias's shape
    g = rng.standard_normal(ref.shape)
    attend(q, k, v, bias).backward(tga.tensor(g))
    dw = g @ np.swapaxes(v.numpy(), -1, -2)
    ds = w * (dw - (dw * w).sum(-1, keepdims=True))
    expected = ds.sum(axis=tuple(range(4 - len(bias_shape))))
    expected = expected.sum(axis=tuple(i for i, n in enumerate(bias_shape) if n == 1), keepdims=True)
    np.testing.assert_allclose(bias.grad.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert bias.grad.shape == bias_shape


def test_learned_bias_has_second_derivatives():
    rng = np.random.default_rng(3)
    q, k, v = (tga.tensor(rng.standard_normal((2, 3, 2)), requires_grad=True) for _ in range(3))
    bias = tga.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    gradgradcheck(lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b, is_causal=True) ** 2,
                  q, k, v, bias)


def test_alibi_slopes_learn_through_the_mask():
    """ALiBi: bias = slope_h * -(i - j); the slopes' gradient by finite differences."""
    rng = np.random.default_rng(5)
    q, k, v = (tga.tensor(rng.standard_normal((1, 2, 4, 3))) for _ in range(3))
    slopes = tga.tensor([0.5, 0.25], requires_grad=True)
    distance = tga.tensor(-np.abs(np.arange(4)[:, None] - np.arange(4)[None, :]).astype(np.float64))
    gradcheck(lambda s: F.scaled_dot_product_attention(q, k, v, attn_mask=s.reshape(2, 1, 1) * distance,
                                                       is_causal=True), slopes)


def test_learned_bias_of_float32_gets_a_float32_gradient_and_bool_masks_take_none():
    q = tga.randn(1, 3, 4)
    bias = tga.zeros(3, 3, requires_grad=True)
    F.scaled_dot_product_attention(q, q, q, attn_mask=bias).sum().backward()
    assert bias.grad.dtype == np.float32 and bias.grad.shape == (3, 3)
    bias64 = tga.zeros(3, 3, requires_grad=True, dtype=np.float64)
    F.scaled_dot_product_attention(q, q, q, attn_mask=bias64).sum().backward()
    assert bias64.grad.dtype == np.float64
    out = F.scaled_dot_product_attention(q, q, q, attn_mask=np.tril(np.ones((3, 3), bool)))
    assert out.shape == (1, 3, 4)


def test_attention_dropout_only_while_training():
    mha = nn.MultiHeadAttention(8, 2, dropout=0.5)
    x = tga.randn(2, 6, 8)
    assert not np.array_equal(mha(x).numpy(), mha(x).numpy())
    mha.eval()
    np.testing.assert_array_equal(mha(x).numpy(), mha(x).numpy())


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiHeadAttention(10, 3)
    mha = nn.MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"key_padding_mask must be bool of shape \(B, Tk\) = \(2, 3\)"):
        mha(tga.randn(2, 3, 8), key_padding_mask=np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"expected input \(B, T, 8\)"):
        mha(tga.randn(2, 3, 6))
    with pytest.raises(ValueError, match=r"cache\[i\]"):
        mha(tga.randn(1, 1, 8), kv_cache=nn.KVCache(2))


# ---------------------------------------------------------------- KV cache

@pytest.mark.parametrize("chunks", [[1] * 7, [3, 1, 1, 2], [7]])
def test_kv_cached_decode_matches_full_forward(device, chunks):
    tga.manual_seed(5)
    blocks = nn.ModuleList([nn.TransformerBlock(16, 4, n_layers_for_init=2) for _ in range(2)]).to(device)
    for p in blocks.parameters():
        nn.init.normal_(p, std=0.2)
    x = tga.randn(2, 7, 16, device=device)
    real = np.ones((2, 7), dtype=bool)
    real[1, :2] = False  # left padding in row 1: masks must line up with cached keys too
    real = tga.tensor(real, device=device)

    def run(h, mask, cache=None):
        for i, blk in enumerate(blocks):
            h = blk(h, key_padding_mask=mask, is_causal=True, kv_cache=None if cache is None else cache[i])
        return h

    full = run(x, real).numpy()
    cache = nn.KVCache(len(blocks))
    start = 0
    with tga.no_grad():
        for n in chunks:
            step = run(x[:, start:start + n], real[:, :start + n], cache)
            np.testing.assert_allclose(step.numpy(), full[:, start:start + n], rtol=1e-4, atol=1e-5)
            start += n
            assert cache.length == start and cache[1].k.shape == (2, 4, start, 4)
    cache.reset()
    assert cache.length == 0


def test_single_layer_cache_and_shape_errors():
    mha = nn.MultiHeadAttention(8, 2)
    cache = nn.KVCache()
    x = tga.randn(1, 3, 8)
    full = mha(x, is_causal=True).numpy()
    parts = [mha(x[:, i:i + 1], is_causal=True, kv_cache=cache).numpy() for i in range(3)]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="reset"):
        mha(tga.randn(2, 1, 8), kv_cache=cache)
