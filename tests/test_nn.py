"""nn.Module and the layers: registration, state_dict, devices, repr, init, and gradients by finite differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn import CheckpointError, nn, optim
from tinygrad_attn import functional as F
from tinygrad_attn.testing import arrays
from tinygrad_attn.testing import module_gradcheck


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4, bias=False)])
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.LayerNorm(4)})
        self.scale = nn.Parameter(tga.ones(4))
        self.register_buffer("offset", tga.zeros(4))
        self.register_buffer("scratch", tga.ones(3), persistent=False)
        self.drop = nn.Dropout(0.5)

    def forward(self, ids):
        h = self.emb(ids) * self.scale + self.offset
        for blk in self.blocks:
            h = blk(h).tanh()
        return self.heads["a"](self.heads["b"](self.drop(h)))


# ---------------------------------------------------------------- registration and state

def test_parameter_is_a_float_leaf_with_its_own_copy():
    data = np.arange(3)
    p = nn.Parameter(data)
    assert p.requires_grad and p.dtype == np.float32 and p.is_leaf
    p.data[0] = 7
    assert data[0] == 0
    assert isinstance(p, tga.Tensor) and "Parameter containing" in repr(p)


def test_registration_names_and_order():
    m = Tiny()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "emb.weight", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                     "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias"]
    assert [n for n, _ in m.named_buffers()] == ["offset", "scratch"]
    assert list(m.state_dict()) == names[:1] + ["offset"] + names[1:]  # non-persistent buffer left out
    assert [n for n, _ in m.named_modules()][:4] == ["", "emb", "blocks", "blocks.0"]
    assert len(list(m.children())) == 4
    assert m.get_submodule("heads.b") is m.heads["b"]
    assert m.num_parameters() == 1 * 4 + 40 + 20 + 16 + 10 + 8
    assert m.blocks[1].bias is None and len(m.blocks) == 2 and "a" in m.heads


def test_plain_lists_of_modules_are_refused_and_super_init_is_required():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(2, 2)]

    with pytest.raises(TypeError, match="ModuleList"):
        Bad()

    class Forgot(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Forgot()
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Parameter"):
        m.weight = tga.zeros(2, 2)
    m.note = [1, 2]  # ordinary attributes are fine
    assert m.note == [1, 2]


def test_module_list_and_dict_behave_like_containers():
    ml = nn.ModuleList([nn.ReLU(), nn.Linear(2, 3)])
    ml.insert(0, nn.Linear(3, 2))
    ml.append(nn.GELU())
    assert [type(m).__name__ for m in ml] == ["Linear", "ReLU", "Linear", "GELU"]
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    del ml[0]
    assert [n for n, _ in ml.named_parameters()] == ["1.weight", "1.bias"]
    md = nn.ModuleDict({"x": nn.Linear(1, 1)})
    md["y"] = nn.Linear(1, 2)
    assert list(md.keys()) == ["x", "y"] and md.num_parameters() == 2 + 4
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = tga.randn(5, 3)
    ref = np.maximum(x.numpy() @ seq[0].weight.numpy().T + seq[0].bias.numpy(), 0) @ seq[2].weight.numpy().T
    np.testing.assert_allclose(seq(x).numpy(), ref + seq[2].bias.numpy(), rtol=1e-5, atol=1e-6)


def test_tied_parameters_are_counted_once_but_saved_under_both_names():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 3)
            self.head = nn.Linear(3, 5, bias=False)
            self.head.weight = self.emb.weight

    m = Tied()
    assert [n for n, _ in m.named_parameters()] == ["emb.weight"]
    assert m.num_parameters() == 15
    assert list(m.state_dict()) == ["emb.weight", "head.weight"]


def test_state_dict_round_trip_copies_in_place():
    tga.manual_seed(1)
    a = Tiny()
    tga.manual_seed(2)
    b = Tiny()
    params_before = list(b.parameters())
    b.load_state_dict(a.state_dict())
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy(), err_msg=name)
    assert all(p is q for p, q in zip(params_before, b.parameters()))
    # arrays of another dtype are converted into the parameter's dtype
    b.load_state_dict({k: v.numpy().astype(np.float64) * 2 for k, v in a.state_dict().items()})
    assert b.scale.dtype == np.float32 and np.allclose(b.scale.numpy(), 2 * a.scale.numpy())


def test_load_state_dict_errors_name_every_problem_and_change_nothing():
    m = Tiny()
    before = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    state = {k: v.numpy() + 1 for k, v in m.state_dict().items()}
    del state["blocks.0.bias"]
    state["blocks.7.weight"] = np.zeros(3)
    state["heads.a.weight"] = np.zeros((3, 4))
    with pytest.raises(CheckpointError) as e:
        m.load_state_dict(state)
    msg = str(e.value)
    assert "missing 1: blocks.0.bias" in msg and "unexpected 1: blocks.7.weight" in msg
    assert "heads.a.weight: got (3, 4), expected (2, 4)" in msg
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    # non-strict: names may be missing/unexpected, but a wrong shape is still an error
    del state["heads.a.weight"]
    missing, unexpected = m.load_state_dict(state, strict=False)
    assert missing == ["blocks.0.bias", "heads.a.weight"] and unexpected == ["blocks.7.weight"]
    np.testing.assert_array_equal(m.scale.numpy(), before["scale"] + 1)


def test_repr_shows_nesting_and_parameter_counts():
    text = repr(nn.TransformerBlock(8, 2))
    assert text.startswith("TransformerBlock(  # 872 params")
    assert "(attn): MultiHeadAttention(d_model=8, n_heads=2, dropout=0.0  # 288 params" in text
    assert "(qkv): Linear(in_features=8, out_features=24, bias=True)  # 216 params" in text
    assert "(1): GELU(approximate='tanh')\n" in text


def test_train_eval_toggle_dropout_everywhere():
    m = Tiny()
    ids = tga.tensor([[1, 2, 3, 4]])
    assert m.training and m.drop.training
    assert not np.array_equal(m(ids).numpy(), m(ids).numpy())  # dropout draws differ
    m.eval()
    assert not any(sub.training for sub in m.modules())
    np.testing.assert_array_equal(m(ids).numpy(), m(ids).numpy())
    x = tga.randn(3, 7)
    assert m.drop(x) is x
    m.train()
    assert all(sub.training for sub in m.modules())


def test_zero_grad_apply_and_requires_grad():
    m = Tiny()
    m(tga.tensor([[1, 2]])).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Tiny" and seen.count("Linear") == 3
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_to_moves_in_place_and_keeps_optimizers_working(device):
    m = Tiny()
    params = list(m.parameters())
    opt = optim.SGD(m.parameters(), lr=0.1)
    assert m.to(device) is m
    assert all(p is q for p, q in zip(params, m.parameters()))
    assert all(t.device == device for t in list(m.parameters()) + list(m.buffers())) and m.device == device
    before = m.scale.numpy().copy()
    m(tga.tensor([[1, 2, 3]], device=device)).sum().backward()
    opt.step()
    assert not np.array_equal(before, m.scale.numpy())
    m.to("cpu")
    assert m.scale.device == "cpu" and m.scale is params[0]


def test_double_casts_parameters_and_buffers():
    m = Tiny().double()
    assert all(t.dtype == np.float64 for t in list(m.parameters()) + list(m.buffers()))
    assert m(tga.tensor([[1]])).dtype == np.float64


# ---------------------------------------------------------------- initialisation

def test_initialisation_follows_gpt2_practice_and_is_seeded():
    tga.manual_seed(3)
    lin = nn.Linear(256, 512)
    assert abs(lin.weight.numpy().std() - 0.02) < 0.001 and abs(lin.weight.numpy().mean()) < 0.001
    assert not lin.bias.numpy().any()
    tga.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(256, 512).weight.numpy(), lin.weight.numpy())
    assert abs(nn.Linear(256, 512, init_std=0.5).weight.numpy().std() - 0.5) < 0.02
    ln = nn.LayerNorm(6)
    assert (ln.weight.numpy() == 1).all() and (ln.bias.numpy() == 0).all()
    emb = nn.Embedding(300, 64, padding_idx=0)
    assert not emb.weight.numpy()[0].any() and abs(emb.weight.numpy()[1:].std() - 0.02) < 0.002
    blk = nn.TransformerBlock(128, 4, n_layers_for_init=8)
    resid = 0.02 / np.sqrt(16)
    assert abs(blk.attn.out_proj.weight.numpy().std() - resid) < 0.1 * resid
    assert abs(blk.mlp[2].weight.numpy().std() - resid) < 0.1 * resid
    assert abs(blk.attn.qkv.weight.numpy().std() - 0.02) < 0.002
    p = nn.Parameter(tga.zeros(1000))
    nn.init.normal_(p, mean=1.0, std=0.1)
    assert abs(p.numpy().mean() - 1.0) < 0.02
    nn.init.zeros_(p)
    assert not p.numpy().any()


# ---------------------------------------------------------------- layers: values and gradients

def test_linear_and_embedding_forward_match_numpy():
    lin = nn.Linear(3, 2)
    nn.init.normal_(lin.bias)
    x = tga.randn(4, 5, 3)
    np.testing.assert_allclose(lin(x).numpy(), x.numpy() @ lin.weight.numpy().T + lin.bias.numpy(), rtol=1e-5, atol=1e-6)
    emb = nn.Embedding(6, 3, padding_idx=2)
    ids = np.array([[2, 1, 1], [5, 2, 0]])
    np.testing.assert_array_equal(emb(ids).numpy(), emb.weight.numpy()[ids])
    emb(ids).sum().backward()
    g = emb.weight.grad.numpy()
    assert not g[2].any() and np.all(g[1] == 2) and np.all(g[5] == 1) and not g[3].any()


@given(lead=st.lists(st.integers(1, 3), min_size=1, max_size=2), d=st.integers(2, 6), data=st.data())
def test_layer_norm_gradcheck(lead, d, data):
    ln = nn.LayerNorm(d)
    x_np = data.draw(arrays(tuple(lead) + (d,), min_abs=0.0))
    x_np = x_np + np.linspace(-1, 1, d)  # rows never constant: keeps the variance away from 0
    x = tga.tensor(x_np, requires_grad=True)
    ref = (x_np - x_np.mean(-1, keepdims=True)) / np.sqrt(x_np.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln.double()(tga.tensor(x_np)).numpy(), ref, rtol=1e-6, atol=1e-6)
    nn.init.normal_(ln.weight)
    nn.init.normal_(ln.bias)
    module_gradcheck(ln, ln, x, atol=1e-5, rtol=1e-4)


@given(ids=st.lists(st.integers(0, 4), min_size=1, max_size=6), padding=st.sampled_from([None, 0, 3]))
def test_embedding_gradcheck(ids, padding):
    # the padding row is frozen on purpose (no gradient even where it is used), so only
    # sequences without it can be compared with finite differences; see the test above
    ids = [i for i in ids if i != padding] or [1]
    emb = nn.Embedding(5, 3, padding_idx=padding)
    module_gradcheck(emb, lambda: emb(np.array(ids)).tanh())


def test_composite_gradcheck_through_containers():
    m = nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.Linear(5, 4), nn.ReLU(), nn.LayerNorm(4))
    for p in m.parameters():
        nn.init.normal_(p, std=0.5)
    x = tga.randn(2, 3, requires_grad=True)
    module_gradcheck(m, m, x)


# ---------------------------------------------------------------- positions

def test_positional_embedding_rows_offsets_and_limits():
    pe = nn.PositionalEmbedding(8, 4)
    np.testing.assert_array_equal(pe(3, offset=2).numpy(), pe.weight.numpy()[2:5])
    np.testing.assert_array_equal(pe(tga.tensor([[0, 7]])).numpy(), pe.weight.numpy()[[[0, 7]]])
    with pytest.raises(ValueError, match="max_len=8"):
        pe(5, offset=4)
    pe(3).sum().backward()
    assert np.all(pe.weight.grad.numpy()[:3] == 1) and not pe.weight.grad.numpy()[3:].any()


def test_sinusoidal_positions_follow_the_formula_and_are_not_saved(device):
    pe = nn.SinusoidalPositionalEmbedding(16, 6).to(device)
    out = pe(4, offset=3).numpy()
    pos, i = 5, 2  # row 2 of the output is position 5; columns 2i and 2i+1 share frequency 10000^(-2i/d)
    w = 10000.0 ** (-2 * i / 6)
    np.testing.assert_allclose(out[2, 2 * i], np.sin(pos * w), rtol=1e-6)
    np.testing.assert_allclose(out[2, 2 * i + 1], np.cos(pos * w), rtol=1e-6)
    assert list(pe.state_dict()) == [] and pe.num_parameters() == 0
    assert nn.sinusoid_table(4, 5).shape == (4, 5)


@pytest.mark.parametrize("name", nn.activations.ACTIVATIONS)
def test_activation_modules_call_their_function(name):
    x = tga.Tensor(np.linspace(-3, 3, 12).reshape(3, 4), requires_grad=True)
    module = getattr(nn, name)()
    function = getattr(F, module.function)
    np.testing.assert_array_equal(module(x).numpy(), function(x).numpy())
    assert list(module.parameters()) == []


def test_activation_module_options_are_passed_positionally_and_by_name():
    x = tga.Tensor([-2.0, 3.0])
    np.testing.assert_allclose(nn.LeakyReLU(0.2)(x).numpy(), [-0.4, 3.0])
    np.testing.assert_allclose(nn.LeakyReLU(negative_slope=0.2)(x).numpy(), [-0.4, 3.0])
    assert "negative_slope=0.2" in repr(nn.LeakyReLU(0.2))
    np.testing.assert_allclose(nn.Hardtanh(-1.0, 2.5)(x).numpy(), [-1.0, 2.5])
