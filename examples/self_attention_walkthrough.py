"""Self-attention step by step on "The cat sat on the mat.", with a trained model's own weights, forward and backward.

    python examples/self_attention_walkthrough.py                 # trains the small study model (~1 min) if needed
    python examples/self_attention_walkthrough.py --run runs/mlm  # the first layer of any trained run
    python examples/self_attention_walkthrough.py --random        # untrained weights, labelled as such
    python examples/self_attention_walkthrough.py --quick --out /tmp/walk

The first attention layer of the model is recomputed by hand in NumPy (float64), one
step at a time: embeddings, the block's LayerNorm, Q/K/V, scores, scaled scores,
softmax weights, the weighted sum per head, the concatenation and the output
projection, each with its shape and checked against what the model itself computed
(read with tinygrad_attn.inspect). Then the backward pass of each step, written out in
NumPy from the gradient that reaches the layer's output, checked against the engine,
and every step against finite differences. Plots of every step go to --out.
"""
import argparse
import math
from pathlib import Path

import numpy as np

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn import inspect
from tinygrad_attn.testing import gradcheck
from tinygrad_attn.models.study import study_model

SENTENCE = "The cat sat on the mat."
LAYER = "blocks.0.attn"


def show(name, a, note="", cols=12):
    """Print an array's shape and values; wide ones are cut to their first `cols` columns, small ones as 1e-4."""
    a = np.asarray(a)
    cut = a[..., :cols] if a.shape[-1] > cols else a
    more = f" (first {cols} of {a.shape[-1]} columns)" if a.shape[-1] > cols else ""
    print(f"\n{name}  shape {tuple(a.shape)}{more}{'  ' + note if note else ''}")
    tiny = 0 < np.abs(cut).max() < 0.01
    print(np.array2string(cut, precision=3, suppress_small=not tiny, max_line_width=160,
                          formatter={"float_kind": "{:.1e}".format} if tiny else None))


def diff(mine, engine) -> float:
    return float(np.abs(np.asarray(mine) - np.asarray(engine)).max())


def sentence_ids(kind, tokenizer):
    """The ids the model reads: [CLS] text [SEP] for the encoder, the text alone for the decoder."""
    ids = tokenizer.encode(SENTENCE)
    if kind == "mlm":
        ids = [tokenizer.token_to_id("[CLS]")] + ids + [tokenizer.token_to_id("[SEP]")]
    return np.array([ids]), [tokenizer.id_to_token(i) for i in ids]


