"""The graph machinery: accumulation, .grad across calls, retain_graph, grad modes,
higher-order `tga.grad`, hooks, retain_grad, deep graphs, detach and integer tensors."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn.errors import DTypeError, GraphError, ShapeError
from helpers import T, close


XS = [0.5, -1.5, 2.0]


# ---------------------------------------------------------------- accumulation

def test_tensor_used_twice_accumulates(device):
    x = T(XS, device)
    (x * x).sum().backward()
    close(x.grad, 2 * np.array(XS))
    y = T(XS, device)
    (y + y).sum().backward()
    close(y.grad, [2.0, 2.0, 2.0])


def test_diamond_graph(device):
    # x -> a, b -> c: both paths must reach x, and x's own use at the end too
    x = T(XS, device)
    a = x.exp()
    b = x * 3.0
    c = (a * b + x).sum()
    c.backward()
    xn = np.array(XS)
    close(x.grad, np.exp(xn) * 3 * xn + np.exp(xn) * 3 + 1)


def test_shared_subexpression_used_by_many(device):
    x = T(XS, device)
    h = x.tanh()
    out = (h + h * h + h ** 3).sum()
    out.backward()
    t = np.tanh(np.array(XS))
    close(x.grad, (1 + 2 * t + 3 * t ** 2) * (1 - t ** 2))


def test_grad_accumulates_across_backward_calls(device):
    x = T(XS, device)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    close(x.grad, [5.0, 5.0, 5.0])
    x.zero_grad()
    assert x.grad is None


def test_non_scalar_backward_with_explicit_grad(device):
    x = T(XS, device)
    g = np.array([1.0, 10.0, 100.0])
    (x * x).backward(g)
    close(x.grad, 2 * np.array(XS) * g)
    with pytest.raises(ShapeError, match=r"\(2,\).*\(3,\)"):
        (x * x).backward(np.ones(2))


# ---------------------------------------------------------------- retain_graph and freed graphs

def test_retain_graph_allows_second_backward(device):
    x = T(XS, device)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    close(x.grad, 2 * first)


def test_second_backward_through_freed_graph_raises(device):
    x = T(XS, device)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(GraphError, match="second time.*retain_graph=True"):
        y.backward()


def test_backward_on_non_scalar_without_grad_raises(device):
    x = T(XS, device)
    with pytest.raises(GraphError, match=r"backward.*\(3,\)"):
        (x * 2.0).backward()


def test_backward_without_requires_grad_raises(device):
    x = T(XS, device, grad=False)
    with pytest.raises(GraphError, match="does not require grad"):
        (x * 2.0).sum().backward()


# ---------------------------------------------------------------- grad modes

def test_no_grad_and_enable_grad_nest(device):
    x = T(XS, device)
    assert tga.is_grad_enabled()
    with tga.no_grad():
        assert not (x * 2).requires_grad
        with tga.enable_grad():
            assert (x * 2).requires_grad
            with tga.no_grad():
                assert not (x * 2).requires_grad
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert tga.is_grad_enabled() and (x * 2).requires_grad


def test_no_grad_restores_mode_after_exception(device):
    with pytest.raises(RuntimeError):
        with tga.no_grad():
            raise RuntimeError("boom")
    assert tga.is_grad_enabled()


def test_no_grad_as_decorator(device):
    x = T(XS, device)

    @tga.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert not f(x).requires_grad  # reusable
    assert (x * 2).requires_grad


# ---------------------------------------------------------------- tga.grad and higher order

def test_grad_returns_values_and_leaves_dot_grad_alone(device):
    x, w = T(XS, device), T([1.0, 2.0, 3.0], device)
    gx, gw = tga.grad((x * w).sum(), [x, w])
    close(gx, [1.0, 2.0, 3.0])
    close(gw, XS)
    assert x.grad is None and w.grad is None
    assert not gx.requires_grad


def test_third_derivative_of_x_to_the_fourth(device):
    x = T(XS, device)
    y = (x ** 4).sum()
    (g1,) = tga.grad(y, x, create_graph=True)
    (g2,) = tga.grad(g1.sum(), x, create_graph=True)
    (g3,) = tga.grad(g2.sum(), x, create_graph=True)
    (g4,) = tga.grad(g3.sum(), x)
    xn = np.array(XS)
    close(g1, 4 * xn ** 3)
    close(g2, 12 * xn ** 2)
    close(g3, 24 * xn)
    close(g4, [24.0, 24.0, 24.0])


def test_higher_order_through_composite_expression(device):
    # d2/dx2 of x e^x + tanh x, against its closed form
    x = T(XS, device)
    f = (x.exp() * x + x.tanh()).sum()
    (g,) = tga.grad(f, x, create_graph=True)
    (h,) = tga.grad(g.sum(), x)
    xn = np.array(XS)
    t = np.tanh(xn)
    close(h, np.exp(xn) * (xn + 2) + (-2 * t * (1 - t ** 2)))


def test_backward_create_graph_gives_differentiable_grad(device):
    x = T(XS, device)
    (x ** 3).sum().backward(create_graph=True)
    gx = x.grad
    assert gx.requires_grad
    (h,) = tga.grad(gx.sum(), x)
    close(h, 6 * np.array(XS))


def test_grad_unused_input(device):
    x, z = T(XS, device), T(XS, device)
    with pytest.raises(GraphError, match="not used"):
        tga.grad((x * 2).sum(), [x, z])
    gx, gz = tga.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None
    close(gx, [2.0, 2.0, 2.0])


# ---------------------------------------------------------------- hooks, retain_grad

def test_hook_sees_gradient(device):
    x = T(XS, device)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    (x * 3.0).sum().backward()
    assert len(seen) == 1
    close(seen[0], [3.0, 3.0, 3.0])
    close(x.grad, [3.0, 3.0, 3.0])


def test_hook_can_replace_gradient_and_is_removable(device):
    x = T(XS, device)
    h = x * 2.0  # a non-leaf: the replaced gradient must flow on to x
    handle = h.register_hook(lambda g: g * 10.0)
    (h * h).sum().backward()
    close(x.grad, 2 * (2 * 2 * np.array(XS)) * 10)
    handle.remove()
    x.zero_grad()
    h2 = x * 2.0
    (h2 * h2).sum().backward()
    close(x.grad, 8 * np.array(XS))
    leaf = T(XS, device)
    hl = leaf.register_hook(lambda g: g * 0.0 + 7.0)
    leaf.sum().backward()
    close(leaf.grad, [7.0, 7.0, 7.0])
    hl.remove()
    hl.remove()  # removing twice is harmless
    leaf.zero_grad()
    leaf.sum().backward()
    close(leaf.grad, [1.0, 1.0, 1.0])


def test_hook_on_tensor_without_grad_raises(device):
    with pytest.raises(GraphError):
        T(XS, device, grad=False).register_hook(lambda g: g)


def test_post_accumulate_hook_sees_the_summed_and_accumulated_grad(device):
    x = T(XS, device)
    seen = []
    handle = x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (x * 2.0 + x * 3.0).sum().backward()   # x used twice: one call, after both paths are summed
    assert len(seen) == 1
    close(seen[0], [5.0, 5.0, 5.0])
    (x * 1.0).sum().backward()             # a second backward: the hook sees .grad with both added
    close(seen[1], [6.0, 6.0, 6.0])
    handle.remove()
    x.sum().backward()
    assert len(seen) == 2


def test_post_accumulate_hook_only_on_leaves_that_require_grad(device):
    x = T(XS, device)
    with pytest.raises(GraphError, match="leaf"):
        (x * 2.0).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(GraphError, match="leaf"):
        T(XS, device, grad=False).register_post_accumulate_grad_hook(lambda t: None)


def test_retain_grad_on_non_leaf(device):
    x = T(XS, device)
    y = x * 2.0
    z = x * 3.0
    y.retain_grad()
    (y * y + z).sum().backward()
    close(y.grad, 2 * 2 * np.array(XS))
    assert z.grad is None  # non-leaves without retain_grad keep nothing
    close(x.grad, 8 * np.array(XS) + 3)


# ---------------------------------------------------------------- deep graphs

def test_ten_thousand_op_chain_has_no_recursion_error(device):
    x = T([1.0], device)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    close(x.grad, [1.0001 ** 10_000], rtol=1e-9)


def test_many_uses_of_one_tensor_accumulate(device):
    x = T([2.0], device)
    total = x
    for _ in range(2_000):
        total = total + x
    total.sum().backward()
    close(x.grad, [2001.0])


# ---------------------------------------------------------------- detach, dtypes of grads

def test_detach_cuts_the_graph_and_shares_values(device):
    x = T(XS, device)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    close(d, XS)
    y = (x * d).sum()  # d is a constant here
    y.backward()
    close(x.grad, XS)


def test_integer_tensors_cannot_require_grad(device):
    with pytest.raises(DTypeError, match=r"int64.*\(3,\)"):
        tga.Tensor([1, 2, 3], requires_grad=True, device=device)
    with pytest.raises(DTypeError, match="int"):
        tga.zeros(2, 2, dtype=np.int32, device=device, requires_grad=True)
    with pytest.raises(DTypeError, match="bool"):
        tga.Tensor(np.array([True, False]), device=device).requires_grad_()
    assert not tga.arange(4, device=device).requires_grad


def test_cast_to_int_stops_the_graph_and_back_to_float_flows(device):
    x = T([1.7, -2.2], device)
    assert not x.long().requires_grad
    y = x.float()
    assert y.dtype == np.float32 and y.requires_grad
    y.sum().backward()
    assert x.grad.dtype == np.float64
    close(x.grad, [1.0, 1.0])


def test_leaf_flags(device):
    x = T(XS, device)
    y = x * 2
    assert x.is_leaf and not y.is_leaf
    with tga.no_grad():
        z = x * 2
    assert z.is_leaf and not z.requires_grad
