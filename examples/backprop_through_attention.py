"""How gradients flow through attention: masking, the 1/sqrt(d_k) scale, and a saturated softmax, measured.

    python examples/backprop_through_attention.py                  # ~a minute on a CPU, plots in runs/backprop
    python examples/backprop_through_attention.py --quick --out /tmp/bp

1. Train a one-layer GPT to copy the previous token (it must learn to look one step
   back), then read its attention and gradients with tinygrad_attn.inspect: a masked
   position gets exactly zero weight and exactly zero gradient, in the scores and in
   its key and value.
2. Why scores are divided by sqrt(d_k): q.k of unit-variance vectors has variance d_k,
   so without the scale the softmax saturates as d_k grows and dL/dscores shrinks.
3. Saturation itself: multiply the logits by c and watch the softmax Jacobian
   diag(p) - p p^T collapse as p becomes one-hot: no gradient gets through.
"""
import argparse
import math
from pathlib import Path

import numpy as np

import tinygrad_attn as tga
from tinygrad_attn import inspect, nn, optim
from tinygrad_attn.train import Trainer
from tinygrad_attn.models import GPT, GPTConfig

VOCAB, SEQ = 8, 10
IGNORE = -100


def copy_previous_batch(rng, batch_size=32):
    """ids (B, T) random; target at t is ids[t-1] (position 0 has nothing before it: ignored)."""
    ids = rng.integers(0, VOCAB, (batch_size, SEQ))
    targets = np.full_like(ids, IGNORE)
    targets[:, 1:] = ids[:, :-1]
    return ids, targets


def loss_fn(model, batch):
    ids, targets = batch
    return tga.functional.cross_entropy(model(ids), targets, ignore_index=IGNORE)


def norm(a) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64)))


# -------------------------------------------------------------------- 1. a trained model, and masking

