"""Contextual embeddings from a small masked-LM encoder: one word, two contexts, every layer.

    python examples/contextual_embeddings.py                      # trains the tiny encoder (200 steps) into runs/contextual
    python examples/contextual_embeddings.py --out runs/mlm       # or reuse any run of `tinygrad-attn train mlm`
    python examples/contextual_embeddings.py --quick --out /tmp/ctx

The embedding table gives a word one vector, whatever surrounds it. Each transformer
block mixes in the other tokens (attention), so from layer 1 on the same word has a
different vector in each sentence. We print, per layer, how similar "play" is to
itself in two sentences, how much the layers differ from each other, and document
vectors (mean over tokens, or [CLS]). A run this short learns little language, so read
the numbers as mechanics (what changes where), not as semantics.
"""
import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from tinygrad_attn import checkpoint
from tinygrad_attn.representations import contextual_embeddings, cosine_similarity, document_embedding
from tinygrad_attn.models import load_run

WORD = "play"
# "play" starts at the same character in both, so with characters as tokens it also has the same position
CONTEXTS = ("The king will play the fool.", "Go see a fine play tonight.")
DOCUMENTS = ("The king will play the fool.", "The queen shall play the fool.", "Give me some light, away!")


def load_or_train(out: Path, quick: bool, steps: int | None):
    if checkpoint.exists(out / "checkpoint"):
        print(f"loading the encoder trained in {out}")
    else:
        steps = steps or (8 if quick else 200)
        print(f"training a tiny encoder for {steps} steps into {out} (reuse it later with --out {out})")
        status = subprocess.run([sys.executable, "-m", "tinygrad_attn.models.cli", "train", "mlm", "--preset", "tiny",
                                 "--steps", str(steps), "--eval-every", str(steps), "--out", str(out),
                                 "--no-sample"]).returncode
        if status:
            raise SystemExit(f"training failed (exit status {status}); see the message above")
    kind, model, tokenizer, _ = load_run(out)
    if kind != "mlm":
        raise SystemExit(f"{out} holds a {kind} run; this example needs an encoder (tinygrad-attn train mlm)")
    return model, tokenizer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="train only a few steps")
    parser.add_argument("--out", default="runs/contextual", help="run directory: loaded if trained, else trained into")
    parser.add_argument("--steps", type=int, help="training steps when there is no run yet")
    args = parser.parse_args(argv)
    np.set_printoptions(precision=3, suppress=True)
    model, tokenizer = load_or_train(Path(args.out), args.quick, args.steps)

    a, b = (contextual_embeddings(model, tokenizer, text) for text in CONTEXTS)
    n_layers = a.layers.shape[0]
    print(f"\n{WORD!r} in {CONTEXTS[0]!r} and in {CONTEXTS[1]!r}")
    print(f"tokens of {WORD!r}: {[a.tokens[i] for i in a.word_positions(WORD)]} at positions "
          f"{a.word_positions(WORD).tolist()} and {b.word_positions(WORD).tolist()}")
    print("cos = cosine similarity; 'centred': after subtracting the layer's mean token vector (over both sentences),")
    print("which removes the direction all vectors of a layer share; dist = |v1 - v2| / |v1|")
    print(f"{'':>12} | {WORD + ': sentence 1 vs 2':^22} | {WORD} vs king")
    print(f"{'layer':>12} | {'cos':>6} {'centred':>8} {'dist':>6} | {'centred':>12}")
    rows = [("table", "static")] + [("0 embedding" if L == 0 else f"{L} block", L) for L in range(n_layers)]
    rows.append(("final (LN)", "final"))
    for name, layer in rows:
        both = np.concatenate([a._layer(layer)[a.text_positions], b._layer(layer)[b.text_positions]])
        mean = both.mean(axis=0)
        v1, v2, king = a.word(WORD, layer), b.word(WORD, layer), a.word("king", layer)
        dist = np.linalg.norm(v1 - v2) / np.linalg.norm(v1)
        print(f"{name:>12} | {cosine_similarity(v1, v2):6.3f} {cosine_similarity(v1 - mean, v2 - mean):8.3f} "
              f"{dist:6.3f} | {cosine_similarity(v1 - mean, king - mean):12.3f}")
    print("the table and layer 0 (table row + position, and the position is the same here) know nothing of the")
    print("sentence: dist 0. Each block mixes in the neighbours, so the two vectors of one word drift apart; in a")
    print("small model trained briefly the neighbours can weigh more than the word itself (compare the last column).")

    print(f"\nhow far each layer has moved from the static table vector of {WORD!r} (cos, first sentence):")
    static = a.static_word(WORD)
    print("  " + "  ".join(f"layer {L}: {cosine_similarity(static, a.word(WORD, L)):.3f}" for L in range(n_layers)))

    print(f"\nsimilarity between layers (mean cos over the tokens of {CONTEXTS[0]!r}):")
    sim = a.layer_similarity()
    print("        " + "".join(f"{'layer ' + str(j):>9}" for j in range(n_layers)))
    for i in range(n_layers):
        print(f"layer {i} " + "".join(f"{sim[i, j]:9.3f}" for j in range(n_layers)))
    print("neighbouring layers are alike (each block adds to the residual stream); far apart ones less so.")

    print("\ndocument vectors, cos between documents:")
    for pooling in ("mean", "cls"):
        docs = document_embedding(model, tokenizer, list(DOCUMENTS), pooling=pooling)
        pairs = [(i, j) for i in range(len(DOCUMENTS)) for j in range(i + 1, len(DOCUMENTS))]
        print(f"  {pooling:>4} pooling: " + "  ".join(f"doc{i}-doc{j} {cosine_similarity(docs[i], docs[j]):.3f}"
                                                   for i, j in pairs))
    for i, d in enumerate(DOCUMENTS):
        print(f"  doc{i}: {d!r}")


if __name__ == "__main__":
    main()
