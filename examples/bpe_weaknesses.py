"""BPE's weaknesses, measured on our trained tokenizer, and what they do to a model's embeddings.

    python examples/bpe_weaknesses.py                      # trains the small study model if there is no run yet
    python examples/bpe_weaknesses.py --run runs/mlm       # the tokenizer and embeddings of any trained run
    python examples/bpe_weaknesses.py --quick

Every split printed here comes from `tokenizer.tokens(text)` on the tokenizer in use;
bytes that are only part of a UTF-8 character show as <0xHH>. The last part compares
embedding vectors: a word with and without its leading space is two unrelated ids.
"""
import argparse

import numpy as np

from tinygrad_attn.representations import cosine_similarity
from tinygrad_attn.models.study import study_model

CASES = {
    "a leading space makes another token": ["the", " the", "The", " The", "king", " king", "love", " love"],
    "numbers are cut into digits": ["1234567", " 2026", " 3.14159"],
    "capitals are rarer, so they split more": ["happy", "Happy", "HAPPY", " night", " Night", " NIGHT"],
    "non-ASCII characters fall back to bytes": ["cafe", "café", "naïve", "Mühle", "🙂", "日本"],
    "rare names split into odd pieces": [" Hamlet", " Rosencrantz", " Hermione", " Zelensky", " Schwarzenegger"],
}
SPACE_PAIRS = ["the", "The", "king", "love", "night", "good", "sweet", "heaven", "my", "lord", "with", "not", "your",
               "that", "him", "what", "shall", "will", "thou", "come"]


def show_cases(tokenizer):
    for title, texts in CASES.items():
        print(f"\n{title}:")
        for text in texts:
            pieces = tokenizer.tokens(text)
            n_bytes = len(text.encode("utf-8"))
            print(f"  {text!r:>18} -> {len(pieces)} token{'s' if len(pieces) != 1 else ''} "
                  f"({len(text)} character{'s' if len(text) != 1 else ''}, {n_bytes} bytes): {' | '.join(repr(p) for p in pieces)}")


def word_vector(model, tokenizer, text):
    """The mean of the embedding-table rows of the pieces of `text`: what the model starts from."""
    table = model.tok_emb.weight.numpy().astype(np.float64)
    return table[tokenizer.encode(text)].mean(axis=0)


def show_space_effect(model, tokenizer):
    print("\nwhat a leading space does to the model (embedding table, before any context):")
    disjoint, other = [], []
    for w in SPACE_PAIRS:
        a, b = tokenizer.encode(w), tokenizer.encode(" " + w)
        shared = len(set(a) & set(b))
        c = cosine_similarity(word_vector(model, tokenizer, w), word_vector(model, tokenizer, " " + w))
        if not shared:
            disjoint.append(c)
        print(f"  {w!r:>9} {tokenizer.tokens(w)} vs {' ' + w!r:>10} {tokenizer.tokens(' ' + w)}: "
              f"{shared} id{'s' if shared != 1 else ''} in common, cos {c:.3f}")
    words = [" " + w for w in SPACE_PAIRS]
    for i in range(len(words)):
        for j in range(i + 1, len(words)):
            other.append(cosine_similarity(word_vector(model, tokenizer, words[i]),
                                           word_vector(model, tokenizer, words[j])))
    mean_other = float(np.mean(other))
    if not disjoint:
        print(f"  every pair shares a piece here; between different words the mean cos is {mean_other:.3f}")
        return
    mean_disjoint = float(np.mean(disjoint))
    print(f"  mean cos of the {len(disjoint)} pairs with no id in common: {mean_disjoint:.3f}; "
          f"between different words (' the', ' king', ...): {mean_other:.3f}")
    if mean_disjoint <= mean_other + 0.05:
        print("  so in the embedding table 'the' and ' the' are no closer than two different words: whatever links "
              "them must come from context, pair by pair")
    else:
        print("  these pairs are closer than different words: the model has learned part of the link from data, "
              "pair by pair (compare --random)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="a trained run directory (tinygrad-attn train mlm/gpt)")
    parser.add_argument("--out", default="runs/study", help="where the study model is trained when there is no --run")
    parser.add_argument("--quick", action="store_true", help="train only a few steps if there is no run")
    parser.add_argument("--random", action="store_true", help="untrained embeddings (the tokenizer is still trained)")
    args = parser.parse_args(argv)
    study = study_model(args.run, args.out, random=args.random, quick=args.quick, any_kind=True)
    if getattr(study.tokenizer, "kind", "") != "bpe":
        raise SystemExit(f"this example is about BPE; the run uses a {study.tokenizer.kind} tokenizer")
    print(f"model: {study.label}")
    print(f"tokenizer: BPE with {study.tokenizer.vocab_size} tokens (256 bytes, {len(study.tokenizer.merges)} merges, "
          f"{len(study.tokenizer.specials)} specials)")
    show_cases(study.tokenizer)
    show_space_effect(study.model, study.tokenizer)


if __name__ == "__main__":
    main()
