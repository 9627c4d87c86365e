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
