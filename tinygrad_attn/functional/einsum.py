"""einsum: any subscripts, built from diagonal, sum, permute, reshape and matmul, so the
gradient (and the gradient of the gradient) comes for free."""
from __future__ import annotations

from ..errors import ShapeError
from .arrange import diagonal
from .linalg import matmul
from .reduce import sum


def einsum(subscripts: str, *operands):
    """Einstein summation, as numpy.einsum / torch.einsum: "ij,jk->ik", "bhqd,bhkd->bhqk", "ii->i",
    "ij->" ...; without "->" the output is the letters that appear once, in alphabetical order.
    Ellipses ("...") are not supported."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise ValueError(f"einsum: ellipses are not supported, got {subscripts!r}; write the axes out")
    inputs, arrow, output = spec.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands, got {len(operands)}")
    if not arrow:
        letters = "".join(terms)
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    sizes = {}
    for term, x in zip(terms, operands):
        if len(term) != x.ndim or not term.isalpha():
            raise ShapeError(f"einsum: term {term!r} does not fit an operand of shape {x.shape}")
        for c, n in zip(term, x.shape):
            if sizes.setdefault(c, n) != n:
                raise ShapeError(f"einsum: index {c!r} has sizes {sizes[c]} and {n} in {subscripts!r}")
    if any(c not in sizes for c in output) or len(set(output)) != len(output):
        raise ValueError(f"einsum: output {output!r} repeats an index or names one no input has")
    pieces = [_single(x, term, set(output).union(*(set(t) for j, t in enumerate(terms) if j != i)))
              for i, (x, term) in enumerate(zip(operands, terms))]
    x, term = pieces[0]
    for i, (y, other) in enumerate(pieces[1:], start=1):
        later = set(output).union(*(set(t) for t in terms[i + 1:]))
        x, term = _pair(x, term, y, other, later)
    x, term = _single(x, term, set(output))
    return x.permute(*[term.index(c) for c in output]) if term != output else x


def _single(x, term, needed):
    """Take repeated indices' diagonals and sum the indices nothing else needs."""
    for c in dict.fromkeys(term):
        while term.count(c) > 1:
            first = term.index(c)
            second = term.index(c, first + 1)
            x = diagonal(x, 0, first, second)
            term = term[:first] + term[first + 1:second] + term[second + 1:] + c
    gone = [i for i, c in enumerate(term) if c not in needed]
    if gone:
        x = sum(x, tuple(gone))
        term = "".join(c for c in term if c in needed)
    return x, term


def _pair(a, ta, b, tb, later):
    """Contract two operands with one matmul: (batch, left, k) @ (batch, k, right)."""
    batch = [c for c in ta if c in tb and c in later]
    summed = [c for c in ta if c in tb and c not in later]
    left = [c for c in ta if c not in tb]
    right = [c for c in tb if c not in ta]
    size = dict(zip(ta, a.shape)) | dict(zip(tb, b.shape))

    def count(cs):
        n = 1
        for c in cs:
            n *= size[c]
        return n

    a3 = a.permute(*[ta.index(c) for c in batch + left + summed]).reshape(count(batch), count(left), count(summed))
    b3 = b.permute(*[tb.index(c) for c in batch + summed + right]).reshape(count(batch), count(summed), count(right))
    out = matmul(a3, b3).reshape(tuple(size[c] for c in batch + left + right))
    return out, "".join(batch + left + right)
