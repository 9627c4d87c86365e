"""tinygrad_attn.inspect, plots and representations: capture changes nothing, captured gradients are right, plots are PNGs."""
import struct
import sys

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import inspect, nn
from tinygrad_attn.tokenizers import BPETokenizer, CharTokenizer
from tinygrad_attn.models import GPT, GPTConfig, MaskedLM, MLMConfig
from tinygrad_attn.models.config import MLM_SPECIALS


def _gpt(device, dropout=0.0):
    tga.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, seq_len=8, d_model=16, n_heads=2, n_layers=2, dropout=dropout)).to(device)


def _batch():
    ids = np.random.default_rng(0).integers(0, 11, (3, 8))
    return ids, np.roll(ids, 1, axis=1)


def _grads(model):
    return {n: p.grad.numpy().copy() for n, p in model.named_parameters()}


def _mlm(text="the cat sat on the mat. a dog ran."):
    tok = CharTokenizer.train(text, specials=MLM_SPECIALS)
    tga.manual_seed(0)
    cfg = MLMConfig(vocab_size=tok.vocab_size, pad_id=tok.token_to_id("[PAD]"), max_len=48, d_model=16,
                    n_heads=2, n_layers=2)
    return MaskedLM(cfg), tok


# ------------------------------------------------------------------ capture changes nothing

def _watch_attention(model):
    """Keep every attention layer's weights, as a capture does: attention then runs step by step."""
    for m in model.modules():
        if isinstance(m, nn.MultiHeadAttention):
            m.keep_weights = True


def _without_then_with_capture(model):
    """The same seeded step run plainly, then inside a capture: (plain loss, plain grads, loss, grads, capture)."""
    ids, tgt = _batch()
    tga.manual_seed(5)
    plain_loss = model.loss(ids, tgt)
    plain_loss.backward()
    plain = _grads(model)
    model.zero_grad()
    tga.manual_seed(5)
    with inspect.capture(model) as cap:
        loss = model.loss(ids, tgt)
        loss.backward()
    return plain_loss, plain, loss, _grads(model), cap


def test_capture_leaves_loss_and_every_gradient_bit_identical(device):
    model = _gpt(device, dropout=0.1)   # dropout too: the capture must not draw random numbers
    # a capture watches attention, which then runs step by step: compare with that path
    _watch_attention(model)
    plain_loss, plain, loss, grads, cap = _without_then_with_capture(model)
    assert loss.numpy().tobytes() == plain_loss.numpy().tobytes()
    for name, g in grads.items():
        assert np.array_equal(g, plain[name]), name
    assert set(cap.attention_weights) == {"blocks.0.attn", "blocks.1.attn"}
    assert cap.attention_weights["blocks.0.attn"].shape == (3, 2, 8, 8)
    assert {k: len(v) for k, v in cap.qkv_grads.items()} == {"blocks.0.attn": 3, "blocks.1.attn": 3}
    for name, g in cap.param_grads.items():   # the capture's copies are the gradients themselves
        assert np.array_equal(g, plain[name]), name


