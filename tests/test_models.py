"""The GPT decoder and the masked-LM encoder: causality, KV cache, sampling, padding, MLM head and tools."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.tokenizers import CharTokenizer
from tinygrad_attn.models import GPT, GPTConfig, MaskedLM, MLMConfig, TrainConfig, get_preset, sample_token
from tinygrad_attn.models.config import MLM_SPECIALS

V = 40


def tiny_gpt(device="cpu", seq_len=16, dropout=0.0):
    tga.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, seq_len=seq_len, d_model=32, n_heads=4, n_layers=2, dropout=dropout)).to(device)


def tiny_mlm(device="cpu", pad_id=0):
    tga.manual_seed(0)
    return MaskedLM(MLMConfig(vocab_size=V, pad_id=pad_id, max_len=16, d_model=32, n_heads=4, n_layers=2)).to(device)


def ids(shape, seed=0, low=0):
    return np.random.default_rng(seed).integers(low, V, shape)


# ---------------------------------------------------------------- configs

def test_config_round_trip_and_presets():
    for kind in ("gpt", "mlm"):
        for name in ("tiny", "study", "small", "base"):
            p = get_preset(kind, name)
            cls = type(p.model)
            assert cls.from_dict(p.model.to_dict()) == p.model
            assert TrainConfig.from_dict(p.train.to_dict()) == p.train
    a = get_preset("gpt", "tiny")
    a.model.d_model = 999                       # presets hand out copies
    assert get_preset("gpt", "tiny").model.d_model != 999
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("gpt", "huge")


def test_gpt_needs_vocab_size():
    with pytest.raises(ValueError, match="vocab_size"):
        GPT(GPTConfig())


def _real_fields(config):
    """The float-valued settings of a config (the ones a NaN could reach)."""
    return [name for name, value in config.to_dict().items() if isinstance(value, float)]


@pytest.mark.parametrize("kind", ["gpt", "mlm"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_every_real_setting_refuses_nan_and_infinities(kind, bad):
    preset = get_preset(kind, "tiny")
    preset.model.vocab_size, preset.model.pad_id = 40, (0 if kind == "mlm" else None)
    configs = [preset.model.check(), preset.train.check()]
    names = [(config, name) for config in configs for name in _real_fields(config)]
    assert {"dropout", "lr", "min_lr_ratio", "weight_decay", "grad_clip"} <= {name for _, name in names}
    for config, name in names:
        if bad == float("inf") and name == "grad_clip":
            continue                                      # an infinite clip is "do not clip"
        with pytest.raises(tga.ConfigError, match=name):
            config.replace(**{name: bad}).check()
    with pytest.raises(tga.ConfigError, match="betas"):
        preset.train.replace(betas=(0.9, bad)).check()


# ---------------------------------------------------------------- decoder

def test_gpt_logits_shape_and_tied_head(device):
    model = tiny_gpt(device)
    x = ids((2, 16))
    assert model(x).shape == (2, 16, V)
    # tied: the only (V, d) parameter is the token embedding, and the head reads it
    vd = [n for n, p in model.named_parameters() if p.shape == (V, 32)]
    assert vd == ["tok_emb.weight"]
    model.loss(x, ids((2, 16), 1)).backward()
    assert np.abs(model.tok_emb.weight.grad.numpy()).sum() > 0


def test_gpt_is_causal(device):
    """Changing tokens after position t never changes the logits at positions <= t."""
    model = tiny_gpt(device)
    x = ids((2, 16))
    base = model(x).numpy()
    for t in (0, 5, 14):
        y = x.copy()
        y[:, t + 1:] = (y[:, t + 1:] + 7) % V
        changed = model(y).numpy()
        np.testing.assert_allclose(changed[:, :t + 1], base[:, :t + 1], rtol=0, atol=1e-6)
        assert not np.allclose(changed[:, t + 1:], base[:, t + 1:])


def test_gpt_hidden_states_are_the_residual_stream_the_logits_read():
    model = tiny_gpt()
    x = ids((2, 16))
    states = model.hidden_states(x)
    assert len(states) == 1 + len(model.blocks) and all(h.shape == (2, 16, 32) for h in states)
    np.testing.assert_allclose((model.ln_f(states[-1]) @ model.tok_emb.weight.T).numpy(), model(x).numpy(),
                               rtol=0, atol=1e-6)
    # causal: later tokens leave earlier positions of every layer unchanged
    y = x.copy()
    y[:, 8:] = (y[:, 8:] + 3) % V
    for a, b in zip(states, model.hidden_states(y)):
        np.testing.assert_array_equal(a.numpy()[:, :8], b.numpy()[:, :8])
    # the mask hides keys: what hidden positions 3, 4 hold cannot reach positions 5.. (it does without the mask)
    real = np.ones((2, 16), bool)
    real[1, 3:5] = False
    z = x.copy()
    z[1, 3:5] = (z[1, 3:5] + 5) % V
    masked = [model.hidden_states(t, real)[-1].numpy()[1, 5:] for t in (x, z)]
    np.testing.assert_allclose(masked[0], masked[1], rtol=0, atol=1e-6)
    assert not np.allclose(model.hidden_states(z)[-1].numpy()[1, 5:], states[-1].numpy()[1, 5:])
    with pytest.raises(ValueError, match="attention_mask"):
        model.hidden_states(x, real[:, :4])


def test_gpt_gradient_of_past_logit_ignores_future_embeddings():
    model = tiny_gpt()
    x = ids((1, 10))
    emb = model.tok_emb(x)                      # the same computation as forward, from the embeddings on
    emb.retain_grad()
    h = model.drop(emb + model.pos_emb(10))
    for block in model.blocks:
        h = block(h, is_causal=True)
    logits = model.ln_f(h) @ model.tok_emb.weight.T
    logits[0, 4].sum().backward()
    g = np.abs(emb.grad.numpy()[0]).sum(-1)
    assert (g[:5] > 0).all() and (g[5:] == 0).all()


def test_cached_forward_matches_full_forward(device):
    """Prefill 5 tokens, then feed one at a time through the cache: logits equal the full pass."""
    from tinygrad_attn import nn
    model = tiny_gpt(device).eval()
    x = ids((2, 12))
    full = model(x).numpy()
    cache = nn.KVCache(len(model.blocks))
    with tga.no_grad():
        parts = [model(x[:, :5], kv_cache=cache).numpy()]
        for t in range(5, 12):
            parts.append(model(x[:, t:t + 1], kv_cache=cache).numpy())
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="context window"):
        model(x[:, :5], kv_cache=cache)         # 12 + 5 > 16


@pytest.mark.parametrize("sampling", [dict(temperature=1.0), dict(temperature=0.7, top_k=5),
                                      dict(temperature=1.2, top_p=0.9), dict(temperature=0.0)])
def test_kv_cache_generation_equals_recomputation(device, sampling):
    """Same seed -> same tokens with and without the cache, past the end of the window (16) too."""
    model = tiny_gpt(device)
    prompt = [3, 1, 4, 1, 5]
    a, la = model.generate(prompt, 40, seed=7, use_cache=True, return_logits=True, **sampling)
    b, lb = model.generate(prompt, 40, seed=7, use_cache=False, return_logits=True, **sampling)
    assert a == b and len(a) == 45 and a[:5] == prompt
    np.testing.assert_allclose(la, lb, rtol=1e-4, atol=1e-4)
    assert model.training                       # generate restores the mode


def test_uncached_logits_are_a_plain_forward_over_the_window():
    """Independent of generate's bookkeeping: step k's logits = forward(window)[-1]."""
    model = tiny_gpt(seq_len=8).eval()
    out, logits = model.generate([1, 2, 3], 12, seed=0, return_logits=True)
    for k in range(12):
        n = 3 + k                                # tokens known before step k
        # reproduce the window rule by hand: stays at 0 until full, then keeps the last 6 (8 - 8//4)
        starts = [0]
        for m in range(4, n + 1):
            s = starts[-1]
            starts.append(s if m - s <= 8 else m - 6)
        start = starts[-1]
        with tga.no_grad():
            ref = model(np.array([out[start:n]])).numpy()[0, -1]
        np.testing.assert_allclose(logits[k], ref, rtol=1e-5, atol=1e-5)


def test_generate_is_seeded_and_greedy_is_argmax():
    model = tiny_gpt()
    assert model.generate([1], 10, seed=3) == model.generate([1], 10, seed=3)
    greedy, logits = model.generate([1, 2], 6, temperature=0, return_logits=True)
    assert greedy[2:] == [int(np.argmax(row)) for row in logits]
    assert model.generate([1, 2], 6, top_k=1, seed=5) == greedy
    with pytest.raises(ValueError, match="at least one token"):
        model.generate([], 3)


def test_sample_token_respects_top_k_and_top_p():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([0.5, 0.25, 0.15, 0.07, 0.03]))
    draws = {sample_token(logits, rng, top_k=2) for _ in range(300)}
    assert draws == {0, 1}
    draws = {sample_token(logits, rng, top_p=0.85) for _ in range(300)}   # 0.5+0.25 < 0.85 <= 0.9
    assert draws == {0, 1, 2}
    counts = np.bincount([sample_token(logits, rng) for _ in range(4000)], minlength=5) / 4000
    np.testing.assert_allclose(counts, np.exp(logits), atol=0.03)


@pytest.mark.parametrize("setting", [dict(temperature=float("nan")), dict(temperature=-0.5),
                                     dict(top_p=float("nan")), dict(top_p=0.0), dict(top_p=1.5)])
def test_sample_token_refuses_a_temperature_or_top_p_out_of_range(setting):
    name = next(iter(setting))
    with pytest.raises(ValueError, match=name):
        sample_token(np.zeros(4), np.random.default_rng(0), **setting)


@pytest.mark.parametrize("mode", [False, True])
def test_generate_and_embed_leave_the_model_in_the_mode_they_found(mode):
    model = tiny_gpt(dropout=0.1)
    model.train(mode)
    model.generate([1, 2, 3], 3, seed=0)
    assert all(m.training == mode for m in model.modules())
    encoder = tiny_mlm()
    encoder.train(mode)
    encoder.embed(ids((5,), low=1))
    assert all(m.training == mode for m in encoder.modules())


# ---------------------------------------------------------------- encoder

def test_mlm_is_bidirectional_and_ignores_padding(device):
    model = tiny_mlm(device).eval()
    x = ids((2, 12), low=1)
    mask = np.ones((2, 12), bool)
    base = model(x, mask).numpy()
    y = x.copy()
    y[:, -1] = (y[:, -1] % (V - 1)) + 1 if y[0, -1] != V - 1 else 1
    assert not np.allclose(model(y, mask).numpy()[:, 0], base[:, 0])   # the future is visible
    # pad the batch to 16 with junk ids: real positions must not move
    padded = np.concatenate([x, ids((2, 4), 5)], axis=1)
    pmask = np.concatenate([mask, np.zeros((2, 4), bool)], axis=1)
    np.testing.assert_allclose(model(padded, pmask).numpy()[:, :12], base, rtol=1e-5, atol=1e-5)


def test_mlm_loss_counts_only_masked_positions():
    model = tiny_mlm()
    x = ids((2, 10), low=1)
    mask = np.ones((2, 10), bool)
    mask[1, 7:] = False
    labels = np.full((2, 10), -100)
    labels[0, [1, 4]] = [5, 6]
    labels[1, 2] = 9
    loss = model.loss(x, labels, mask).item()
    logits = model(x, mask).numpy().astype(np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    expected = -np.mean([logp[0, 1, 5], logp[0, 4, 6], logp[1, 2, 9]])   # NumPy, not our cross_entropy
    assert loss == pytest.approx(expected, rel=1e-5)
    full = F.cross_entropy(model(x, mask), labels, ignore_index=-100).item()
    assert loss == pytest.approx(full, rel=1e-6)


def _char_tokenizer():
    return CharTokenizer.train("abcdefghijklmnopqrstuvwxyz ,.", specials=MLM_SPECIALS)


def test_fill_mask_embed_and_hidden_states():
    tok = _char_tokenizer()
    tga.manual_seed(0)
    model = MaskedLM(MLMConfig(vocab_size=tok.vocab_size, pad_id=tok.token_to_id("[PAD]"), max_len=32,
                               d_model=32, n_heads=2, n_layers=3))
    out = model.fill_mask("to be or not to [MASK][MASK]", tok, top_k=4)
    assert len(out) == 2
    for candidates in out:
        assert len(candidates) == 4
        probs = [p for _, p in candidates]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
        assert not any(t in MLM_SPECIALS for t, _ in candidates)
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        model.fill_mask("nothing here", tok)

    one = model.embed("hello world", tok)
    batch = model.embed(["hello world", "a much longer sentence than that"], tok)
    assert one.shape == (32,) and batch.shape == (2, 32)
    np.testing.assert_allclose(batch[0], one, rtol=1e-5, atol=1e-5)   # padding does not leak into the mean
    assert model.embed("hello world", tok, pooling="cls").shape == (32,)

    wrapped = np.array([model._wrap(tok, "hello")])
    states = model.hidden_states(wrapped, np.ones(wrapped.shape, bool))
    assert len(states) == 4 and all(s.shape == (1, 7, 32) for s in states)
    np.testing.assert_allclose(model.ln_f(states[-1]).numpy(), model.encode(wrapped).numpy(), rtol=1e-6)


def test_fill_mask_ranks_word_starts_with_the_models_own_probabilities():
    from tinygrad_attn.tokenizers import BPETokenizer
    tok = BPETokenizer.train("to be or not to be, that is the question. " * 30, vocab_size=290, specials=MLM_SPECIALS)
    tga.manual_seed(0)
    model = MaskedLM(MLMConfig(vocab_size=tok.vocab_size, pad_id=tok.token_to_id("[PAD]"), max_len=32,
                               d_model=32, n_heads=2, n_layers=1))
    every = dict(model.fill_mask("[MASK] be or not to [MASK].", tok, top_k=tok.vocab_size, words_only=False)[1])
    first, second = model.fill_mask("[MASK] be or not to [MASK].", tok, top_k=8)
    assert all(t[:1].isalpha() for t, _ in first)                         # the sentence's first word: no space
    assert all(t[:1] == " " and t[1:2].isalpha() for t, _ in second)     # after a space: " be", " that", ...
    for t, p in second:
        assert p == every[t]                                              # probabilities are not renormalised
    assert any(not (t[:1] == " " and t[1:2].isalpha()) for t in list(every)[:8])   # unrestricted: other pieces too
    only = model.fill_mask("[MASK] be or not to [MASK].", tok, top_k=3, words={" be", " that", "be"})[1]
    assert [t for t, _ in only] == sorted([" be", " that"], key=lambda t: -every[t])   # " be" and " that" only