def train_and_inspect(args, out, plots):
    print("== 1. a 1-layer GPT learns to copy the previous token ==")
    tga.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, seq_len=SEQ, d_model=32, n_heads=2, n_layers=1))
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    probe = copy_previous_batch(np.random.default_rng(123), 4)

    def grads_of(batch):
        model.zero_grad()
        with inspect.capture(model) as cap:
            loss_fn(model, batch).backward()
        return cap

    before = grads_of(probe)
    steps = 60 if args.quick else 300
    trainer = Trainer(model, opt, copy_previous_batch, loss_fn, steps=steps, eval_every=steps, out_dir=out / "train",
                      grad_clip=1.0, log_every=steps // 4, progress=False)
    history = trainer.fit()
    cap = grads_of(probe)
    with tga.no_grad():
        pred = model(probe[0]).numpy().argmax(-1)
    accuracy = float((pred[:, 1:] == probe[1][:, 1:]).mean())
    print(f"loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f} in {steps} steps; "
          f"copy accuracy on a fresh batch {accuracy:.0%}")

    layer = "blocks.0.attn"
    w, ds = cap.attention_weights[layer], cap.score_grads[layer]        # (B, H, T, T)
    future = ~np.tril(np.ones((SEQ, SEQ), dtype=bool))                  # causal mask: keys after the query
    print(f"\ncausal mask: of {future.sum()} future keys per head, weights max {np.abs(w[..., future]).max():.1f}, "
          f"dL/dscores max |.| {np.abs(ds[..., future]).max():.1f} (exactly zero), "
          f"while allowed keys get dL/dscores up to {np.abs(ds[..., ~future]).max():.2e}")
    back = np.array([w[:, :, t, t - 1].mean() for t in range(1, SEQ)])
    print(f"weight on the previous token (mean over queries), per head: "
          f"{[round(float(w[:, h, np.arange(1, SEQ), np.arange(SEQ - 1)].mean()), 2) for h in range(w.shape[1])]}"
          f"  (all heads: {back.mean():.2f}; uniform would be ~{np.mean(1 / np.arange(2, SEQ + 1)):.2f})")
    print("gradient norm per layer, before -> after training:")
    after = cap.layer_grad_norms()
    for name, g in before.layer_grad_norms().items():
        print(f"  {name:10} {g:.3e} -> {after[name]:.3e}")
    print(f"gradient norm per head of {layer} (rows of W_qkv + columns of W_out), before -> after: "
          f"{np.round(before.head_grad_norms()[layer], 4)} -> {np.round(cap.head_grad_norms()[layer], 4)}")

    key_padding_demo()

    if plots is not None:
        tokens = [str(i) for i in probe[0][0]]
        paths = [plots.plot_loss_curve(out / "train", out / "loss.png", title="copy-previous-token: training loss"),
                 plots.plot_attention(w, tokens, out / "attention_trained.png",
                                      title="trained: each query looks one token back"),
                 plots.plot_attention(before.attention_weights[layer], tokens, out / "attention_untrained.png",
                                      title="untrained: uniform over the past (causal mask)"),
                 plots.plot_grad_norms(cap.grad_norms(), out / "grad_norms.png", title="gradient norm per parameter"),
                 plots.plot_head_grad_norms({"before": before.head_grad_norms()[layer],
                                             "after": cap.head_grad_norms()[layer]}, out / "head_grad_norms.png",
                                            title=f"{layer}: gradient norm per head (log colour scale)", log=True)]
        return paths
    return []


def key_padding_demo():
    """Padding: hidden keys get no weight, and their k and v get exactly zero gradient."""
    tga.manual_seed(1)
    attn = nn.MultiHeadAttention(16, 2, init_std=0.3)
    x = tga.randn(2, 6, 16, requires_grad=True)
    real = np.ones((2, 6), dtype=bool)
    real[0, 4:] = False                                   # item 0: its last two tokens are padding
    with inspect.capture(attn) as cap:
        y = attn(x, key_padding_mask=real)
        (y * tga.tensor(real[..., None].astype(np.float32))).sum().backward()   # loss on real tokens only
    dq, dk, dv = (g[0] for g in cap.qkv_grads["MultiHeadAttention"])            # (H, T, dh), item 0
    ds = cap.score_grads["MultiHeadAttention"][0]
    print(f"\nkey padding (item 0, tokens 4-5 are [PAD]): "
          f"dL/dscores on padded keys max |.| {np.abs(ds[..., 4:]).max():.1f}; "
          f"dL/dk and dL/dv of padded tokens max |.| {max(np.abs(dk[:, 4:]).max(), np.abs(dv[:, 4:]).max()):.1f}; "
          f"real tokens: {max(np.abs(dk[:, :4]).max(), np.abs(dv[:, :4]).max()):.2e}; "
          f"dL/dx of padded tokens {np.abs(x.grad.numpy()[0, 4:]).max():.1f} (nothing downstream reads them)")


# -------------------------------------------------------------------- 2. the 1/sqrt(d_k) scale

def scaling_experiment(args, out, plots):
    print("\n== 2. why divide the scores by sqrt(d_k) ==")
    print("q, k, v ~ N(0, 1), T = 16 tokens; L = sum(softmax(S) V * G), G ~ N(0, 1/d_k) so that dL/dA has the same")
    print("size at every d_k; 'one-hot' = share of rows whose largest weight is > 0.99; mean over 8 draws")
    dims = [4, 16, 64, 256] if args.quick else [4, 16, 64, 256, 1024]
    rng = np.random.default_rng(0)
    rows = {"scaled": [], "unscaled": []}
    head = f"{'std(S)':>7} {'one-hot':>8} {'|dL/dS|':>9}"
    print(f"{'':>6} | {'S = Q K^T / sqrt(d_k)':^26} | {'S = Q K^T (no scale)':^26}")
    print(f"{'d_k':>6} | {head} | {head}")
    for d in dims:
        line = f"{d:>6}"
        for kind in ("scaled", "unscaled"):
            stats = []
            for _ in range(8):
                q, k, v = (tga.tensor(rng.standard_normal((16, d)), requires_grad=True) for _ in range(3))
                g = tga.tensor(rng.standard_normal((16, d)) / math.sqrt(d))
                scale = 1.0 / math.sqrt(d) if kind == "scaled" else 1.0
                scores = q @ k.T * scale
                scores.retain_grad()
                weights = scores.softmax(-1)
                (weights @ v * g).sum().backward()
                stats.append((scores.numpy().std(), (weights.numpy().max(-1) > 0.99).mean(),
                              norm(scores.grad.numpy())))
            s_std, one_hot, ds = np.mean(stats, axis=0)
            rows[kind].append(ds)
            line += f" | {s_std:7.2f} {one_hot:8.0%} {ds:9.3e}"
        print(line)
    print("scaled: the scores keep unit spread and the gradient reaching them keeps its size at every d_k;")
    print("unscaled: std(S) grows like sqrt(d_k), more and more rows turn one-hot, and dL/dS shrinks: "
          f"{rows['unscaled'][0] / rows['unscaled'][-1]:.0f}x smaller at d_k={dims[-1]} than at d_k={dims[0]}, "
          f"against {rows['scaled'][0] / rows['scaled'][-1]:.1f}x with the scale.")
    if plots is not None:
        return [plots.plot_curves(dims, {"S = QK^T / sqrt(d_k)": rows["scaled"], "S = QK^T": rows["unscaled"]},
                                  out / "scaling.png", xlabel="d_k", ylabel="|dL/dscores|", logx=True, logy=True,
                                  title="gradient reaching the scores")]
    return []


# -------------------------------------------------------------------- 3. a saturated softmax

def saturation_experiment(args, out, plots):
    print("\n== 3. a saturated softmax passes no gradient ==")
    z0 = np.random.default_rng(0).standard_normal(16)
    scales = [0.1, 1, 3, 10, 30] if args.quick else [0.1, 0.3, 1, 3, 10, 30, 100]
    jac_norms, grad_norms = [], []
    print(f"{'c':>6} {'max p':>7} {'|J|_F':>10} {'|dL/dz|':>10}   (p = softmax(c z), J = dp/dz, L = sum(p * g))")
    g = tga.tensor(np.random.default_rng(1).standard_normal(16))
    for c in scales:
        z = tga.tensor(c * z0, requires_grad=True)
        p = z.softmax(-1)
        # the Jacobian row by row with the engine: row i is the gradient of p[i]
        rows = [tga.grad(p[i], z, retain_graph=True)[0].numpy() for i in range(16)]
        jac = np.stack(rows)
        pn = p.numpy()
        assert np.allclose(jac, np.diag(pn) - np.outer(pn, pn), atol=1e-12)   # the closed form agrees
        (dz,) = tga.grad((p * g).sum(), z)
        jac_norms.append(norm(jac))
        grad_norms.append(norm(dz.numpy()))
        print(f"{c:>6} {pn.max():7.4f} {jac_norms[-1]:10.3e} {grad_norms[-1]:10.3e}")
    print("as the largest p -> 1, every entry of diag(p) - p p^T -> 0: the logits stop learning.")
    if plots is not None:
        floor = 1e-30   # a log axis cannot show an exact 0
        return [plots.plot_curves(scales, {"|J|_F": np.maximum(jac_norms, floor),
                                           "|dL/dz|": np.maximum(grad_norms, floor)},
                                  out / "saturation.png", xlabel="logit scale c", ylabel="norm", logx=True,
                                  logy=True, title="softmax(c z): gradient vanishes as c grows")]
    return []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer training steps, smaller sweeps")
    parser.add_argument("--out", default="runs/backprop", help="training log and plots go here")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        from tinygrad_attn import plots
        plots._figure((1, 1), 10)   # fails now, not after training, if matplotlib is missing
    except ImportError as e:
        print(f"(no plots: {e})")
        plots = None
    paths = train_and_inspect(args, out, plots)
    paths += scaling_experiment(args, out, plots)
    paths += saturation_experiment(args, out, plots)
    if paths:
        print("\nplots: " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
