"""One record per model kind (gpt, mlm): everything the command line and `load_run` need to
know about it, so they are written once for all kinds.

    kind = KINDS["gpt"]
    model = kind.model_cls(config)
    batch_fn = kind.batch_fn(config, train, ids, tokenizer)

Adding a kind is adding one ModelKind to KINDS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tinygrad_attn import functional as F
from tinygrad_attn.batching import lm_batches, lm_eval_batches, mlm_batches

from .config import GPT_SPECIALS, GPTConfig, MLMConfig
from .decoder import GPT
from .encoder import MaskedLM

MLM_DEMO = "To be or not to [MASK], that is the question."


@dataclass(frozen=True)
class ModelKind:
    """What differs between kinds. Functions take the model config first."""
    name: str
    config_cls: type
    model_cls: type
    context_field: str                 # the config field with the context length ("seq_len", "max_len")
    loss_label: str                    # what the held-out loss measures, for messages
    commands: frozenset                # the use commands a trained run of this kind supports
    specials: Callable                 # config -> special tokens of its tokenizer
    fit_tokenizer: Callable            # (config, tokenizer) -> None: take vocab_size (and pad id) from it
    batch_fn: Callable                 # (config, train, ids, tokenizer) -> rng -> batch
    eval_fn: Callable                  # (config, train, ids, tokenizer, max_batches[, unigram_id]) -> model ->
                                       # loss, or a dict with "eval_loss" (mlm: "eval_acc", "unigram_acc" too)
    demo: Callable                     # (model, tokenizer, bundled_data: bool, seed) -> text to print
    key_shapes: Callable               # config -> {tensor name: (shape, the fields that set it)}
    unigram_baseline: bool = False     # eval also scores "always the most frequent training token"

    def context(self, config) -> int:
        return getattr(config, self.context_field)


def _shared_shapes(config, context_field: str) -> dict:
    """Shapes that pin vocab_size, d_model, the context and d_ff (n_layers is counted, n_heads checked by the config)."""
    last = f"blocks.{config.n_layers - 1}.mlp.0.weight"
    return {"tok_emb.weight": ((config.vocab_size, config.d_model), "vocab_size, d_model"),
            "pos_emb.weight": ((getattr(config, context_field), config.d_model), f"{context_field}, d_model"),
            last: ((config.d_ff or 4 * config.d_model, config.d_model), "d_ff, d_model")}


# ---------------------------------------------------------------- gpt

def _gpt_batches(config, train, ids, tokenizer):
    return lambda rng: lm_batches(ids, train.batch_size, config.seq_len, rng)


def _gpt_eval(config, train, ids, tokenizer, max_batches, unigram_id=None):
    def evaluate(model):
        total, count = 0.0, 0
        for x, y in lm_eval_batches(ids, train.batch_size, config.seq_len, max_batches):
            total += model.loss(x, y).item() * y.size
            count += y.size
        return total / count
    return evaluate


def _gpt_demo(model, tokenizer, bundled_data, seed):
    prompt = "ROMEO." if bundled_data else "\n"
    ids = model.generate(tokenizer.encode(prompt), 200, temperature=0.8, top_k=40, seed=seed)
    return tokenizer.decode(ids)


def _gpt_fit_tokenizer(config, tokenizer):
    config.vocab_size = tokenizer.vocab_size


# ---------------------------------------------------------------- mlm

def letter_edges(tokenizer, vocab_size: int):
    """(starts_with_letter, ends_with_letter): bool over the vocabulary, for whole-word masking."""
    texts = [tokenizer.decode([i]) for i in range(vocab_size)]
    is_letter = lambda c: c.isascii() and c.isalpha()   # noqa: E731  (words are [A-Za-z]+, as in BPE's pre-tokenizer)
    return np.array([is_letter(t[:1]) for t in texts]), np.array([is_letter(t[-1:]) for t in texts])


def _mlm_batches(config, train, ids, tokenizer):
    special = tokenizer.special_ids
    letters = letter_edges(tokenizer, config.vocab_size) if config.whole_word_mask else None
    return lambda rng: mlm_batches(ids, train.batch_size, config.max_len, rng, cls_id=special["[CLS]"],
                                   sep_id=special["[SEP]"], pad_id=special["[PAD]"], mask_id=special["[MASK]"],
                                   vocab_size=config.vocab_size, special_ids=tuple(special.values()),
                                   mask_prob=config.mask_prob, letters=letters)


def _mlm_eval(config, train, ids, tokenizer, max_batches, unigram_id=None):
    """Held-out masked-token loss and top-1 accuracy, masking tokens (or whole words, as
    config.whole_word_mask says); with `unigram_id`, also the accuracy of always answering that
    token (the most frequent training token) on the same positions."""
    batch = _mlm_batches(config, train, ids, tokenizer)

    def evaluate(model):
        rng = np.random.default_rng(12345)  # the same masked rows at every evaluation
        total, count, correct, unigram = 0.0, 0, 0, 0
        for _ in range(max_batches or 20):
            inputs, labels, mask = batch(rng)
            logits, targets = model.masked_logits(inputs, labels, mask)
            total += F.cross_entropy(logits, targets).item() * len(targets)
            count += len(targets)
            correct += int((logits.numpy().argmax(-1) == targets).sum())
            unigram += int((targets == unigram_id).sum())
        result = {"eval_loss": total / count, "eval_acc": correct / count}
        if unigram_id is not None:
            result["unigram_acc"] = unigram / count
        return result
    return evaluate


def format_fill_mask(results, text) -> str:
    lines = [text]
    for i, candidates in enumerate(results, start=1):
        shown = "  ".join(f"{token.strip() or repr(token)!s} {p:.3f}" for token, p in candidates)
        lines.append(f"[MASK] {i}: {shown}")
    return "\n".join(lines)


def _mlm_demo(model, tokenizer, bundled_data, seed):
    return format_fill_mask(model.fill_mask(MLM_DEMO, tokenizer, top_k=5), MLM_DEMO)


def _mlm_fit_tokenizer(config, tokenizer):
    config.vocab_size = tokenizer.vocab_size
    config.pad_id = tokenizer.token_to_id("[PAD]")


KINDS = {
    "gpt": ModelKind(
        name="gpt", config_cls=GPTConfig, model_cls=GPT, context_field="seq_len", loss_label="next-token",
        commands=frozenset({"sample"}),
        specials=lambda c: GPT_SPECIALS if c.tokenizer == "char" else (),
        fit_tokenizer=_gpt_fit_tokenizer, batch_fn=_gpt_batches, eval_fn=_gpt_eval, demo=_gpt_demo,
        key_shapes=lambda c: _shared_shapes(c, "seq_len")),
    "mlm": ModelKind(
        name="mlm", config_cls=MLMConfig, model_cls=MaskedLM, context_field="max_len", loss_label="masked-token",
        commands=frozenset({"fill-mask"}),
        specials=lambda c: c.specials,
        fit_tokenizer=_mlm_fit_tokenizer, batch_fn=_mlm_batches, eval_fn=_mlm_eval, demo=_mlm_demo,
        unigram_baseline=True,
        key_shapes=lambda c: {**_shared_shapes(c, "max_len"), "head_bias": ((c.vocab_size,), "vocab_size")}),
}
