"""The optimizers' flat layout (flat_params.py): the same update as one parameter at a time,
and never a stale or untied parameter when someone replaces the arrays."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import optim
from tinygrad_attn.flat_params import untied


def _params(seed=0, shapes=((3, 4), (4,), (2, 2, 2), ())):
    rng = np.random.default_rng(seed)
    return [tga.Tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]


def _set_grads(params, seed):
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = tga.Tensor(rng.standard_normal(p.shape))


def _reference_adamw(values, grads_per_step, lr, betas, eps, wd):
    """AdamW written out in float64 from the paper, one parameter at a time."""
    b1, b2 = betas
    out = []
    for i, x in enumerate(values):
        x, m, v = x.copy(), np.zeros_like(x), np.zeros_like(x)
        for t, grads in enumerate(grads_per_step, start=1):
            g = grads[i]
            x = x * (1 - lr * wd)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            x = x - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        out.append(x)
    return out


@pytest.mark.parametrize("kind", ["AdamW", "Adam", "SGD"])
def test_flat_update_equals_one_parameter_at_a_time(kind):
    make = {"AdamW": lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
            "Adam": lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=0.1),
            "SGD": lambda ps: optim.SGD(ps, lr=1e-2, momentum=0.9, weight_decay=0.1)}[kind]
    flat, single = _params(), _params()
    opt_flat = make(flat)
    opts_single = [make([p]) for p in single]  # one parameter each: never laid out flat
    for step in range(4):
        _set_grads(flat, step)
        _set_grads(single, step)
        opt_flat.step()
        for o in opts_single:
            o.step()
    assert opt_flat._flats, "the group of four parameters was not laid out flat"
    for a, b in zip(flat, single):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-14)


def test_flat_adamw_matches_the_papers_formula():
    params = _params()
    start = [p.data.copy() for p in params]
    rng = np.random.default_rng(7)
    grads = [[rng.standard_normal(p.shape) for p in params] for _ in range(3)]
    opt = optim.AdamW(params, lr=1e-2, betas=(0.8, 0.9), eps=1e-8, weight_decay=0.1)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = tga.Tensor(g)
        opt.step()
    for p, expected in zip(params, _reference_adamw(start, grads, 1e-2, (0.8, 0.9), 1e-8, 0.1)):
        np.testing.assert_allclose(p.data, expected, rtol=1e-10, atol=1e-12)


def test_a_replaced_data_array_is_updated_not_a_stale_copy():
    params = _params()
    opt = optim.SGD(params, lr=0.5)
    _set_grads(params, 0)
    opt.step()
    fresh = np.full(params[0].shape, 3.0)
    params[0].data = fresh  # as module.to(...) or a loader does
    for p in params:
        p.grad = tga.Tensor(np.ones(p.shape))
    opt.step()
    np.testing.assert_allclose(params[0].data, 3.0 - 0.5)
    params[0].data[...] = 10.0  # and the new layout is live: writing p.data is what the next step starts from
    opt.step()
    np.testing.assert_allclose(params[0].data, 10.0 - 0.5)


def test_state_stays_per_parameter_and_loading_it_takes_effect():
    params = _params()
    opt = optim.AdamW(params, lr=1e-2)
    _set_grads(params, 0)
    opt.step()
    saved = opt.state_dict()
    assert all(saved["state"][i]["exp_avg"].shape == p.shape for i, p in enumerate(params))
    twin = _params()
    for a, b in zip(twin, params):
        a.data = b.data.copy()
    opt_twin = optim.AdamW(twin, lr=1e-2)
    opt_twin.load_state_dict(saved)
    _set_grads(params, 1)
    _set_grads(twin, 1)
    opt.step()
    opt_twin.step()
    for a, b in zip(params, twin):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12)
    assert opt_twin._flats  # the loaded state was laid out flat too


def test_parameters_sharing_memory_stay_tied():
    base = tga.Tensor(np.zeros((2, 3)), requires_grad=True)
    view = tga.Tensor(np.zeros(1), requires_grad=True)
    view.data = base.data[0]  # a tie made with a view: one flat copy each would untie them
    other = tga.Tensor(np.zeros(3), requires_grad=True)
    assert {id(p) for p in untied([base, view, other])[1]} == {id(base), id(view)}
    opt = optim.SGD([base, view, other], lr=1.0)
    for p in (base, view, other):
        p.grad = tga.Tensor(np.ones(p.shape))
    opt.step()
    assert np.shares_memory(base.data, view.data)
    np.testing.assert_allclose(base.data[0], -2.0)  # both updates landed on the shared row
    np.testing.assert_allclose(base.data[1], -1.0)


def test_a_parameter_without_a_gradient_is_left_alone():
    params = _params()
    opt = optim.AdamW(params, lr=1e-2)
    _set_grads(params, 0)
    opt.step()
    before = params[1].data.copy()
    moments = opt.state[id(params[1])]["exp_avg"].copy()
    params[1].grad = None
    opt.step()
    np.testing.assert_array_equal(params[1].data, before)
    np.testing.assert_array_equal(opt.state[id(params[1])]["exp_avg"], moments)
