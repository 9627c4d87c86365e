"""Shape ops: reshape, permute/transpose, swapaxes, expand, squeeze/unsqueeze, cat, stack,
split, chunk, getitem, gather, embedding. Forward against NumPy, gradient against finite
differences in float64 (and, where repeats accumulate, against an np.add.at reference)."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.testing import arrays, gradcheck, shapes
from helpers import T, close, fixture_ok


# ---------------------------------------------------------------- reshape, permute, expand

@fixture_ok
@given(data=st.data(), shape=shapes())
def test_reshape_forward_and_grad(device, data, shape):
    a = data.draw(arrays(shape), label="a")
    size = a.size
    target = data.draw(st.sampled_from([(size,), (-1,), tuple(reversed(shape)), (1,) + shape + (1,),
                                        (size, 1), (1, -1), shape]), label="target")
    ta = T(a, device)
    close(ta.reshape(target), a.reshape(target))
    close(ta.reshape(*target), a.reshape(target))
    gradcheck(lambda x: x.reshape(target), ta)


@fixture_ok
@given(data=st.data(), shape=shapes())
def test_flatten(device, data, shape):
    a = data.draw(arrays(shape), label="a")
    close(T(a, device).flatten(), a.reshape(-1))
    if a.ndim >= 2:
        close(F.flatten(T(a, device), 1), a.reshape(a.shape[0], -1))


@fixture_ok
@given(data=st.data(), shape=shapes())
def test_permute_transpose_forward_and_grad(device, data, shape):
    a = data.draw(arrays(shape), label="a")
    axes = tuple(data.draw(st.permutations(range(a.ndim)), label="axes"))
    ta = T(a, device)
    close(ta.permute(*axes), np.transpose(a, axes))
    close(ta.permute(axes), np.transpose(a, axes))
    close(ta.T, a.T)
    close(ta.transpose(), a.T)
    gradcheck(lambda x: x.permute(*axes), ta)
    gradcheck(lambda x: x.T, ta)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1))
def test_swapaxes_and_torch_style_transpose(device, data, shape):
    a = data.draw(arrays(shape), label="a")
    n = a.ndim
    i, j = data.draw(st.integers(-n, n - 1), label="i"), data.draw(st.integers(-n, n - 1), label="j")
    ta = T(a, device)
    close(ta.swapaxes(i, j), np.swapaxes(a, i, j))
    if n != 2:  # for 2-D, transpose(i, j) is the NumPy permutation (a full order)
        close(ta.transpose(i, j), np.swapaxes(a, i, j))
    gradcheck(lambda x: x.swapaxes(i, j), ta)


@fixture_ok
@given(data=st.data(), shape=shapes(max_dims=3))
def test_expand_forward_and_grad(device, data, shape):
    a = data.draw(arrays(shape), label="a")
    lead = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2), label="lead"))
    grown = tuple(data.draw(st.integers(1, 3)) if n == 1 else n for n in shape)
    target = lead + grown
    ta = T(a, device)
    close(ta.expand(*target), np.broadcast_to(a, target))
    close(ta.expand(lead + (-1,) * a.ndim), np.broadcast_to(a, lead + shape))
    gradcheck(lambda x: x.expand(target), ta)
    ta.expand(target).sum().backward()
    close(ta.grad, np.full(shape, np.prod(target) / max(a.size, 1)))


@fixture_ok
@given(data=st.data(), shape=shapes(max_side=3))
def test_squeeze_unsqueeze_forward_and_grad(device, data, shape):
    a = data.draw(arrays(shape), label="a")
    ta = T(a, device)
    close(ta.squeeze(), np.squeeze(a))
    ones = [i for i, n in enumerate(shape) if n == 1]
    if ones:
        ax = data.draw(st.sampled_from(ones), label="ax")
        close(ta.squeeze(ax), np.squeeze(a, ax))
        close(ta.squeeze(dim=ax - a.ndim), np.squeeze(a, ax))
        gradcheck(lambda x: x.squeeze(ax), ta)
    pos = data.draw(st.integers(-(a.ndim + 1), a.ndim), label="pos")
    close(ta.unsqueeze(pos), np.expand_dims(a, pos))
    gradcheck(lambda x: x.unsqueeze(pos).squeeze(), ta)


# ---------------------------------------------------------------- cat, stack, split, chunk

@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3, max_side=3), n=st.integers(1, 3))
def test_cat_forward_and_grad(device, data, shape, n):
    ax = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    parts = []
    for _ in range(n):
        s = list(shape)
        s[ax] = data.draw(st.integers(0, 3))  # size-0 pieces included
        parts.append(data.draw(arrays(tuple(s))))
    ts = [T(p, device) for p in parts]
    close(F.cat(ts, axis=ax), np.concatenate(parts, axis=ax))
    close(F.cat(ts, dim=ax), np.concatenate(parts, axis=ax))
    gradcheck(lambda *xs: F.cat(list(xs), ax), *ts)


@fixture_ok
@given(data=st.data(), shape=shapes(max_dims=3, max_side=3), n=st.integers(1, 3))
def test_stack_forward_and_grad(device, data, shape, n):
    ax = data.draw(st.integers(-len(shape) - 1, len(shape)), label="axis")
    parts = [data.draw(arrays(shape)) for _ in range(n)]
    ts = [T(p, device) for p in parts]
    close(F.stack(ts, ax), np.stack(parts, axis=ax))
    gradcheck(lambda *xs: F.stack(list(xs), ax), *ts)


def _weighted_sum_of_pieces(weights):
    """A scalar that uses every piece with its own weight, so a misrouted gradient shows."""
    def fn(pieces):
        total = None
        for p, w in zip(pieces, weights):
            term = (p * tga.Tensor(w, device=p.device)).sum()
            total = term if total is None else total + term
        return total
    return fn


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3, max_side=6))
def test_split_forward_and_grad(device, data, shape):
    ax = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    n = shape[ax]
    a = data.draw(arrays(shape), label="a")
    if data.draw(st.booleans(), label="by_size"):
        size = data.draw(st.integers(1, n + 1), label="size")
        cuts = list(range(size, n, size))
        arg = size
    else:
        cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3), label="cuts"))
        arg = list(np.diff([0] + cuts + [n]))
    expected = np.split(a, cuts, axis=ax)
    ta = T(a, device)
    pieces = ta.split(arg, axis=ax)
    assert len(pieces) == len(expected)
    for p, e in zip(pieces, expected):
        close(p, e)
    weights = [data.draw(arrays(e.shape)) for e in expected]
    gradcheck(lambda x: _weighted_sum_of_pieces(weights)(x.split(arg, dim=ax)), ta)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3, max_side=7), chunks=st.integers(1, 4))
def test_chunk_forward_and_grad(device, data, shape, chunks):
    ax = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    a = data.draw(arrays(shape), label="a")
    n = a.shape[ax]
    size = -(-n // chunks)  # PyTorch: pieces of ceil(n / chunks), the last may be smaller
    expected = np.split(a, list(range(size, n, size)), axis=ax)
    ta = T(a, device)
    pieces = ta.chunk(chunks, ax)
    assert len(pieces) == len(expected) <= chunks
    for p, e in zip(pieces, expected):
        close(p, e)
    weights = [data.draw(arrays(e.shape)) for e in expected]
    gradcheck(lambda x: _weighted_sum_of_pieces(weights)(x.chunk(chunks, ax)), ta)


# ---------------------------------------------------------------- getitem, gather

@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1))
def test_getitem_basic_indices(device, data, shape):
    a = data.draw(arrays(shape), label="a")
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True), label="index")
    ta = T(a, device)
    close(ta[index], np.asarray(a[index]))
    gradcheck(lambda x: x[index], ta)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3))
def test_getitem_integer_arrays_with_repeats(device, data, shape):
    a = data.draw(arrays(shape), label="a")
    n = shape[0]
    idx = np.asarray(data.draw(st.lists(st.integers(-n, n - 1), min_size=0, max_size=8), label="idx"), dtype=np.int64)
    where = data.draw(st.sampled_from(["first", "list", "tensor", "with_slice", "last"]), label="where")
    if where == "first":
        index = idx
    elif where == "list":
        index = [int(i) for i in idx]
    elif where == "tensor":
        index = tga.Tensor(idx, device=device)
    elif where == "with_slice" and len(shape) >= 2:
        index = (idx, slice(None, None, -1))
    elif where == "last":
        idx = idx % shape[-1]
        index = (Ellipsis, idx)
    else:
        index = idx
    np_index = tuple(np.asarray(i.numpy()) if isinstance(i, tga.Tensor) else i for i in index) \
        if isinstance(index, tuple) else (index.numpy() if isinstance(index, tga.Tensor) else np.asarray(index, dtype=np.int64))
    ta = T(a, device)
    close(ta[index], a[np_index])
    gradcheck(lambda x: x[index], ta)
    # repeats accumulate: compare with np.add.at
    g = np.random.default_rng(0).standard_normal(a[np_index].shape)
    ta2 = T(a, device)
    ta2[index].backward(tga.Tensor(g, device=device))
    expected = np.zeros_like(a)
    np.add.at(expected, np_index, g)
    close(ta2.grad, expected)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3))
def test_getitem_boolean_mask(device, data, shape):
    a = data.draw(arrays(shape), label="a")
    k = data.draw(st.integers(1, len(shape)), label="mask_dims")
    mask = data.draw(hnp.arrays(np.bool_, shape[:k]), label="mask")
    ta = T(a, device)
    close(ta[mask], a[mask])
    close(ta[tga.Tensor(mask, device=device)], a[mask])
    gradcheck(lambda x: x[mask], ta)


def test_getitem_repeated_index_gradient_explicit(device):
    x = T([10.0, 20.0, 30.0], device)
    x[[0, 0, 2, 0]].sum().backward()
    close(x.grad, [3.0, 0.0, 1.0])


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3))
def test_gather_forward_and_grad(device, data, shape):
    ax = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    a = data.draw(arrays(shape), label="a")
    ishape = list(shape)
    ishape[ax] = data.draw(st.integers(1, 5), label="picks")
    idx = data.draw(hnp.arrays(np.int64, tuple(ishape), elements=st.integers(0, shape[ax] - 1)), label="idx")
    ta = T(a, device)
    close(ta.gather(ax, idx), np.take_along_axis(a, idx, axis=ax))
    close(F.gather(ta, ax, tga.Tensor(idx, device=device)), np.take_along_axis(a, idx, axis=ax))
    gradcheck(lambda x: x.gather(ax, idx), ta)


# ---------------------------------------------------------------- embedding

@fixture_ok
@given(data=st.data(), vocab=st.integers(1, 6), dim=st.integers(1, 4),
       ids_shape=shapes(min_dims=0, max_dims=2, max_side=6))
def test_embedding_forward_and_grad(device, data, vocab, dim, ids_shape):
    w = data.draw(arrays((vocab, dim)), label="w")
    ids = data.draw(hnp.arrays(np.int64, ids_shape, elements=st.integers(0, vocab - 1)), label="ids")
    pad = data.draw(st.one_of(st.none(), st.integers(0, vocab - 1)), label="padding_idx")
    tw = T(w, device)
    close(F.embedding(ids, tw, pad), w[ids])
    # padding_idx zeroes its row's gradient on purpose (it is not the derivative), so the
    # finite-difference check runs without it and the reference below covers it
    gradcheck(lambda weight: F.embedding(ids, weight), tw)
    # repeated ids accumulate; the padding row gets nothing
    g = np.random.default_rng(1).standard_normal(ids_shape + (dim,))
    tw2 = T(w, device)
    F.embedding(tga.Tensor(ids, device=device), tw2, pad).backward(tga.Tensor(g, device=device))
    expected = np.zeros_like(w)
    np.add.at(expected, ids, g)
    if pad is not None:
        expected[pad] = 0.0
    close(tw2.grad, expected)


def test_embedding_padding_row_gets_zero_grad_explicit(device):
    w = T(np.arange(12.0).reshape(4, 3), device)
    out = F.embedding(np.array([[0, 2, 2], [1, 0, 3]]), w, padding_idx=0)
    close(out[0, 0], [0.0, 1.0, 2.0])  # the padding row is still looked up
    out.sum().backward()
    close(w.grad, [[0.0] * 3, [1.0] * 3, [2.0] * 3, [1.0] * 3])
