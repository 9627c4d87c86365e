"""tinygrad_attn.attribution: attention rollout against the explicit product of per-layer maps."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import attribution, inspect
from tinygrad_attn.errors import ShapeError
from tinygrad_attn.models import GPT, GPTConfig


def _gpt_capture(n_layers=3):
    tga.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, seq_len=6, d_model=16, n_heads=2, n_layers=n_layers, dropout=0.0))
    ids = np.random.default_rng(0).integers(0, 11, (2, 6))
    with inspect.capture(model) as cap:
        model(ids)
    return cap


def _causal_softmax_maps(cap):
    """Each layer's weights rebuilt from its captured q and k, softmax(q k^T / sqrt(dh)) under the causal mask."""
    maps = {}
    for name in cap.attention_layers:
        q, k, _ = (np.asarray(t, dtype=np.float64) for t in cap.qkv[name])
        s = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        maps[name] = e / e.sum(axis=-1, keepdims=True)
    return maps


def test_rollout_equals_the_explicit_product_of_corrected_layer_maps():
    cap = _gpt_capture()
    maps = _causal_softmax_maps(cap)
    for name in cap.attention_layers:   # the captured maps are the attention the model ran
        np.testing.assert_allclose(cap.attention_weights[name], maps[name], atol=1e-5)
    B, _, T, _ = maps[cap.attention_layers[0]].shape
    expected = np.empty((B, T, T))
    for b in range(B):
        product = np.eye(T)
        for name in cap.attention_layers:
            a = np.zeros((T, T))
            for i in range(T):   # heads averaged, half residual, each row renormalised: element by element
                row = [0.5 * np.mean(maps[name][b, :, i, j]) + 0.5 * (i == j) for j in range(T)]
                a[i] = np.array(row) / sum(row)
            product = a @ product
        expected[b] = product
    rollout = attribution.attention_rollout(cap)
    np.testing.assert_allclose(rollout, expected, atol=1e-5)
    np.testing.assert_allclose(rollout.sum(axis=-1), 1.0, atol=1e-9)   # still a distribution over tokens
    assert np.allclose(np.triu(rollout[0], 1), 0.0)   # causal: nothing rolls back onto later tokens


def test_rollout_of_chosen_layers_and_of_a_dict():
    cap = _gpt_capture()
    first = cap.attention_layers[0]
    one = attribution.attention_rollout(cap, layers=[first])
    np.testing.assert_allclose(one, attribution.residual_corrected(np.asarray(cap.attention_weights[first], np.float64)))
    np.testing.assert_allclose(attribution.attention_rollout(dict(cap.attention_weights)),
                               attribution.attention_rollout(cap))


def test_rollout_errors_name_what_is_missing():
    with pytest.raises(ShapeError, match="blocks.9.attn"):
        attribution.attention_rollout(_gpt_capture(1), layers=["blocks.9.attn"])
    with pytest.raises(ShapeError, match=r"\(B, H, T, T\)"):
        attribution.attention_rollout({"x": np.ones((2, 3, 4))})


# ------------------------------------------------------------------ gradient methods, on the token embeddings

def _logit(n_layers=2):
    """A float64 GPT, a 5-token prompt, and f = the next-token logit of token 7 at the last position."""
    tga.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, seq_len=6, d_model=16, n_heads=2, n_layers=n_layers, dropout=0.0)).double()
    ids = np.array([[1, 2, 3, 4, 5]])
    f = attribution.logit_of(model, ids, position=4, token=7)
    return model, ids, f, attribution.token_embeddings(model, ids)


def _value(f, x):
    return float(f(tga.Tensor(x, dtype="float64")).numpy())


def test_passing_the_lookup_as_embeddings_changes_nothing():
    model, ids, _, x = _logit()
    np.testing.assert_array_equal(model(ids).numpy(), model(ids, token_embeddings=tga.Tensor(x, dtype="float64")).numpy())
    with pytest.raises(ShapeError, match=r"expected \(1, 5, 16\)"):
        model(ids, token_embeddings=tga.Tensor(np.zeros((1, 4, 16))))


def test_gradient_x_input_equals_a_finite_difference_along_each_tokens_own_embedding():
    _, _, f, x = _logit()
    attr, h = attribution.gradient_x_input(f, x), 1e-5
    for t in range(x.shape[1]):
        step = np.zeros_like(x)
        step[0, t] = h * x[0, t]   # d/dh f(x + h x_t e_t) at 0 = sum_d x_td df/dx_td
        fd = (_value(f, x + step) - _value(f, x - step)) / (2 * h)
        assert attr[t] == pytest.approx(fd, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("baseline", ["zeros", "one embedding"])
def test_integrated_gradients_sum_to_f_x_minus_f_baseline_and_converge(baseline):
    model, _, f, x = _logit()
    b = None if baseline == "zeros" else model.tok_emb.weight.numpy()[0]   # token 0 at every position
    gap = _value(f, x) - _value(f, np.zeros_like(x) if b is None else np.broadcast_to(b, x.shape).copy())
    errors = [abs(attribution.integrated_gradients(f, x, baseline=b, steps=s).sum() - gap) for s in (2, 8, 32)]
    assert errors[-1] < 1e-3 * abs(gap)
    # the trapezoid's error shrinks about as 1/steps^2: 4x the steps, well over 4x smaller
    assert errors[0] > 4 * errors[1] and errors[1] > 4 * errors[2]


def test_integrated_gradients_with_one_step_is_the_trapezoid_of_the_two_end_gradients():
    _, _, f, x = _logit()
    g = [attribution._gradient(f, a * x)[1] for a in (0.0, 1.0)]
    np.testing.assert_allclose(attribution.integrated_gradients(f, x, steps=1), (x * (g[0] + g[1]) / 2).sum(-1)[0])


def test_a_filled_mask_logit_of_the_masked_lm_and_a_side_by_side_plot(tmp_path):
    from tinygrad_attn import plots
    from tinygrad_attn.models import MaskedLM, MLMConfig
    tga.manual_seed(0)
    model = MaskedLM(MLMConfig(vocab_size=12, pad_id=0, max_len=8, d_model=16, n_heads=2, n_layers=2)).double()
    ids = np.array([[3, 4, 1, 5, 6]])   # position 2 stands for [MASK]
    f = attribution.logit_of(model, ids, position=2, token=7)
    x = attribution.token_embeddings(model, ids)
    ig = attribution.integrated_gradients(f, x, steps=32)
    assert ig.sum() == pytest.approx(_value(f, x) - _value(f, np.zeros_like(x)), rel=1e-3)
    with inspect.capture(model) as cap:
        model(ids)
    methods = {"grad x input": attribution.gradient_x_input(f, x), "integrated gradients": ig,
               "rollout": attribution.attention_rollout(cap)[0, 2]}
    with pytest.raises(ValueError, match=r"'bad' has shape \(2,\), expected one score per token \(5,\)"):
        plots.plot_attributions({"bad": [1.0, 2.0]}, list("abcde"), tmp_path / "bad.png")
    pytest.importorskip("matplotlib")
    assert plots.plot_attributions(methods, list("ab?de"), tmp_path / "a.png", dpi=50).stat().st_size > 1000
