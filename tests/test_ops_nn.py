"""Neural-network ops: softmax (masked), log_softmax, cross_entropy, dropout, layer_norm and
scaled_dot_product_attention. Forward against float64 NumPy references written here,
gradient against finite differences in float64 (or a closed form where logits are extreme)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.errors import GraphError
from tinygrad_attn.testing import arrays, gradcheck, masks, shapes
from helpers import T, close, fixture_ok, np_attention, np_softmax


# ---------------------------------------------------------------- NumPy references (float64, stable)

def np_log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def np_cross_entropy(logits, targets, ignore_index=-100, eps=0.0, reduction="mean"):
    """Loss and its gradient with respect to the logits (for an upstream gradient of 1)."""
    C = logits.shape[-1]
    logp = np_log_softmax(logits, -1)
    valid = targets != ignore_index
    safe = np.where(valid, targets, 0)
    onehot = np.eye(C)[safe]
    dist = (1 - eps) * onehot + eps / C
    loss = np.where(valid, -(dist * logp).sum(-1), 0.0)
    grad = (np.exp(logp) - dist) * valid[..., None]
    if reduction == "none":
        return loss, grad
    if reduction == "sum":
        return loss.sum(), grad
    n = max(int(valid.sum()), 1)
    return loss.sum() / n, grad / n


def np_layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


# ---------------------------------------------------------------- softmax, log_softmax

@fixture_ok
@given(data=st.data(), shape=shapes())
def test_softmax_forward_and_grad(device, data, shape):
    a = data.draw(arrays(shape, low=-4, high=4), label="a")
    ax = data.draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1), label="axis") if shape else -1
    ta = T(a, device)
    close(F.softmax(ta, ax), np_softmax(a, ax))
    close(ta.softmax(dim=ax), np_softmax(a, ax))
    gradcheck(lambda x: F.softmax(x, ax), ta)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1))
def test_masked_softmax_forward_and_grad(device, data, shape):
    a = data.draw(arrays(shape, low=-4, high=4), label="a")
    mask = data.draw(masks(shape), label="mask")
    ta = T(a, device)
    y = F.softmax(ta, -1, mask=mask)
    close(y, np_softmax(a, -1, mask))
    assert np.all(np.isfinite(y.numpy()))
    gradcheck(lambda x: F.softmax(x, -1, mask=mask), ta)
    # fully masked rows: zeros out, zero gradient in
    g = np.random.default_rng(2).standard_normal(shape)
    ta2 = T(a, device)
    F.softmax(ta2, -1, mask=tga.Tensor(mask, device=device)).backward(tga.Tensor(g, device=device))
    empty = ~mask.any(-1)
    assert np.all(ta2.grad.numpy()[empty] == 0.0)
    assert np.all(ta2.grad.numpy()[~mask] == 0.0)


def test_fully_masked_rows_give_zeros_and_zero_grad(device):
    x = T([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device)
    mask = np.array([[True, False, True], [False, False, False]])
    y = F.softmax(x, -1, mask=mask)
    close(y[1], [0.0, 0.0, 0.0])
    close(y[0], np_softmax([1.0, 3.0], -1)[[0, 0, 1]] * [1, 0, 1])
    (y * tga.Tensor(np.arange(6.0).reshape(2, 3), device=device)).sum().backward()
    close(x.grad[1], [0.0, 0.0, 0.0])
    assert np.all(np.isfinite(x.grad.numpy()))


def test_softmax_mask_broadcasts(device):
    x = T(np.arange(12.0).reshape(2, 2, 3) * 0.3, device)
    mask = np.array([True, False, True])
    close(F.softmax(x, -1, mask=mask), np_softmax(x.numpy(), -1, np.broadcast_to(mask, (2, 2, 3))))


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1))
def test_log_softmax_forward_and_grad(device, data, shape):
    a = data.draw(arrays(shape, low=-4, high=4), label="a")
    ax = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    ta = T(a, device)
    close(F.log_softmax(ta, ax), np_log_softmax(a, ax))
    close(ta.log_softmax(dim=ax), np_log_softmax(a, ax))
    gradcheck(lambda x: F.log_softmax(x, ax), ta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3))
def test_softmax_family_extreme_logits_finite_and_correct(device, dtype, data, shape):
    a = data.draw(arrays(shape, low=-1e4, high=1e4), label="a")
    a = a.astype(dtype).astype(np.float64)  # the reference sees exactly what the op sees
    g = np.random.default_rng(3).standard_normal(shape)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    # softmax: grad = y * (g - sum(g y))
    ta = T(a, device, dtype=dtype)
    y = F.softmax(ta, -1)
    y.backward(tga.Tensor(g.astype(dtype), device=device))
    ry = np_softmax(a, -1)
    close(y, ry, **tol)
    close(ta.grad, ry * (g - (g * ry).sum(-1, keepdims=True)), **tol)
    # log_softmax: grad = g - softmax * sum(g)
    tb = T(a, device, dtype=dtype)
    ly = F.log_softmax(tb, -1)
    ly.backward(tga.Tensor(g.astype(dtype), device=device))
    assert np.all(np.isfinite(ly.numpy()))
    close(ly, np_log_softmax(a, -1), **tol)
    close(tb.grad, g - ry * g.sum(-1, keepdims=True), **tol)
    # logsumexp: grad = softmax
    tc = T(a, device, dtype=dtype)
    lse = tc.logsumexp(-1)
    lse.sum().backward()
    assert np.all(np.isfinite(lse.numpy()))
    close(lse, np.log(np.exp(a - a.max(-1, keepdims=True)).sum(-1)) + a.max(-1), **tol)
    close(tc.grad, ry, **tol)
    # cross_entropy, with the argmax as target half of the time (a small loss, checked relatively)
    targets = np.random.default_rng(4).integers(0, shape[-1], size=shape[:-1])
    if data.draw(st.booleans(), label="argmax_targets"):
        targets = np.argmax(a, -1)
    td = T(a, device, dtype=dtype)
    loss = F.cross_entropy(td, targets)
    loss.backward()
    rl, rg = np_cross_entropy(a, targets)
    assert np.isfinite(loss.item())
    close(loss, rl, **tol)
    close(td.grad, rg, **tol)


# ---------------------------------------------------------------- cross_entropy

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@fixture_ok
@given(data=st.data(), lead=shapes(min_dims=0, max_dims=2, max_side=4), classes=st.integers(1, 5),
       smoothing=st.sampled_from([0.0, 0.1, 0.3]))
def test_cross_entropy_forward_and_grad(device, reduction, data, lead, classes, smoothing):
    logits = data.draw(arrays(lead + (classes,), low=-4, high=4), label="logits")
    targets = data.draw(hnp.arrays(np.int64, lead, elements=st.sampled_from(list(range(classes)) + [-100])),
                        label="targets")
    tl = T(logits, device)
    out = F.cross_entropy(tl, targets, label_smoothing=smoothing, reduction=reduction)
    ref, ref_grad = np_cross_entropy(logits, targets, eps=smoothing, reduction=reduction)
    close(out, ref)
    gradcheck(lambda x: F.cross_entropy(x, targets, label_smoothing=smoothing, reduction=reduction), tl)
    if reduction != "none":
        tl2 = T(logits, device)
        F.cross_entropy(tl2, tga.Tensor(targets, device=device), label_smoothing=smoothing,
                        reduction=reduction).backward()
        close(tl2.grad, ref_grad)


def test_cross_entropy_ignore_index_custom_and_mean_over_counted(device):
    logits = T([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [1.0, 3.0, 0.0]], device)
    targets = np.array([0, 7, 1])
    loss = F.cross_entropy(logits, targets, ignore_index=7)
    ref, ref_grad = np_cross_entropy(logits.numpy(), targets, ignore_index=7)
    close(loss, ref)
    close(loss, (-np_log_softmax(logits.numpy())[[0, 2], [0, 1]]).mean())  # mean over 2, not 3
    loss.backward()
    close(logits.grad, ref_grad)
    close(logits.grad[1], [0.0, 0.0, 0.0])


def test_cross_entropy_all_ignored_gives_zero_loss_and_grad(device):
    logits = T(np.ones((2, 3)), device)
    loss = F.cross_entropy(logits, np.array([-100, -100]))
    assert loss.item() == 0.0
    loss.backward()
    close(logits.grad, np.zeros((2, 3)))


# ---------------------------------------------------------------- dropout

def test_dropout_same_seed_same_mask(device):
    x = tga.ones(50, 40, device=device)
    tga.manual_seed(123)
    a = F.dropout(x, 0.3).numpy()
    tga.manual_seed(123)
    b = F.dropout(x, 0.3).numpy()
    c = F.dropout(x, 0.3).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_scaling_and_gradient(device, p):
    rng = np.random.default_rng(5)
    base = rng.uniform(0.5, 2.0, size=(64, 64))  # nonzero, so a zero output means dropped
    x = T(base, device)
    y = F.dropout(x, p, training=True)
    out = y.numpy()
    kept = out != 0
    assert abs(1 - kept.mean() - p) < 0.05  # 4096 draws: about 5 standard errors
    np.testing.assert_allclose(out[kept], base[kept] / (1 - p), rtol=1e-12)
    g = rng.standard_normal((64, 64))
    y.backward(tga.Tensor(g, device=device))
    close(x.grad, g * kept / (1 - p))
    assert y.dtype == np.float64
    x32 = tga.ones(8, 8, device=device)
    assert F.dropout(x32, p).dtype == np.float32


def test_dropout_identity_when_off(device):
    x = T(np.arange(6.0), device)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="dropout"):
        F.dropout(x, 1.0)


# ---------------------------------------------------------------- layer_norm

@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3, max_side=5),
       affine=st.sampled_from(["both", "weight", "none"]))
def test_layer_norm_forward_and_gradcheck(device, data, shape, affine):
    x = data.draw(arrays(shape), label="x")
    d = shape[-1]
    w = data.draw(arrays((d,), low=0.5, high=2.0), label="w") if affine != "none" else None
    b = data.draw(arrays((d,)), label="b") if affine == "both" else None
    eps = 1e-5
    tw = T(w, device) if w is not None else None
    tb = T(b, device) if b is not None else None
    ref = np_layer_norm(x, 1.0 if w is None else w, 0.0 if b is None else b, eps)
    params = [p for p in (tw, tb) if p is not None]

    def ln(xx, *ps):
        it = iter(ps)
        ww = next(it) if tw is not None else None
        bb = next(it) if tb is not None else None
        return F.layer_norm(xx, ww, bb, eps)

    close(ln(T(x, device), *params), ref, rtol=1e-8, atol=1e-10)
    # a variance near 0 makes finite differences ill-conditioned; eps keeps it finite
    gradcheck(ln, T(x, device), *params, atol=1e-4, rtol=1e-3)


# ---------------------------------------------------------------- scaled dot-product attention

@fixture_ok
@given(data=st.data(), batch=st.sampled_from([(), (2,), (2, 2)]), tq=st.integers(1, 4), tk=st.integers(1, 4),
       d=st.integers(1, 3), kind=st.sampled_from(["none", "bool", "causal", "bool+causal", "float"]))
def test_sdpa_forward_and_grad(device, data, batch, tq, tk, d, kind):
    q = data.draw(arrays(batch + (tq, d)), label="q")
    k = data.draw(arrays(batch + (tk, d)), label="k")
    v = data.draw(arrays(batch + (tk, d + 1)), label="v")
    bool_mask = data.draw(masks((tq, tk)), label="mask") if "bool" in kind else None
    float_mask = data.draw(arrays(batch + (tq, tk), low=-3, high=0), label="float_mask") if kind == "float" else None
    causal = "causal" in kind
    attn_mask = bool_mask if bool_mask is not None else float_mask
    tqs, tks, tvs = T(q, device), T(k, device), T(v, device)
    out, w = F.scaled_dot_product_attention(tqs, tks, tvs, attn_mask=attn_mask, is_causal=causal, return_weights=True)
    ref_out, ref_w = np_attention(q, k, v, bool_mask, causal, float_mask)
    close(out, ref_out)
    close(w, ref_w)
    assert np.all(np.isfinite(out.numpy()))
    gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=attn_mask, is_causal=causal),
              tqs, tks, tvs)


def test_sdpa_fully_masked_query_gives_zero_output_and_grad(device):
    rng = np.random.default_rng(8)
    q, k, v = (T(rng.standard_normal((3, 2)), device) for _ in range(3))
    mask = np.array([[True, False, True], [False, False, False], [True, True, True]])
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=tga.Tensor(mask, device=device))
    close(out[1], [0.0, 0.0])
    out.sum().backward()
    close(q.grad[1], [0.0, 0.0])
    assert np.all(np.isfinite(k.grad.numpy())) and np.all(np.isfinite(v.grad.numpy()))


def test_sdpa_explicit_scale_and_causal_equals_tril(device):
    rng = np.random.default_rng(9)
    q, k, v = (rng.standard_normal((2, 4, 3)) for _ in range(3))
    out = F.scaled_dot_product_attention(T(q, device), T(k, device), T(v, device), is_causal=True, scale=0.7)
    close(out, np_attention(q, k, v, mask=np.tril(np.ones((4, 4), dtype=bool)), scale=0.7)[0])
    np.testing.assert_array_equal(F.causal_mask(2, 4), [[True, True, True, False], [True, True, True, True]])
