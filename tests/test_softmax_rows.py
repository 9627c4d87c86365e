"""Each row of a softmax is its own: rows far apart in magnitude, rows with nothing kept, NaN,
short rows (which the CPU reduces down the columns of a transposed copy). Each case is held
against a float64 softmax computed here, row by row; and no row's bits depend on another row
(a causal model's early positions must not change when later tokens do)."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import functional as F


def reference_softmax(x, mask=None):
    x = np.asarray(x, dtype=np.float64)
    if mask is not None:
        x = np.where(mask, x, -np.inf)
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    total = e.sum(-1, keepdims=True)
    return e / np.where(total == 0, 1.0, total)


def rows_at(offsets, width=16, seed=0):
    """float32 rows of spread-out scores, row i shifted by offsets[i]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-12.0, 0.0, (len(offsets), width))
    return (x + np.asarray(offsets, dtype=np.float64)[:, None]).astype(np.float32)


def assert_rows_close(got, want):
    # relative to each entry, down to what float32 holds as a normal number
    big = want > 1e-30
    np.testing.assert_allclose(got[big], want[big], rtol=2e-5)
    np.testing.assert_allclose(got[~big], want[~big], atol=1e-30)


@pytest.mark.parametrize("width", [2, 16, 32, 33, 128])
@pytest.mark.parametrize("offsets", [[0.0, -3.0, 2.0] * 30, [0.0, -30.0], [0.0, -45.0], [0.0, -95.0], [50.0, -1000.0]],
                         ids=["close", "30-apart", "45-apart", "95-apart", "1050-apart"])
def test_each_row_is_its_own_softmax_however_far_below_the_others(offsets, width):
    x = rows_at(offsets, width)
    assert_rows_close(F.softmax(tga.tensor(x), -1).data, reference_softmax(x))


@pytest.mark.parametrize("width", [8, 32, 128])
def test_no_row_depends_on_another_to_the_last_bit(width):
    x = rows_at([0.0, 5.0, -3.0, 1.0] * 16, width, seed=3)
    together = F.softmax(tga.tensor(x), -1).data
    for i in range(len(x)):
        assert np.array_equal(F.softmax(tga.tensor(x[i:i + 1]), -1).data, together[i:i + 1])
    changed = x.copy()
    changed[1:] += 40.0  # every other row moves far up: row 0 keeps its bits
    assert np.array_equal(F.softmax(tga.tensor(changed), -1).data[0], together[0])


def test_attention_weights_of_rows_far_apart_match_the_float64_softmax():
    q = rows_at([0.0] * 4, width=8)[None, None]          # (1, 1, 4, 8)
    k = np.eye(8, dtype=np.float32)[None, None] * 1.0
    q[0, 0, 1] -= 90.0                                    # one query row's scores far below the rest
    _, w = F.scaled_dot_product_attention(tga.tensor(q), tga.tensor(k), tga.tensor(k), scale=1.0,
                                          return_weights=True)
    assert_rows_close(w.data[0, 0], reference_softmax(q[0, 0] @ k[0, 0].T))


def test_a_row_with_nothing_kept_is_zero_and_the_others_are_untouched():
    x = rows_at([0.0, 1.0, -2.0])
    mask = np.ones(x.shape, dtype=bool)
    mask[1] = False
    mask[2, :5] = False
    got = F.softmax(tga.tensor(x), -1, mask=tga.tensor(mask)).data
    assert np.all(got[1] == 0)
    assert_rows_close(got, reference_softmax(x, mask))


def test_a_nan_stays_in_its_own_row():
    x = rows_at([0.0, 0.0, 0.0])
    x[1, 3] = np.nan
    got = F.softmax(tga.tensor(x), -1).data
    assert np.isnan(got[1]).all()
    assert_rows_close(got[[0, 2]], reference_softmax(x[[0, 2]]))


def test_float64_rows_far_apart():
    x = rows_at([0.0, -700.0]).astype(np.float64)
    np.testing.assert_allclose(F.softmax(tga.tensor(x), -1).data, reference_softmax(x), rtol=1e-12, atol=1e-300)


def test_attention_rows_with_and_without_the_max_shift_match_the_float64_softmax_and_each_other():
    # the CPU backend skips the row max in rows whose scores are proven within +-60; a query
    # row scaled far up (scores in the hundreds) must take the shifted path, and no row's bits may
    # depend on whether another row took it
    rng = np.random.default_rng(5)
    q = rng.standard_normal((1, 2, 6, 8)).astype(np.float32)
    k = rng.standard_normal((1, 2, 7, 8)).astype(np.float32)
    big = q.copy()
    big[0, :, 2] *= 300.0

    identity = np.broadcast_to(np.eye(7, dtype=np.float32), (1, 2, 7, 7)).copy()

    def weights(queries):  # the attention op's output with v = I is its weights
        return F.scaled_dot_product_attention(tga.tensor(queries), tga.tensor(k), tga.tensor(identity)).data

    small_w, big_w = weights(q), weights(big)
    assert np.isfinite(big_w).all()
    for query, got, rtol in ((q, small_w, 2e-5), (big, big_w, 1e-4)):  # float32 scores near 300 round at ~2e-5
        want = reference_softmax((query.astype(np.float64) @ k.swapaxes(-1, -2).astype(np.float64) / np.sqrt(8)).reshape(-1, 7))
        np.testing.assert_allclose(got.reshape(-1, 7), want, rtol=rtol, atol=1e-30)
    others = [0, 1, 3, 4, 5]
    assert np.array_equal(small_w[:, :, others], big_w[:, :, others])
