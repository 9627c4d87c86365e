"""Self-attention by hand on "The cat sat on the mat.": Q/K/V, scores, softmax, weighted sum, then multi-head.

    python examples/self_attention_walkthrough.py                 # every step printed, heatmaps in runs/walkthrough
    python examples/self_attention_walkthrough.py --quick --out /tmp/walk

Each step prints its shape and values. Then the backward pass: the gradients the
engine computes are compared with the attention backward written out in NumPy, and
every step is checked against finite differences (tinygrad_attn.testing.gradcheck).
Last, multi-head attention: split into heads, attend, concatenate, project, and the
same numbers from nn.MultiHeadAttention, read with tinygrad_attn.inspect.
"""
import argparse
import math
from pathlib import Path

import numpy as np

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn import inspect, nn
from tinygrad_attn.testing import gradcheck

SENTENCE = "The cat sat on the mat."
D_MODEL, D_K, N_HEADS = 8, 4, 2


def show(name, t, note=""):
    a = t.numpy() if isinstance(t, tga.Tensor) else np.asarray(t)
    print(f"\n{name}  shape {tuple(a.shape)}{'  ' + note if note else ''}")
    print(np.array2string(a, precision=2, suppress_small=True, max_line_width=120))


def tokenize(sentence):
    """Words and the final '.', lower-cased for the vocabulary: "The" and "the" share a row."""
    words = sentence.replace(".", " .").split()
    vocab = sorted({w.lower() for w in words})
    return words, np.array([vocab.index(w.lower()) for w in words]), vocab


def attention(x, wq, wk, wv):
    """Single-head self-attention, one line per step: (T, d) -> (T, d_k)."""
    q, k, v = x @ wq, x @ wk, x @ wv
    scores = q @ k.T * (1.0 / math.sqrt(wq.shape[1]))
    return scores.softmax(-1) @ v


