"""Contextual embeddings from a small masked-LM encoder: one word, two contexts, every layer.

    python examples/contextual_embeddings.py                      # trains the small study encoder (~1 min) if needed
    python examples/contextual_embeddings.py --run runs/mlm       # or any run of `tinygrad-attn train mlm`
    python examples/contextual_embeddings.py --random             # untrained weights, labelled as such
    python examples/contextual_embeddings.py --quick --model-out /tmp/ctx

The embedding table gives a word one vector, whatever surrounds it. Each transformer
block mixes in the other tokens (attention), so from layer 1 on the same word has a
different vector in each sentence. We print, per layer, how similar "play" is to
itself in two sentences, how much the layers differ from each other, and document
vectors (mean over tokens, or [CLS]). Whether layer 0 already differs depends on the
tokenizer: it adds the position embedding, so it is identical in both sentences only
when the word is the same tokens at the same positions; the script measures which.
A run this short learns little language, so read the numbers as mechanics (what
changes where), not as semantics.
"""
import argparse

import numpy as np

from tinygrad_attn.representations import contextual_embeddings, cosine_similarity, document_embedding
from tinygrad_attn.models.study import study_model

WORD = "play"
CONTEXTS = ("The king will play the fool.", "Go see a fine play tonight.")
DOCUMENTS = ("The king will play the fool.", "The queen shall play the fool.", "Give me some light, away!")


def explain_layer0(a, b, dists):
    """Say why the table and layer 0 are (or are not) the same in both sentences: from the ids and positions."""
    pa, pb = a.word_positions(WORD), b.word_positions(WORD)
    same_ids = a.ids[pa].tolist() == b.ids[pb].tolist()
    print(f"table: {WORD!r} is {'the same ids' if same_ids else 'different ids'} in both sentences "
          f"({a.ids[pa].tolist()} and {b.ids[pb].tolist()}): dist {dists['static']:.3f}.")
    if dists[0] == 0:
        print(f"layer 0 (table row + position embedding): same tokens at the same positions ({pa.tolist()}), "
              "so it knows nothing of the sentence yet: dist 0.")
    else:
        why = (f"the tokens sit at positions {pa.tolist()} and {pb.tolist()}, and layer 0 adds the position "
               "embedding" if same_ids and pa.tolist() != pb.tolist() else "the tokens differ")
        print(f"layer 0 (table row + position embedding): dist {dists[0]:.3f}, not 0: {why}. "
              "It still knows nothing of the other words.")
    last = dists[max(k for k in dists if isinstance(k, int))]
    print(f"Each block mixes in the other tokens: from layer 0 to the last block the distance "
          f"{'grows' if last > dists[0] else 'shrinks'} ({dists[0]:.3f} -> {last:.3f}).")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="a trained run directory (tinygrad-attn train mlm)")
    parser.add_argument("--random", action="store_true", help="untrained weights (the run's architecture if --run)")
    parser.add_argument("--quick", action="store_true", help="train only a few steps when there is no run")
    parser.add_argument("--model-out", default="runs/study", help="where the study model is trained without --run")
    parser.add_argument("--steps", type=int, help="training steps when there is no run yet")
    args = parser.parse_args(argv)
    np.set_printoptions(precision=3, suppress=True)
    study = study_model(args.run, args.model_out, random=args.random, quick=args.quick, steps=args.steps)
    model, tokenizer = study.model, study.tokenizer
    print(f"\nweights: {study.label}")

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
    dists = {}
    for name, layer in rows:
        both = np.concatenate([a._layer(layer)[a.text_positions], b._layer(layer)[b.text_positions]])
        mean = both.mean(axis=0)
        v1, v2, king = a.word(WORD, layer), b.word(WORD, layer), a.word("king", layer)
        dist = dists[layer] = np.linalg.norm(v1 - v2) / np.linalg.norm(v1)
        print(f"{name:>12} | {cosine_similarity(v1, v2):6.3f} {cosine_similarity(v1 - mean, v2 - mean):8.3f} "
              f"{dist:6.3f} | {cosine_similarity(v1 - mean, king - mean):12.3f}")
    explain_layer0(a, b, dists)
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