def test_capture_agrees_with_the_fused_attention_path_to_rounding(device):
    fused_loss, fused, loss, grads, _ = _without_then_with_capture(_gpt(device, dropout=0.1))
    np.testing.assert_allclose(loss.numpy(), fused_loss.numpy(), rtol=1e-6)
    for name, g in grads.items():
        np.testing.assert_allclose(g, fused[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_capture_restores_every_module_and_parameter():
    model = _gpt("cpu")
    mine = lambda s: None  # noqa: E731 (a user's own callback)
    model.blocks[0].attn.on_scores = mine
    model.blocks[1].attn.keep_weights = True
    with inspect.capture(model):
        with inspect.capture(model, layers=["blocks.1.mlp"]):   # nested captures unwind in order
            model.loss(*_batch()).backward()
    assert model.blocks[0].attn.on_scores is mine
    assert model.blocks[1].attn.keep_weights is True
    for m in model.modules():
        assert "forward" not in m.__dict__
        if isinstance(m, nn.MultiHeadAttention):
            assert m.on_qkv is None and m.on_weights is None and m.on_heads is None
    assert all(p._hooks is None for p in model.parameters())


def test_user_callbacks_keep_running_and_nested_captures_both_record():
    model = _gpt("cpu")
    seen = []
    model.blocks[0].attn.on_weights = lambda w: seen.append(w.shape)
    with inspect.capture(model) as outer, inspect.capture(model) as inner:
        model.loss(*_batch()).backward()
    assert seen == [(3, 2, 8, 8)]
    for layer in ("blocks.0.attn", "blocks.1.attn"):
        assert np.array_equal(outer.attention_weights[layer], inner.attention_weights[layer])
        assert np.array_equal(outer.score_grads[layer], inner.score_grads[layer])


def test_disabled_capture_and_no_grad_forward():
    model = _gpt("cpu")
    with inspect.capture(model, enabled=False) as cap:
        model.loss(*_batch())
    assert cap.attention_weights == {} and "forward" not in model.blocks[0].__dict__
    with inspect.capture(model) as cap, tga.no_grad():
        model(_batch()[0])
    assert cap.attention_weights["blocks.1.attn"].shape == (3, 2, 8, 8)
    assert cap.score_grads == {} and cap.qkv_grads == {}
    with pytest.raises(KeyError, match="no sub-module 'blocks.7'"):
        with inspect.capture(model, layers=["blocks.7"]):
            pass


def test_param_grads_hold_only_the_backward_inside_the_capture():
    model = _gpt("cpu")
    model.loss(*_batch()).backward()           # an earlier gradient left in .grad
    with inspect.capture(model) as cap:
        model.loss(*_batch()).backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(2 * cap.param_grads[name], p.grad.numpy(), rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------ captured gradients are right

def _attention64(n_heads=2):
    tga.manual_seed(3)
    attn = nn.MultiHeadAttention(8, n_heads, init_std=0.5).double()
    x = tga.tensor(np.random.default_rng(1).standard_normal((1, 4, 8)))
    cot = np.random.default_rng(2).standard_normal((1, 4, 8))
    return attn, x, cot


def test_score_grads_match_finite_differences_through_an_additive_mask():
    # scores + additive mask: d loss / d mask[b,h,i,j] IS d loss / d scores[b,h,i,j]
    attn, x, cot = _attention64()
    real = np.array([[True, True, True, False]])          # the last key is padding
    base = np.zeros((1, 2, 4, 4))

    def loss(extra):
        y = attn(x, key_padding_mask=real, attn_mask=base + extra)
        return float((y.numpy() * cot).sum())

    with inspect.capture(attn) as cap:
        y = attn(x, key_padding_mask=real, attn_mask=base)
        (y * tga.tensor(cot)).sum().backward()
    got = cap.score_grads["MultiHeadAttention"]
    numeric, eps = np.zeros_like(base), 1e-6
    for idx in np.ndindex(base.shape):
        e = np.zeros_like(base)
        e[idx] = eps
        numeric[idx] = (loss(e) - loss(-e)) / (2 * eps)
    np.testing.assert_allclose(got, numeric, atol=1e-8)
    assert np.all(got[..., 3] == 0.0)                      # a masked key: exactly zero
    assert np.abs(got[..., :3]).max() > 1e-3


def test_qkv_grads_match_finite_differences_of_the_projection_bias():
    # q, k, v = x W^T + b split into heads: d loss / d b[s*d + h*dh + j] = sum over batch and time of dq/dk/dv[h, :, j]
    attn, x, cot = _attention64()
    with inspect.capture(attn) as cap:
        (attn(x, is_causal=True) * tga.tensor(cot)).sum().backward()
    dq, dk, dv = cap.qkv_grads["MultiHeadAttention"]
    from_capture = np.concatenate([g.sum(axis=(0, 2)).reshape(-1) for g in (dq, dk, dv)])
    bias, eps = attn.qkv.bias, 1e-6
    numeric = np.zeros(bias.shape)
    for i in range(bias.shape[0]):
        values = []
        for sign in (1, -1):
            bias.data[i] += sign * eps
            values.append(float((attn(x, is_causal=True).numpy() * cot).sum()))
            bias.data[i] -= sign * eps
        numeric[i] = (values[0] - values[1]) / (2 * eps)
    np.testing.assert_allclose(from_capture, numeric, atol=1e-8)


def test_captured_values_satisfy_the_attention_formulas():
    attn, x, cot = _attention64()
    with inspect.capture(attn) as cap:
        (attn(x) * tga.tensor(cot)).sum().backward()
    name = "MultiHeadAttention"
    q, k, v = cap.qkv[name]
    s = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
    np.testing.assert_allclose(cap.attention_scores[name], s, atol=1e-12)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    np.testing.assert_allclose(cap.attention_weights[name], w, atol=1e-12)
    dw, ds = cap.weight_grads[name], cap.score_grads[name]
    np.testing.assert_allclose(ds, w * (dw - (dw * w).sum(-1, keepdims=True)), atol=1e-12)
    dq, dk, _ = cap.qkv_grads[name]
    np.testing.assert_allclose(dq, ds @ k / np.sqrt(q.shape[-1]), atol=1e-12)
    np.testing.assert_allclose(dk, ds.swapaxes(-1, -2) @ q / np.sqrt(q.shape[-1]), atol=1e-12)


def test_per_head_outputs_and_merged_heads_and_their_gradients():
    attn, x, cot = _attention64()
    with inspect.capture(attn) as cap:
        y = attn(x)
        (y * tga.tensor(cot)).sum().backward()
    name = "MultiHeadAttention"
    w, (q, k, v) = cap.attention_weights[name], cap.qkv[name]
    heads, merged = cap.head_outputs[name], cap.merged_heads[name]
    B, H, T, dh = heads.shape
    np.testing.assert_allclose(heads, w @ v, atol=1e-12)                              # each head: weights @ v
    np.testing.assert_array_equal(merged, heads.transpose(0, 2, 1, 3).reshape(B, T, H * dh))   # side by side
    W, b = attn.out_proj.weight.numpy(), attn.out_proj.bias.numpy()
    np.testing.assert_allclose(merged @ W.T + b, y.numpy(), atol=1e-12)              # then the output projection
    d_merged, d_heads = cap.merged_head_grads[name], cap.head_output_grads[name]
    np.testing.assert_allclose(d_merged, cot @ W, atol=1e-12)                          # dL/dmerged = dL/dy W
    np.testing.assert_allclose(d_heads, d_merged.reshape(B, T, H, dh).transpose(0, 2, 1, 3), atol=1e-12)
    np.testing.assert_allclose(cap.weight_grads[name], d_heads @ v.swapaxes(-1, -2), atol=1e-12)


def test_layer_outputs_are_the_encoder_hidden_states():
    model, tok = _mlm()
    ids = np.array([tok.encode("the cat sat"), tok.encode("a dog ran..")])
    mask = np.ones_like(ids, dtype=bool)
    mask[1, -2:] = False
    _watch_attention(model)  # the path a capture runs
    states = [s.numpy() for s in model.hidden_states(ids, mask)]
    with inspect.capture(model, layers=[nn.TransformerBlock, "tok_emb"]) as cap:
        model.hidden_states(ids, mask)[-1].sum().backward()
    assert cap.output_layers == ["tok_emb", "blocks.0", "blocks.1"]
    for i in range(2):
        np.testing.assert_array_equal(cap.layer_outputs[f"blocks.{i}"], states[i + 1])
    np.testing.assert_array_equal(cap.output_grads["blocks.1"], np.ones_like(states[2]))   # d sum / d output
    assert set(cap.output_grad_norms()) == {"tok_emb", "blocks.0", "blocks.1"}


# ------------------------------------------------------------------ gradient norms add up

def test_grad_norms_per_parameter_layer_and_head_add_up():
    model = _gpt("cpu")
    with inspect.capture(model) as cap:
        model.loss(*_batch()).backward()
    grads = {n: p.grad.numpy().astype(np.float64) for n, p in model.named_parameters()}
    norms = cap.grad_norms()
    for n, g in grads.items():
        assert norms[n] == pytest.approx(np.linalg.norm(g), rel=1e-12)
    total_sq = sum((g ** 2).sum() for g in grads.values())
    layers = cap.layer_grad_norms()
    assert list(layers) == ["tok_emb", "pos_emb", "blocks.0", "blocks.1", "ln_f"]
    assert sum(v ** 2 for v in layers.values()) == pytest.approx(total_sq, rel=1e-10)
    heads = cap.head_grad_norms(by_part=True)
    for i in range(2):
        p = f"blocks.{i}.attn"
        owned = sum((grads[f"{p}.{n}"] ** 2).sum() for n in ("qkv.weight", "qkv.bias", "out_proj.weight"))
        assert (heads[p]["total"] ** 2).sum() == pytest.approx(owned, rel=1e-10)
        q_sq = (grads[f"{p}.qkv.weight"][:16] ** 2).sum() + (grads[f"{p}.qkv.bias"][:16] ** 2).sum()
        assert (heads[p]["q"] ** 2).sum() == pytest.approx(q_sq, rel=1e-10)
        np.testing.assert_array_equal(cap.head_grad_norms()[p], heads[p]["total"])
    assert inspect.head_grad_norms(model).keys() == heads.keys()   # also without a capture, from .grad


def test_head_grad_norms_put_each_slice_under_its_own_head():
    # head 1's output never reaches the loss (its columns of W_out are 0): its q, k, v rows get no gradient
    attn, x, cot = _attention64()
    attn.out_proj.weight.data[:, 4:] = 0.0
    (attn(x) * tga.tensor(cot)).sum().backward()
    parts = inspect.head_grad_norms(attn, by_part=True)["MultiHeadAttention"]
    for part in ("q", "k", "v"):
        assert parts[part][1] == 0.0 and parts[part][0] > 1e-3
    assert parts["out"][1] > 0   # its columns of W_out still get a gradient (they read head 1's output)


# ------------------------------------------------------------------ plots

def _png_size(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _have_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def test_plots_write_pngs_of_the_requested_size(tmp_path):
    from tinygrad_attn import plots
    model = _gpt("cpu")
    with inspect.capture(model) as cap:
        model.loss(*_batch()).backward()
    log = tmp_path / "run"
    log.mkdir()
    (log / "metrics.jsonl").write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.1, "eval_loss": 2.3}\n')
    jobs = [lambda p: plots.plot_attention(cap.attention_weights["blocks.0.attn"], list("abcdefgh"), p,
                                           figsize=(4, 3), dpi=50),
            lambda p: plots.plot_grad_norms(cap.layer_grad_norms(), p, figsize=(4, 3), dpi=50),
            lambda p: plots.plot_head_grad_norms(cap.head_grad_norms(), p, figsize=(4, 3), dpi=50),
            lambda p: plots.plot_head_grad_norms({"before": [0.2, 0.1], "after": [0.006, 0.01]}, p, figsize=(4, 3),
                                                 dpi=50, log=True),
            lambda p: plots.plot_matrices({"signed": np.array([[-1.0, 2.0], [0.5, 0.0]]), "weights": np.eye(2)}, p,
                                          title="two panels", row_labels=["a", "b"], figsize=(4, 3), dpi=50),
            lambda p: plots.plot_loss_curve(log, p, figsize=(4, 3), dpi=50),
            lambda p: plots.plot_curves([1, 2], {"a": [1.0, 0.5]}, p, figsize=(4, 3), dpi=50),
            lambda p: plots.plot_attributions({"grad x input": [0.1, -0.2], "rollout": [0.7, 0.3]}, ["a", "b"], p,
                                              figsize=(4, 3), dpi=50)]
    for i, job in enumerate(jobs):
        path = tmp_path / "sub" / f"{i}.png"
        if _have_matplotlib():
            assert job(path) == path
            assert _png_size(path) == (200, 150) and path.stat().st_size > 1000
        else:   # without the extra installed the same calls must say how to get it
            with pytest.raises(ImportError, match=r"pip install 'tinygrad_attn\[plot\]'"):
                job(path)


def test_plots_without_matplotlib_say_how_to_install_it(tmp_path, monkeypatch):
    from tinygrad_attn import plots
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)    # `import matplotlib` now raises ImportError
    with pytest.raises(ImportError, match=r"needs matplotlib.*pip install 'tinygrad_attn\[plot\]'"):
        plots.plot_attention(np.eye(3), path=tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_plot_arguments_are_checked(tmp_path):
    from tinygrad_attn import plots
    with pytest.raises(ValueError, match="3 tokens for 4 keys"):
        plots.plot_attention(np.eye(4), ["a", "b", "c"], tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        plots.plot_loss_curve(tmp_path, tmp_path / "l.png")


# ------------------------------------------------------------------ representations

def test_contextual_embeddings_are_the_encoder_states_and_embed_agrees():
    from tinygrad_attn.representations import contextual_embeddings, document_embedding
    model, tok = _mlm()
    model.train()
    rep = contextual_embeddings(model, tok, "the cat sat on the mat.")
    assert model.training                                  # mode restored
    ids = np.array([rep.ids])
    assert rep.tokens[0] == "[CLS]" and rep.tokens[-1] == "[SEP]" and rep.layers.shape == (3, len(rep.ids), 16)
    model.eval()
    for got, want in zip(rep.layers, model.hidden_states(ids)):
        np.testing.assert_allclose(got, want.numpy()[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rep.final, model.encode(ids).numpy()[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(rep.static, model.tok_emb.weight.numpy()[rep.ids])
    for pooling in ("mean", "cls"):
        np.testing.assert_allclose(document_embedding(model, tok, "the cat sat on the mat.", pooling),
                                   model.embed("the cat sat on the mat.", tok, pooling), rtol=1e-5, atol=1e-6)
    assert document_embedding(model, tok, ["a dog", "the cat ran"]).shape == (2, 16)


def test_a_word_keeps_its_static_vector_but_not_its_contextual_one():
    from tinygrad_attn.representations import contextual_embeddings, cosine_similarity
    model, tok = _mlm()
    a = contextual_embeddings(model, tok, "the cat sat.")
    b = contextual_embeddings(model, tok, "a dog sat.")      # "sat" at different positions and contexts
    assert a.word_positions("sat").tolist() == [9, 10, 11] and a.word_positions("t", occurrence=1).tolist() == [7]
    np.testing.assert_array_equal(a.static_word("sat"), b.static_word("sat"))
    assert cosine_similarity(a.word("sat", -1), b.word("sat", -1)) < 1 - 1e-6
    sim = a.layer_similarity()
    assert sim.shape == (3, 3) and np.allclose(np.diag(sim), 1.0)
    with pytest.raises(ValueError, match="occurs fewer than 1 times"):
        a.word("zebra")


def test_token_offsets_follow_bpe_tokens():
    from tinygrad_attn.representations import contextual_embeddings
    text = "the cat sat on the mat. the cat sat on the mat."
    tok = BPETokenizer.train(text * 5, 256 + 12 + len(MLM_SPECIALS), specials=MLM_SPECIALS)
    tga.manual_seed(0)
    model = MaskedLM(MLMConfig(vocab_size=tok.vocab_size, pad_id=tok.token_to_id("[PAD]"), max_len=32, d_model=8,
                               n_heads=2, n_layers=1))
    rep = contextual_embeddings(model, tok, "the mat sat")
    pieces = [rep.text[s:e] for s, e in rep.offsets if s >= 0]
    assert "".join(pieces) == "the mat sat"
    covering = "".join(rep.tokens[i] for i in rep.word_positions("mat"))
    assert covering.strip() == "mat"        # " mat" or "mat", or its pieces: exactly the tokens of that word