def multi_head(x, w_qkv, b_qkv, w_out, b_out, n_heads):
    """Multi-head self-attention written out: (T, d) -> (T, d). Same layout as nn.MultiHeadAttention."""
    t, d = x.shape
    dh = d // n_heads
    qkv = F.linear(x, w_qkv, b_qkv)                                  # (T, 3d): [q | k | v]
    q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(t, n_heads, dh).permute(1, 0, 2) for i in range(3))  # (H, T, dh)
    weights = (q @ k.swapaxes(-1, -2) * (1.0 / math.sqrt(dh))).softmax(-1)   # (H, T, T): each head on its own
    heads = weights @ v                                              # (H, T, dh)
    merged = heads.permute(1, 0, 2).reshape(t, d)                    # concatenate the heads
    return F.linear(merged, w_out, b_out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="check gradients along random directions only")
    parser.add_argument("--out", default="runs/walkthrough", help="where the heatmaps go")
    args = parser.parse_args(argv)
    out = Path(args.out)
    np.set_printoptions(precision=2, suppress=True)
    tga.manual_seed(0)
    rng = np.random.default_rng(0)

    # ---------------------------------------------------------------- 1. tokens -> vectors
    words, ids, vocab = tokenize(SENTENCE)
    T = len(words)
    print(f"sentence: {SENTENCE!r}\ntokens:   {words}\nids:      {ids.tolist()}  (vocabulary {vocab})")
    table = nn.Embedding(len(vocab), D_MODEL, init_std=1.0)
    positions = nn.sinusoid_table(T, D_MODEL)
    x = Tensor64(table(ids).numpy() + positions, requires_grad=True)
    show("token embeddings + sine/cosine positions  X", x,
         "(row i = word i; 'The' and 'the' share an embedding row, only their positions differ)")

    # ---------------------------------------------------------------- 2. projections
    wq, wk, wv = (Tensor64(rng.standard_normal((D_MODEL, D_K)) / math.sqrt(D_MODEL), requires_grad=True)
                  for _ in range(3))
    q, k, v = x @ wq, x @ wk, x @ wv
    show("queries  Q = X Wq", q, "what each word is looking for")
    show("keys     K = X Wk", k, "what each word offers to be found by")
    show("values   V = X Wv", v, "what each word passes on when attended to")

    # ---------------------------------------------------------------- 3. scores, 4. softmax, 5. weighted sum
    scores = q @ k.T * (1.0 / math.sqrt(D_K))
    show(f"scores   S = Q K^T / sqrt(d_k={D_K})", scores, "row i: how well query i matches every key")
    weights = scores.softmax(-1)
    show("weights  A = softmax(S) over each row", weights, "every row sums to 1")
    attended = weights @ v
    show("output   O = A V", attended, "each word's new vector: a weighted mean of the values")
    a = weights.numpy()
    for i, w in enumerate(words):
        j = int(a[i].argmax())
        print(f"  {w!r:>6} attends most to {words[j]!r:>6} ({a[i, j]:.2f})")
    reference = F.scaled_dot_product_attention(q, k, v)
    print(f"\nsame as F.scaled_dot_product_attention: max |difference| = "
          f"{np.abs(reference.numpy() - attended.numpy()).max():.1e}")

    # ---------------------------------------------------------------- 6. backward, by the engine and by hand
    target = rng.standard_normal(attended.shape)
    for t in (scores, weights, q, k, v):
        t.retain_grad()
    loss = ((attended - Tensor64(target)) ** 2).mean()
    loss.backward()
    print(f"\nloss L = mean((O - target)^2) = {loss.item():.4f}; backward through the five steps, by hand in NumPy:")
    X, Wq, Wk, Wv, Q, K, V, A = (t.numpy() for t in (x, wq, wk, wv, q, k, v, weights))
    dO = 2 * (A @ V - target) / target.size                       # d mean(e^2) / dO
    dA = dO @ V.T                                                 # O = A V
    dV = A.T @ dO
    dS = A * (dA - (dA * A).sum(-1, keepdims=True))               # softmax: J = diag(a) - a a^T, row by row
    dQ = dS @ K / math.sqrt(D_K)                                  # S = Q K^T / sqrt(d_k)
    dK = dS.T @ Q / math.sqrt(D_K)
    dX = dQ @ Wq.T + dK @ Wk.T + dV @ Wv.T                        # X feeds all three projections
    for name, mine, engine in (("dL/dA", dA, weights), ("dL/dS", dS, scores), ("dL/dQ", dQ, q), ("dL/dK", dK, k),
                               ("dL/dV", dV, v), ("dL/dWq", X.T @ dQ, wq), ("dL/dX", dX, x)):
        print(f"  {name:7} {str(mine.shape):7} by hand vs engine: max |difference| = "
              f"{np.abs(mine - engine.grad.numpy()).max():.1e}")
    show("dL/dS, the gradient reaching the scores", dS,
         "each row sums to 0: adding a constant to a row of scores changes no weight")

    # ---------------------------------------------------------------- 7. finite differences
    elementwise = 0 if args.quick else 256   # --quick: random directions only
    checks = [("scores   Q, K -> Q K^T / sqrt(d_k)", lambda q_, k_: q_ @ k_.T * (1.0 / math.sqrt(D_K)), (q, k)),
              ("softmax  S -> A", lambda s: s.softmax(-1), (scores,)),
              ("sum      A, V -> A V", lambda w, v_: w @ v_, (weights, v)),
              ("all      X, Wq, Wk, Wv -> O", attention, (x, wq, wk, wv))]
    print("\nfinite differences (central, float64) against the engine's gradients:")
    for name, fn, inputs in checks:
        inputs = [Tensor64(t.numpy(), requires_grad=True) for t in inputs]
        gradcheck(fn, *inputs, max_elementwise=elementwise)   # raises GradcheckError on a mismatch
        print(f"  {name}: ok")

    # ---------------------------------------------------------------- 8. multi-head
    print(f"\nmulti-head attention, {N_HEADS} heads of d_model/H = {D_MODEL // N_HEADS}:")
    mha = nn.MultiHeadAttention(D_MODEL, N_HEADS, init_std=0.5).double()
    params = [mha.qkv.weight, mha.qkv.bias, mha.out_proj.weight, mha.out_proj.bias]
    xd = x.detach()
    with inspect.capture(mha) as cap:
        y = mha(xd.reshape(1, T, D_MODEL))
        (y * Tensor64(rng.standard_normal(y.shape))).sum().backward()
    q_heads, k_heads, v_heads = (t[0] for t in cap.qkv["MultiHeadAttention"])   # (H, T, dh) each
    print(f"  split:  X W_qkv^T + b is (T, 3 d_model) = ({T}, {3 * D_MODEL}) = [q | k | v]; each part is cut into "
          f"heads: q, k, v are (H, T, dh) = {q_heads.shape}")
    show("  q of head 0", q_heads[0])
    print(f"  attend: each head its own (T, T) weights; concatenate: (T, H*dh) = ({T}, {D_MODEL}); "
          f"project: W_out (d_model, d_model)")
    mine = multi_head(xd, *params, N_HEADS)
    print(f"  nn.MultiHeadAttention vs the function multi_head above: max |difference| = "
          f"{np.abs(mine.numpy() - y.numpy()[0]).max():.1e}")
    w_heads = cap.attention_weights["MultiHeadAttention"][0]          # (H, T, T)
    for h in range(N_HEADS):
        show(f"head {h} weights", w_heads[h])
    # dL/dscores by the softmax formula from the captured weights and dL/dweights: must equal the captured dL/dscores
    dw = cap.weight_grads["MultiHeadAttention"][0]
    ds = w_heads * (dw - (dw * w_heads).sum(-1, keepdims=True))
    print(f"  captured dL/dscores vs softmax formula on captured weights: max |difference| = "
          f"{np.abs(ds - cap.score_grads['MultiHeadAttention'][0]).max():.1e}")
    print(f"  gradient norm per head (its rows of W_qkv, its columns of W_out): "
          f"{np.array2string(cap.head_grad_norms()['MultiHeadAttention'], precision=4)}")
    print(f"  |dL/dq|, |dL/dk|, |dL/dv| per head (rows q, k, v; a column per head):\n"
          f"{np.array2string(cap.qkv_grad_norms()['MultiHeadAttention'], precision=4)}")
    inputs = [Tensor64(t.numpy(), requires_grad=True) for t in [xd] + params]
    gradcheck(lambda *a: multi_head(*a, N_HEADS), *inputs, max_elementwise=elementwise)
    print("  finite differences for X, W_qkv, b_qkv, W_out, b_out: ok")

    # ---------------------------------------------------------------- 9. heatmaps
    try:
        from tinygrad_attn import plots
        paths = [plots.plot_attention(a, words, out / "single_head.png",
                                      title="one head, A = softmax(Q K^T / sqrt(d_k))"),
                 plots.plot_attention(w_heads, words, out / "multi_head.png", title=f"{N_HEADS} heads")]
        print("\nheatmaps: " + ", ".join(str(p) for p in paths))
    except ImportError as e:
        print(f"\nno heatmaps: {e}")


def Tensor64(data, requires_grad=False):
    """float64 throughout: the hand-written NumPy backward then matches to ~1e-16."""
    return tga.Tensor(np.asarray(data, dtype=np.float64), requires_grad=requires_grad)


if __name__ == "__main__":
    main()
