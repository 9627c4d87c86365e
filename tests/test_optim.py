"""Optimizers against their update equations written out in NumPy; schedules; state round trips; clipping."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn import nn, optim

TARGET = np.array([1.0, -2.0, 0.5, 3.0])
CURV = np.array([1.0, 2.0, 0.5, 4.0])


def quadratic_grad(p):
    """Gradient of 0.5 * sum(CURV * (p - TARGET)^2), computed by hand."""
    return CURV * (p - TARGET)


def run_engine(make_opt, steps, p0, device="cpu"):
    p = nn.Parameter(tga.tensor(p0, dtype=np.float64, device=device))
    opt = make_opt([p])
    for _ in range(steps):
        opt.zero_grad()
        loss = (tga.tensor(CURV, device=device) * (p - tga.tensor(TARGET, device=device)) ** 2).sum() * 0.5
        loss.backward()
        opt.step()
    return p.numpy()


def sgd_ref(p, steps, lr, momentum=0.0, nesterov=False, wd=0.0):
    buf = None
    for _ in range(steps):
        g = quadratic_grad(p) + wd * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def adam_ref(p, steps, lr, b1, b2, eps, wd, decoupled):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, steps + 1):
        g = quadratic_grad(p)
        if decoupled:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p


P0 = np.array([0.3, 0.1, -1.0, 2.0])


@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.1), (0.5, False, 0.3)])
def test_sgd_matches_hand_equations(device, momentum, nesterov, wd):
    got = run_engine(lambda ps: optim.SGD(ps, lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=wd), 6, P0, device)
    np.testing.assert_allclose(got, sgd_ref(P0, 6, 0.05, momentum, nesterov, wd), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls,wd", [(optim.Adam, 0.0), (optim.Adam, 0.1), (optim.AdamW, 0.1), (optim.AdamW, 0.0)])
def test_adam_and_adamw_match_hand_equations(device, cls, wd):
    got = run_engine(lambda ps: cls(ps, lr=0.1, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd), 7, P0, device)
    want = adam_ref(P0, 7, 0.1, 0.8, 0.95, 1e-6, wd, decoupled=cls is optim.AdamW)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_adamw_decay_is_decoupled_from_the_gradient():
    p = nn.Parameter(tga.tensor(P0, dtype=np.float64))
    q = nn.Parameter(tga.tensor(P0, dtype=np.float64))
    adamw, adam = optim.AdamW([p], lr=0.1, weight_decay=0.2), optim.Adam([q], lr=0.1, weight_decay=0.2)
    for _ in range(3):
        before = p.numpy().copy()
        p.grad = tga.zeros_like(p)
        q.grad = tga.zeros_like(q)
        adamw.step()
        adam.step()
        np.testing.assert_allclose(p.numpy(), before - 0.1 * 0.2 * before, rtol=1e-15, atol=0)  # lr * wd * p, to rounding
    assert not np.allclose(q.numpy(), p.numpy())  # Adam's L2 goes through the moments instead


def test_params_without_grad_are_skipped_and_groups_have_their_own_lr():
    a, b = nn.Parameter(tga.ones(2)), nn.Parameter(tga.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad = tga.ones(2)
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.9)
    np.testing.assert_array_equal(b.numpy(), 1.0)
    b.grad = tga.ones(2)
    opt.param_groups[1]["lr"] = 0.5
    opt.step()
    np.testing.assert_allclose(b.numpy(), 0.5)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_optimizer_arguments_are_checked():
    p = nn.Parameter(tga.ones(2))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="int64"):
        optim.Adam([tga.tensor([1, 2])])
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)


def test_weight_decay_groups_decay_only_linear_weights():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(7, 8)
            self.pos = nn.PositionalEmbedding(4, 8)
            self.block = nn.TransformerBlock(8, 2)
            self.ln = nn.LayerNorm(8)
            self.head = nn.Linear(8, 7, bias=False)
            self.head.weight = self.emb.weight  # tied: counts as an embedding
            self.cls = nn.Linear(8, 2)

    m = Model()
    decay, no_decay = optim.param_groups_for_weight_decay(m, 0.1)
    names = {id(p): n for n, p in m.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == [
        "block.attn.out_proj.weight", "block.attn.qkv.weight", "block.mlp.0.weight", "block.mlp.2.weight", "cls.weight"]
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(m.parameters()))
    opt = optim.AdamW([decay, no_decay], lr=1e-3)
    assert opt.param_groups[1]["weight_decay"] == 0.0 and opt.param_groups[0]["betas"] == (0.9, 0.999)


# ---------------------------------------------------------------- schedules

@pytest.mark.parametrize("cls", [optim.WarmupCosine, optim.WarmupLinear])
def test_schedules_hit_their_end_points(cls):
    opt = optim.SGD([nn.Parameter(tga.ones(1))], lr=0.5)
    sched = cls(opt, warmup_steps=10, total_steps=110, min_lr_ratio=0.1)
    assert opt.param_groups[0]["lr"] == 0.0 == sched.get_lr(0)
    assert sched.get_lr(5) == pytest.approx(0.25)
    assert sched.get_lr(10) == pytest.approx(0.5)
    assert sched.get_lr(60) == pytest.approx(0.5 * (0.1 + 0.9 * 0.5))  # halfway: cosine and line agree
    assert sched.get_lr(110) == pytest.approx(0.05) and sched.get_lr(500) == pytest.approx(0.05)
    lrs = []
    for _ in range(120):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[9] == pytest.approx(0.5) and lrs[-1] == pytest.approx(0.05)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10])) and all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    quarter = sched.get_lr(35) / 0.5
    expected = 0.1 + 0.9 * (0.5 * (1 + math.cos(math.pi * 0.25)) if cls is optim.WarmupCosine else 0.75)
    assert quarter == pytest.approx(expected)


def test_schedule_scales_every_group_and_round_trips():
    a, b = nn.Parameter(tga.ones(1)), nn.Parameter(tga.ones(1))
    opt = optim.AdamW([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}])
    sched = optim.WarmupCosine(opt, 4, 20)
    for _ in range(7):
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([sched.get_lr(7), sched.get_lr(7) * 0.1])
    opt2 = optim.AdamW([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}])
    sched2 = optim.WarmupCosine(opt2, 1, 2)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.get_last_lr() == sched.get_last_lr() and sched2.last_step == 7


# ---------------------------------------------------------------- state round trips

@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: optim.Adam(ps, lr=0.05, weight_decay=0.01),
    lambda ps: optim.AdamW(ps, lr=0.05, betas=(0.8, 0.9)),
])
def test_restored_optimizer_continues_identically(make):
    tga.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1))
    x, y = tga.randn(8, 3), tga.randn(8, 1)

    def train(m, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            ((m(x) - y) ** 2).mean().backward()
            opt.step()

    opt = make(list(model.parameters()))
    train(model, opt, 3)
    saved_model = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    saved = opt.state_dict()
    snapshot = {i: {k: np.copy(v) for k, v in e.items()} for i, e in saved["state"].items()}
    train(model, opt, 3)
    for i, entry in saved["state"].items():  # the saved state is a copy, not a view of the live one
        for k, v in entry.items():
            np.testing.assert_array_equal(v, snapshot[i][k])

    clone = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1))
    clone.load_state_dict(saved_model)
    opt2 = make(list(clone.parameters()))
    opt2.load_state_dict(saved)
    train(clone, opt2, 3)
    for a, b in zip(model.parameters(), clone.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_state_dict_rejects_a_mismatch():
    a = optim.Adam([nn.Parameter(tga.ones(2))])
    with pytest.raises(ValueError, match="from SGD"):
        a.load_state_dict(optim.SGD([nn.Parameter(tga.ones(2))], lr=1).state_dict())
    b = optim.Adam([nn.Parameter(tga.ones(3))])
    b._params()[0].grad = tga.ones(3)
    b.step()
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        a.load_state_dict(b.state_dict())


# ---------------------------------------------------------------- clipping

@given(scale=st.floats(0.01, 100.0), max_norm=st.floats(0.1, 10.0))
def test_clip_grad_norm(scale, max_norm):
    rng = np.random.default_rng(0)
    params = [nn.Parameter(tga.zeros(*s)) for s in [(3, 2), (4,), (1,)]]
    grads = [rng.standard_normal(p.shape).astype(np.float32) * scale for p in params]
    for p, g in zip(params, grads):
        p.grad = tga.tensor(g)
    params.append(nn.Parameter(tga.zeros(2)))  # no grad: ignored
    total = optim.clip_grad_norm_(params, max_norm)
    expected = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    assert total == pytest.approx(expected, rel=1e-5)
    factor = min(1.0, max_norm / (expected + 1e-6))
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * factor, rtol=1e-5)
    assert params[-1].grad is None


def test_clip_scales_gradients_that_share_one_array_once():
    a, b = nn.Parameter(tga.zeros(3)), nn.Parameter(tga.zeros(3))
    (a + b).sum().backward()  # the graph walk hands both leaves the same gradient array
    optim.clip_grad_norm_([a, b], 1.0)
    np.testing.assert_allclose(a.grad.numpy(), 1 / np.sqrt(6), rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), 1 / np.sqrt(6), rtol=1e-5)


def test_clip_grad_norm_of_float16_gradients_whose_squares_overflow_float16(device):
    # 300^2 = 9e4 is past float16's largest finite value (65504): the squares must be summed wider
    dtype = np.float16
    grads = [np.full((4, 3), 300.0), np.array([-250.0, 120.0, 0.5])]
    params = [nn.Parameter(tga.zeros(*g.shape, dtype=dtype, device=device)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = tga.tensor(g, dtype=dtype, device=device)
    stored = [p.grad.numpy().astype(np.float64) for p in params]
    expected = math.sqrt(sum(float((g ** 2).sum()) for g in stored))
    total = optim.clip_grad_norm_(params, 1.0)
    assert total == pytest.approx(expected, rel=1e-3)
    for p, g in zip(params, stored):
        assert p.grad.dtype == p.dtype
        np.testing.assert_allclose(p.grad.numpy().astype(np.float64), g / expected, rtol=1e-2, atol=1e-4)
    assert np.abs(params[0].grad.numpy().astype(np.float64)).min() > 0   # scaled, not zeroed


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=NAN), lambda ps: optim.SGD(ps, lr=0.1, momentum=NAN),
    lambda ps: optim.SGD(ps, lr=0.1, weight_decay=NAN), lambda ps: optim.SGD(ps, lr=INF),
    lambda ps: optim.Adam(ps, lr=NAN), lambda ps: optim.AdamW(ps, lr=NAN), lambda ps: optim.AdamW(ps, eps=NAN),
    lambda ps: optim.AdamW(ps, weight_decay=NAN), lambda ps: optim.Adam(ps, betas=(0.9, NAN)),
    lambda ps: optim.AdamW([{"params": ps, "lr": NAN}], lr=1e-3), lambda ps: optim.Adam(ps, lr=-1.0),
], ids=["sgd-lr", "sgd-momentum", "sgd-wd", "sgd-lr-inf", "adam-lr", "adamw-lr", "adamw-eps", "adamw-wd",
        "adam-beta2", "group-lr", "adam-negative-lr"])
def test_optimizer_hyperparameters_that_are_nan_inf_or_negative_are_refused(make):
    with pytest.raises(tga.ConfigError, match="invalid") as info:
        make([nn.Parameter(tga.zeros(2))])
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("max_norm", [NAN, -1.0, "1"])
def test_clip_grad_norm_refuses_a_max_norm_that_is_not_a_number_at_least_0(max_norm):
    p = nn.Parameter(tga.zeros(2))
    p.grad = tga.ones(2)
    with pytest.raises(tga.ConfigError, match="max_norm"):
        optim.clip_grad_norm_([p], max_norm)
    assert optim.clip_grad_norm_([p], INF) == pytest.approx(math.sqrt(2))   # inf: measure only
    np.testing.assert_array_equal(p.grad.numpy(), [1.0, 1.0])
