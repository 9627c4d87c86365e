"""The ops a PyTorch user missed (issue 23), beyond what the op table checks for every op: the
Tensor operators & | ^ << >> and their errors on floats, cummax/cummin's indices and where their
gradient goes at ties, unfold as a view and its errors, copysign's signed zeros, isclose and
std_mean's arguments, and pad's modes and negative widths (worked examples and errors)."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.testing import gradcheck, gradgradcheck
from helpers import T, close

INTS = np.array([[5, -3, 0, 12], [7, 1, -8, 2]])
BOOLS = np.array([[True, False, True, False], [False, False, True, True]])


@pytest.mark.parametrize("symbol, numpy_op", [("&", np.bitwise_and), ("|", np.bitwise_or), ("^", np.bitwise_xor),
                                              ("<<", np.left_shift), (">>", np.right_shift)])
def test_bitwise_operators_on_integers_numbers_and_broadcasting(device, symbol, numpy_op):
    shifts = np.array([0, 1, 3, 2])
    a, b = tga.Tensor(INTS, device=device), tga.Tensor(shifts, device=device)
    op = {"&": lambda x, y: x & y, "|": lambda x, y: x | y, "^": lambda x, y: x ^ y,
          "<<": lambda x, y: x << y, ">>": lambda x, y: x >> y}[symbol]
    np.testing.assert_array_equal(op(a, b).numpy(), numpy_op(INTS, shifts))
    np.testing.assert_array_equal(op(a, 2).numpy(), numpy_op(INTS, 2))
    np.testing.assert_array_equal(op(3, b).numpy(), numpy_op(3, shifts))
    assert op(a, b).dtype == np.int64
    with pytest.raises(tga.DTypeError, match=r"float32 \(2, 4\)"):
        op(a.float(), b)
    with pytest.raises(tga.DTypeError, match="float"):
        op(a, 1.5)


@pytest.mark.parametrize("symbol, numpy_op", [("&", np.logical_and), ("|", np.logical_or), ("^", np.logical_xor)])
def test_and_or_xor_of_booleans_stay_boolean(device, symbol, numpy_op):
    a = tga.Tensor(BOOLS, device=device)
    op = {"&": lambda x, y: x & y, "|": lambda x, y: x | y, "^": lambda x, y: x ^ y}[symbol]
    for got, want in ((op(a, a[::-1]), numpy_op(BOOLS, BOOLS[::-1])), (op(a, True), numpy_op(BOOLS, True)),
                      (op(False, a), numpy_op(False, BOOLS))):
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal((~a).numpy(), ~BOOLS)
    np.testing.assert_array_equal(F.bitwise_not(tga.Tensor(INTS)).numpy(), ~INTS)
    with pytest.raises(tga.DTypeError, match=r"invert \(~\): needs a boolean or integer tensor, got dtype float32"):
        F.bitwise_not(tga.randn(2))


def test_bool_shift_and_bitwise_errors_name_the_op_and_shapes():
    with pytest.raises(tga.DTypeError, match=r"bitwise_left_shift \(<<\).*integer operands.*bool \(2, 4\)"):
        tga.Tensor(BOOLS) << tga.Tensor(BOOLS)
    with pytest.raises(tga.ShapeError, match=r"bitwise_and.*\(2, 4\) and \(3,\)"):
        tga.Tensor(INTS) & tga.Tensor([1, 2, 3])


@pytest.mark.parametrize("op, better", [(F.cummax, np.greater_equal), (F.cummin, np.less_equal)])
def test_cummax_cummin_take_the_latest_of_ties_and_send_the_gradient_there(op, better):
    x = T([[1.0, 3.0, 3.0, 2.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]], "cpu")
    values, idx = op(x, 1)
    expected = np.zeros((2, 6), dtype=np.int64)  # written out: each position, the latest at least as good
    for r in range(2):
        for i in range(6):
            best = max(range(i + 1), key=lambda j: (x.numpy()[r, j] if better is np.greater_equal
                                                    else -x.numpy()[r, j], j))
            expected[r, i] = best
    np.testing.assert_array_equal(idx.numpy(), expected)
    g = np.arange(12.0).reshape(2, 6) + 1
    values.backward(tga.Tensor(g))
    want = np.zeros((2, 6))
    np.add.at(want, (np.arange(2)[:, None], expected), g)
    np.testing.assert_array_equal(x.grad.numpy(), want)


def test_cummax_propagates_nan_and_takes_its_position():
    values, idx = F.cummax(tga.tensor([1.0, np.nan, 5.0, np.nan, 0.0]), 0)
    np.testing.assert_array_equal(values.numpy(), [1.0, np.nan, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(idx.numpy(), [0, 1, 1, 3, 3])
    v, i = F.cummin(tga.tensor(2.5), 0)
    assert v.item() == 2.5 and i.item() == 0
    v, i = tga.tensor([[3, 1], [2, 4]]).cummax(0)
    np.testing.assert_array_equal(v.numpy(), [[3, 1], [3, 4]])
    np.testing.assert_array_equal(i.numpy(), [[0, 0], [0, 1]])


def test_unfold_is_a_view_with_the_shape_pytorch_gives():
    x = tga.tensor(np.arange(14.0).reshape(2, 7), requires_grad=True)
    y = x.unfold(1, 3, 2)
    assert y.shape == (2, 3, 3)
    assert np.shares_memory(y.data, x.data)
    np.testing.assert_array_equal(y.numpy()[1, 2], [11.0, 12.0, 13.0])
    assert x.unfold(0, 1, 1).shape == (2, 7, 1) and x.unfold(1, 0, 3).shape == (2, 3, 0)
    assert tga.tensor(5.0).unfold(0, 1, 1).shape == (1, 1)
    y.sum().backward()  # each element counted once per window it is in
    np.testing.assert_array_equal(x.grad.numpy()[0], [1, 1, 2, 1, 2, 1, 1])


def test_unfold_overlapping_windows_differentiate_twice():
    x = T(np.random.default_rng(0).standard_normal((5, 3)), "cpu")
    for dimension, size, step in ((0, 3, 1), (0, 2, 3), (1, 2, 1), (-1, 3, 5)):
        gradcheck(lambda t: F.unfold(t, dimension, size, step), x)
        gradgradcheck(lambda t: F.unfold(t, dimension, size, step) ** 2, x)


def test_unfold_errors_name_what_is_wrong():
    x = tga.randn(2, 3)
    with pytest.raises(tga.ShapeError, match=r"unfold: size 4 is larger than dimension 1 of shape \(2, 3\) \(3\)"):
        x.unfold(1, 4, 1)
    with pytest.raises(ValueError, match="step an int >= 1, got size=2, step=0"):
        x.unfold(1, 2, 0)
    with pytest.raises(tga.ShapeError, match="axis 2 is out of range"):
        x.unfold(2, 1, 1)


def test_copysign_reads_the_sign_bit_and_its_gradient_is_zero_at_zero():
    a = T([1.0, -2.0, 0.0, 3.0, -0.0], "cpu")
    b = tga.tensor([-1.0, -0.0, 2.0, np.inf, 1.0], requires_grad=True)
    out = F.copysign(a, b)
    np.testing.assert_array_equal(np.signbit(out.numpy()), [True, True, False, False, False])
    out.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [-1.0, 1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(b.grad.numpy(), np.zeros(5))
    assert F.copysign(tga.tensor([1, -2]), -1).dtype == np.float32  # integers give the default float


def test_isclose_follows_its_tolerances_and_equal_nan():
    a = tga.tensor([1.0, 1.0, np.nan, np.inf, 2.0])
    b = tga.tensor([1.0 + 1e-6, 1.2, np.nan, np.inf, 2.5])
    np.testing.assert_array_equal(F.isclose(a, b).numpy(), [True, False, False, True, False])
    np.testing.assert_array_equal(F.isclose(a, b, equal_nan=True).numpy(), [True, False, True, True, False])
    np.testing.assert_array_equal(F.isclose(a, b, rtol=0.0, atol=0.5).numpy(), [True, True, False, True, True])
    np.testing.assert_array_equal(a.isclose(2.0).numpy(), [False, False, False, False, True])
    with pytest.raises(ValueError, match="rtol and atol must be >= 0"):
        F.isclose(a, b, atol=-1)


def test_std_mean_and_var_mean_match_std_var_and_mean():
    x = tga.tensor(np.random.default_rng(1).standard_normal((3, 4)))
    for kw in ({}, {"axis": 1, "ddof": 1}, {"dim": 0, "keepdims": True}):
        s, m = F.std_mean(x, **kw)
        v, m2 = F.var_mean(x, **kw)
        np.testing.assert_array_equal(s.numpy(), F.std(x, **kw).numpy())
        np.testing.assert_array_equal(v.numpy(), F.var(x, **kw).numpy())
        mean_kw = {k: val for k, val in kw.items() if k != "ddof"}
        close(m, F.mean(x, **mean_kw).numpy(), rtol=1e-14, atol=1e-15)
        np.testing.assert_array_equal(m2.numpy(), m.numpy())
    with pytest.raises(tga.ShapeError, match="ddof=1 leave no degrees of freedom"):
        F.std_mean(tga.randn(1, 3), axis=0, ddof=1)


def test_inverse_hyperbolic_functions_at_the_edges_of_their_domains():
    with np.errstate(divide="ignore", invalid="ignore"):
        close(F.atanh(tga.tensor([-1.0, 0.0, 1.0])), np.array([-np.inf, 0.0, np.inf]))
        assert np.isnan(F.acosh(tga.tensor([0.5])).item())
        x = tga.tensor([1.0], requires_grad=True)
        F.acosh(x).sum().backward()
    assert x.grad.item() == np.inf  # d/dx acosh at 1, as PyTorch gives
    close(F.asinh(tga.tensor([-1e5, 1e5])), np.arcsinh([-1e5, 1e5]), rtol=1e-7)
    assert F.asinh(tga.tensor([1, 2])).dtype == np.float32


def test_unfold_and_matmul_make_a_one_dimensional_convolution():
    """What README says a user can build from unfold: a valid-mode 1-d cross-correlation."""
    rng = np.random.default_rng(2)
    signal, kernel = rng.standard_normal(9), rng.standard_normal(3)
    out = tga.tensor(signal).unfold(0, 3, 1) @ tga.tensor(kernel)
    close(out, np.correlate(signal, kernel, mode="valid"))


ROW = np.array([[1.0, 2.0, 3.0, 4.0]])


@pytest.mark.parametrize("widths, mode, expected", [
    ((2, 2), "reflect", [3, 2, 1, 2, 3, 4, 3, 2]),  # mirrored about the edge, which is not repeated
    ((2, 1), "replicate", [1, 1, 1, 2, 3, 4, 4]),
    ((2, 3), "circular", [3, 4, 1, 2, 3, 4, 1, 2, 3]),
    ((1, 1), "constant", [0, 1, 2, 3, 4, 0]),
    ((-1, 2), "constant", [2, 3, 4, 0, 0]),  # negative widths crop ...
    ((-1, -2), "reflect", [2]),
    ((-1, 2), "circular", [2, 3, 4, 2, 3]),  # ... and the modes then read the cropped row, as in PyTorch
    ((2, -1), "reflect", [3, 2, 1, 2, 3]),
    ((-2, 1), "replicate", [3, 4, 4]),
])
def test_pad_modes_and_negative_widths_worked_examples(device, widths, mode, expected):
    out = F.pad(tga.Tensor(ROW, device=device), widths, mode=mode)
    np.testing.assert_array_equal(out.numpy(), [expected])


def test_pad_gradient_sums_every_copy_back_to_its_source():
    x = T(ROW, "cpu")
    F.pad(x, (3, 2), mode="reflect").sum().backward()  # [4 3 2] 1 2 3 4 [3 2]
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 3, 3, 2]])
    x = T(np.arange(6.0).reshape(2, 3), "cpu")
    gradgradcheck(lambda t: F.pad(t, (1, 2, -1, 1), mode="circular") ** 2, x)
    gradgradcheck(lambda t: F.pad(t, (2, -1, 1, 1), mode="replicate") ** 2, x)


def test_pad_errors_say_what_the_mode_allows():
    x = tga.tensor(ROW)
    with pytest.raises(tga.ShapeError, match=r"reflect widths \(4, 0\) must be smaller than axis 1's size 4"):
        F.pad(x, (4, 0), mode="reflect")
    with pytest.raises(tga.ShapeError, match=r"reflect widths \(0, 2\) must be smaller than axis 1's size 2"):
        F.pad(x, (-2, 2), mode="reflect")  # the size after cropping counts
    with pytest.raises(tga.ShapeError, match="circular widths .* more than once"):
        F.pad(x, (5, 0), mode="circular")
    with pytest.raises(tga.ShapeError, match=r"widths \(-3, -2\) crop more than axis 1"):
        F.pad(x, (-3, -2))
    with pytest.raises(tga.ShapeError, match="replicate has no edge"):
        F.pad(F.pad(x, (-2, -2)), (1, 0), mode="replicate")
    with pytest.raises(ValueError, match="mode must be one of constant, reflect, replicate, circular; got 'edge'"):
        F.pad(x, (1, 1), mode="edge")
    with pytest.raises(ValueError, match="mode 'reflect' takes no value"):
        F.pad(x, (1, 1), mode="reflect", value=2.0)
    with pytest.raises(tga.ShapeError, match="even number of widths"):
        F.pad(x, (1, 1, 1))
    assert F.pad(x, (-2, -2)).shape == (1, 0)  # cropping to nothing is allowed