def layer_norm(x, gamma, beta, eps):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def softmax(s, mask):
    s = np.where(mask, s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def forward_by_hand(model, ids, causal):
    """Every step of the first attention layer, in NumPy float64: name -> array."""
    block, attn = model.blocks[0], model.blocks[0].attn
    d, H, dh = attn.d_model, attn.n_heads, attn.head_dim
    T = ids.shape[1]
    p = {n: t.numpy() for n, t in model.named_parameters()}
    s = {"X": p["tok_emb.weight"][ids[0]] + p["pos_emb.weight"][:T]}                  # (T, d)
    s["LN(X)"] = layer_norm(s["X"], p["blocks.0.ln1.weight"], p["blocks.0.ln1.bias"], block.ln1.eps)
    W, b = p[f"{LAYER}.qkv.weight"], p[f"{LAYER}.qkv.bias"]                           # (3d, d), (3d,)
    for i, name in enumerate("QKV"):
        s[name] = s["LN(X)"] @ W[i * d:(i + 1) * d].T + b[i * d:(i + 1) * d]           # (T, d)
        s[name + "h"] = s[name].reshape(T, H, dh).transpose(1, 0, 2)                   # (H, T, dh): split heads
    s["mask"] = np.tril(np.ones((T, T), bool)) if causal else np.ones((T, T), bool)
    s["S"] = s["Qh"] @ s["Kh"].transpose(0, 2, 1)                                     # (H, T, T)
    s["S/sqrt(dh)"] = s["S"] / math.sqrt(dh)
    s["A"] = softmax(s["S/sqrt(dh)"], s["mask"])
    s["Oh"] = s["A"] @ s["Vh"]                                                        # (H, T, dh)
    s["concat"] = s["Oh"].transpose(1, 0, 2).reshape(T, d)                            # (T, H*dh)
    s["Y"] = s["concat"] @ p[f"{LAYER}.out_proj.weight"].T + p[f"{LAYER}.out_proj.bias"]
    return s


def model_loss(model, kind, ids):
    """The model's own loss on the sentence: next token (decoder), or every token reproduced (encoder)."""
    if kind == "gpt":
        targets = np.concatenate([ids[:, 1:], [[-100]]], axis=1)       # the last token has nothing to predict
        return F.cross_entropy(model(ids), targets, ignore_index=-100), "next-token cross entropy over the sentence"
    labels = ids.copy()
    labels[:, [0, -1]] = -100
    return model.loss(ids, labels), "cross entropy of reproducing every token (as BERT does for kept tokens)"


def backward_by_hand(s, dY, params, dh):
    """The same steps backwards, from dL/dY: name -> gradient."""
    T, d = s["concat"].shape
    H = s["A"].shape[0]
    g = {"dY": dY}
    g["dW_out"] = dY.T @ s["concat"]                                              # Y = C W_out^T + b
    g["dconcat"] = dY @ params[f"{LAYER}.out_proj.weight"]
    g["dOh"] = g["dconcat"].reshape(T, H, dh).transpose(1, 0, 2)                  # undo the concatenation
    g["dA"] = g["dOh"] @ s["Vh"].transpose(0, 2, 1)                              # O = A V
    g["dVh"] = s["A"].transpose(0, 2, 1) @ g["dOh"]
    A = s["A"]
    g["dS/sqrt(dh)"] = A * (g["dA"] - (g["dA"] * A).sum(-1, keepdims=True))     # softmax: J = diag(a) - a a^T
    g["dS"] = g["dS/sqrt(dh)"] / math.sqrt(dh)                                   # the scale, backwards
    g["dQh"] = g["dS"] @ s["Kh"]                                                 # S = Q K^T
    g["dKh"] = g["dS"].transpose(0, 2, 1) @ s["Qh"]
    merge = {n: g[f"d{n}h"].transpose(1, 0, 2).reshape(T, d) for n in "QKV"}
    g["dW_qkv"] = np.concatenate([merge[n].T @ s["LN(X)"] for n in "QKV"])      # (3d, d)
    W = params[f"{LAYER}.qkv.weight"]
    g["dLN(X)"] = sum(merge[n] @ W[i * d:(i + 1) * d] for i, n in enumerate("QKV"))   # LN(X) feeds all three
    return g


def engine_forward(model, cap, ids):
    """The same steps as the model computed them (read with inspect.capture): name -> array."""
    q, k, v = (a[0] for a in cap.qkv[LAYER])
    return {"X": model.hidden_states(ids)[0].numpy()[0], "LN(X)": cap.layer_outputs["blocks.0.ln1"][0],
            "Qh": q, "Kh": k, "Vh": v, "S/sqrt(dh)": cap.attention_scores[LAYER][0],
            "A": cap.attention_weights[LAYER][0], "Oh": cap.head_outputs[LAYER][0],
            "concat": cap.merged_heads[LAYER][0], "Y": cap.layer_outputs[LAYER][0]}


def engine_backward(cap):
    """The engine's gradients at the same steps: name -> array."""
    dq, dk, dv = (a[0] for a in cap.qkv_grads[LAYER])
    return {"dW_out": cap.param_grads[f"{LAYER}.out_proj.weight"], "dconcat": cap.merged_head_grads[LAYER][0],
            "dOh": cap.head_output_grads[LAYER][0], "dA": cap.weight_grads[LAYER][0],
            "dS/sqrt(dh)": cap.score_grads[LAYER][0], "dQh": dq, "dKh": dk, "dVh": dv,
            "dW_qkv": cap.param_grads[f"{LAYER}.qkv.weight"], "dLN(X)": cap.output_grads["blocks.0.ln1"][0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="a trained run directory (tinygrad-attn train mlm or gpt)")
    parser.add_argument("--random", action="store_true", help="untrained weights (the run's architecture if --run)")
    parser.add_argument("--quick", action="store_true", help="train only a few steps; gradients along random directions")
    parser.add_argument("--model-out", default="runs/study", help="where the study model is trained without --run")
    parser.add_argument("--out", default="runs/walkthrough", help="where the plots go")
    args = parser.parse_args(argv)
    out = Path(args.out)
    study = study_model(args.run, args.model_out, random=args.random, quick=args.quick, any_kind=True)
    model, tokenizer, kind = study.model.double(), study.tokenizer, study.kind   # float64: by hand == engine to ~1e-15
    model.eval()
    attn = model.blocks[0].attn
    d, H, dh = attn.d_model, attn.n_heads, attn.head_dim
    causal = kind == "gpt"
    print(f"\nweights: {study.label}")

    # ---------------------------------------------------------------- 1. tokens
    ids, tokens = sentence_ids(kind, tokenizer)
    T = ids.shape[1]
    print(f"sentence: {SENTENCE!r}\ntokens:   {tokens}\nids:      {ids[0].tolist()}")
    the, the_lower = tokenizer.encode("The"), tokenizer.encode(" the")
    same = "the same token" if the == the_lower else f"different tokens ({the} and {the_lower})"
    print(f"'The' and ' the' are {same}: the model {'reads them as one' if the == the_lower else 'must learn their link'}")

    # ---------------------------------------------------------------- 2. the forward, by hand and by the model
    s = forward_by_hand(model, ids, causal)
    with inspect.capture(model, layers=["blocks.0.ln1", LAYER]) as cap:
        loss, what = model_loss(model, kind, ids)
        loss.backward()
    engine = engine_forward(model, cap, ids)
    notes = {
        "X": "token embedding + position embedding, one row per token",
        "LN(X)": "the block normalises each row before attention (pre-norm); this is what Q, K, V read",
        "Qh": f"queries Q = LN(X) Wq^T + bq, split into H={H} heads of dh={dh}: what each token looks for",
        "Kh": "keys: what each token offers to be found by",
        "Vh": "values: what each token passes on when attended to",
        "S": "scores Q K^T per head: row i, how well query i matches every key",
        "S/sqrt(dh)": f"scaled by 1/sqrt({dh}) so their spread does not grow with dh",
        "A": "softmax over each row (keys)" + (", future keys masked to 0" if causal else "") + ": rows sum to 1",
        "Oh": "weighted sum per head O = A V: each token's new vector, a mix of the values",
        "concat": f"the heads side by side: (T, H*dh) = ({T}, {d})",
        "Y": "output projection Y = concat W_out^T + b_out: what the layer adds to the residual stream",
    }
    for name, note in notes.items():
        a = s[name]
        shown = a[0] if a.ndim == 3 else a
        check = f"; model's own value: max |difference| = {diff(a, engine[name]):.1e}" if name in engine else ""
        show(f"{name}{' (head 0 of ' + str(H) + ')' if a.ndim == 3 else ''}", shown, note + check)
    sdpa = F.scaled_dot_product_attention(*(tga.tensor(s[n]) for n in ("Qh", "Kh", "Vh")), is_causal=causal)
    print(f"\nsame as F.scaled_dot_product_attention per head: max |difference| = {diff(sdpa.numpy(), s['Oh']):.1e}")

    print(f"\nwho attends to whom ({'TRAINED' if study.trained else 'UNTRAINED, random'} weights), "
          "strongest key per query and head:")
    print(f"{'query':>10} | " + " | ".join(f"{'head ' + str(h):^16}" for h in range(H)))
    for i, tok in enumerate(tokens):
        tops = [int(s["A"][h, i].argmax()) for h in range(H)]
        print(f"{tok!r:>10} | " + " | ".join(f"{tokens[j]!r:>9} {s['A'][h, i, j]:.2f}  " for h, j in enumerate(tops)))
    spread = -(s["A"] * np.log(np.where(s["A"] > 0, s["A"], 1))).sum(-1).mean()
    uniform = np.mean([np.log(s["mask"][i].sum()) for i in range(T)])
    print(f"mean entropy of a row: {spread:.2f} nats (uniform attention: {uniform:.2f})")

    # ---------------------------------------------------------------- 3. backward, step by step
    params = {n: p.numpy() for n, p in model.named_parameters()}
    dY = cap.output_grads[LAYER][0]
    g = backward_by_hand(s, dY, params, dh)
    print(f"\nloss L = {what} = {loss.item():.4f}; dL/dY reaches the layer's output, shape {dY.shape}.")
    print("backward, one step at a time (by hand in NumPy vs the engine):")
    engine_grads = engine_backward(cap)
    rules = {"dW_out": "Y = C W^T + b: dW = dY^T C", "dconcat": "dC = dY W_out",
             "dOh": "cut dC back into heads", "dA": "O = A V: dA = dO V^T", "dVh": "dV = A^T dO",
             "dS/sqrt(dh)": "softmax: dS = A * (dA - rowsum(dA * A))", "dS": "scale: dS / sqrt(dh)",
             "dQh": "S = Q K^T: dQ = dS K", "dKh": "dK = dS^T Q", "dW_qkv": "dW = [dQ; dK; dV]^T LN(X)",
             "dLN(X)": "LN(X) feeds Q, K and V: the three gradients add"}
    for name, rule in rules.items():
        check = f"max |difference| = {diff(g[name], engine_grads[name]):.1e}" if name in engine_grads else "(no engine tensor)"
        print(f"  {name:12} {str(g[name].shape):14} {rule:44} {check}")
    show("dL/d(scaled scores), head 0", g["dS/sqrt(dh)"][0],
         "each row sums to 0: adding a constant to a row of scores changes no weight")
    print(f"  largest |row sum|: {np.abs(g['dS/sqrt(dh)'].sum(-1)).max():.1e}")
    if not s["mask"].all():
        print(f"  largest |dL/dS| at masked (future) positions, every head: "
              f"{np.abs(g['dS/sqrt(dh)'][:, ~s['mask']]).max():.1e}, engine: "
              f"{np.abs(cap.score_grads[LAYER][0][:, ~s['mask']]).max():.1e}")

    # ---------------------------------------------------------------- 4. finite differences, step by step
    elementwise = 0 if args.quick else 256   # --quick: random directions only
    mask = tga.tensor(s["mask"])
    checks = [("scores   Q, K -> Q K^T / sqrt(dh)", lambda q_, k_: q_ @ k_.swapaxes(-1, -2) * (1 / math.sqrt(dh)),
               ("Qh", "Kh")),
              ("softmax  S -> A", lambda x: F.softmax(x, -1, mask=mask), ("S/sqrt(dh)",)),
              ("sum      A, V -> A V per head", lambda a, v_: a @ v_, ("A", "Vh")),
              ("project  heads -> concat -> Y", lambda o: o.permute(1, 0, 2).reshape(T, d) @
               tga.tensor(params[f"{LAYER}.out_proj.weight"]).T, ("Oh",)),
              ("all      LN(X) -> Y", lambda x: attn(x.reshape(1, T, d), is_causal=causal)[0], ("LN(X)",))]
    print("\nfinite differences (central, float64) against the engine's gradients:")
    for name, fn, inputs in checks:
        gradcheck(fn, *(tga.tensor(s[n], requires_grad=True) for n in inputs), max_elementwise=elementwise)
        print(f"  {name}: ok")

    # ---------------------------------------------------------------- 5. plots of every step
    try:
        from tinygrad_attn import plots
        head = ("key", "query")
        forward = {"X = embeddings": (s["X"], "dimension", "token"), "LN(X)": (s["LN(X)"], "dimension", "token"),
                   "Q head 0": (s["Qh"][0], "dim of head", "token"), "K head 0": (s["Kh"][0], "dim of head", "token"),
                   "V head 0": (s["Vh"][0], "dim of head", "token"), "S = Q K^T head 0": (s["S"][0], *head),
                   "S / sqrt(dh) head 0": (s["S/sqrt(dh)"][0], *head), "A = softmax head 0": (s["A"][0], *head),
                   "O = A V head 0": (s["Oh"][0], "dim of head", "token"),
                   "concat heads": (s["concat"], "dimension (head by head)", "token"),
                   "Y = output projection": (s["Y"], "dimension", "token")}
        backward = {"dL/dY": (g["dY"], "dimension", "token"), "dL/dconcat": (g["dconcat"], "dimension", "token"),
                    "dL/dO head 0": (g["dOh"][0], "dim of head", "token"), "dL/dA head 0": (g["dA"][0], *head),
                    "dL/dS head 0": (g["dS"][0], *head), "dL/dQ head 0": (g["dQh"][0], "dim of head", "token"),
                    "dL/dK head 0": (g["dKh"][0], "dim of head", "token"),
                    "dL/dV head 0": (g["dVh"][0], "dim of head", "token"), "dL/dLN(X)": (g["dLN(X)"], "dimension", "token")}
        label = "trained" if study.trained else "UNTRAINED (random)"
        paths = [plots.plot_matrices(forward, out / "forward_steps.png", row_labels=tokens,
                                     title=f"forward, step by step, on {SENTENCE!r} ({label} weights, layer 0)"),
                 plots.plot_matrices(backward, out / "backward_steps.png", row_labels=tokens,
                                     title=f"backward, step by step: gradients of L = {what}"),
                 plots.plot_attention(s["A"], tokens, out / "attention_heads.png",
                                      title=f"layer 0, every head: A = softmax(Q K^T / sqrt(dh)) ({label} weights)")]
        print("\nplots: " + ", ".join(str(p) for p in paths))
    except ImportError as e:
        print(f"\nno plots: {e}")


if __name__ == "__main__":
    main()
