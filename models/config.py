"""Model and training settings as dataclasses, with named presets (tiny, small, base).

A preset pairs a model config (what it takes to rebuild the network: saved in every
checkpoint) with a training config (how long, how fast, how big a batch). `tiny` is for
tests, `small` is the CPU demo of the README, `base` is for a GPU.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tinygrad_attn.errors import ConfigError

MLM_SPECIALS = ("[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]")
GPT_SPECIALS = ("[UNK]",)  # a character unseen in the training split still encodes


def _integer(low: int, optional: bool = False):
    def rule(v):
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            return f"must be an integer, got {v!r} ({type(v).__name__})"
        return f"must be >= {low}, got {v}" if v < low else None
    return rule


def _real(low: float, high: float, high_open: bool = False, low_open: bool = False):
    def rule(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"must be a number, got {v!r} ({type(v).__name__})"
        if v != v or v < low or v > high or (low_open and v == low) or (high_open and v == high):
            return f"must be in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}, got {v}"
        return None
    return rule


def _choice(*options):
    return lambda v: None if v in options else f"must be one of {list(options)}, got {v!r}"


def _betas(v):
    ok = (isinstance(v, (list, tuple)) and len(v) == 2
          and all(not isinstance(b, bool) and isinstance(b, (int, float)) and 0 <= b < 1 for b in v))
    return None if ok else f"must be two numbers in [0, 1), got {v!r}"


def _specials(v):
    ok = isinstance(v, (list, tuple)) and all(isinstance(t, str) and t for t in v)
    return None if ok else f"must be a list of non-empty strings, got {v!r}"


class _Dict:
    """to_dict/from_dict for dataclasses; from_dict ignores keys it does not know.

    `RULES` maps a field to a check (value -> message or None); `check()` runs them all
    and the class's `_check_together`, raising ConfigError that lists every bad field."""

    RULES: dict = {}

    def check(self):
        problems = [f"{name} {message}" for name, rule in self.RULES.items()
                    if (message := rule(getattr(self, name))) is not None]
        if not problems:
            problems = self._check_together()
        if problems:
            raise ConfigError(f"{type(self).__name__}: {'; '.join(problems)}")
        return self

    def _check_together(self) -> list[str]:
        return []

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass
class GPTConfig(_Dict):
    """A GPT-style causal decoder. vocab_size is set from the tokenizer once it is trained."""
    vocab_size: int = 0
    seq_len: int = 128          # context window (learned positional embeddings)
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    d_ff: int | None = None     # None: 4 * d_model
    dropout: float = 0.0
    tokenizer: str = "char"     # "char" or "bpe"
    bpe_vocab_size: int = 512   # used when tokenizer == "bpe"

    RULES = {"vocab_size": _integer(1), "seq_len": _integer(1), "d_model": _integer(1), "n_heads": _integer(1),
             "n_layers": _integer(1), "d_ff": _integer(1, optional=True), "dropout": _real(0, 1, high_open=True),
             "tokenizer": _choice("char", "bpe"), "bpe_vocab_size": _integer(256)}

    def _check_together(self):
        return _heads_divide(self)


@dataclass
class MLMConfig(_Dict):
    """A BERT-style masked-LM encoder. vocab_size and pad_id are set from the tokenizer."""
    vocab_size: int = 0
    pad_id: int | None = None
    max_len: int = 128          # positions, [CLS] and [SEP] included
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    d_ff: int | None = None
    dropout: float = 0.0
    tokenizer: str = "bpe"
    bpe_vocab_size: int = 1024
    mask_prob: float = 0.15
    whole_word_mask: bool = False   # mask every token of a chosen word together (training batches only)
    specials: tuple = MLM_SPECIALS

    RULES = {"vocab_size": _integer(1), "pad_id": _integer(0, optional=True), "max_len": _integer(3),
             "d_model": _integer(1), "n_heads": _integer(1), "n_layers": _integer(1),
             "d_ff": _integer(1, optional=True), "dropout": _real(0, 1, high_open=True),
             "tokenizer": _choice("char", "bpe"), "bpe_vocab_size": _integer(256),
             "mask_prob": _real(0, 1, low_open=True, high_open=True), "specials": _specials,
             "whole_word_mask": lambda v: None if isinstance(v, bool) else f"must be true or false, got {v!r}"}

    def __post_init__(self):
        if isinstance(self.specials, list):
            self.specials = tuple(self.specials)  # JSON turns the tuple into a list

    def _check_together(self):
        problems = _heads_divide(self)
        if self.tokenizer == "bpe" and self.bpe_vocab_size < 256 + len(self.specials):
            problems.append(f"bpe_vocab_size {self.bpe_vocab_size} is below 256 bytes + {len(self.specials)} specials")
        if self.pad_id is not None and self.pad_id >= self.vocab_size:
            problems.append(f"pad_id {self.pad_id} is outside the vocabulary of {self.vocab_size}")
        return problems


@dataclass
class TrainConfig(_Dict):
    """How to train: steps, batch, optimizer and schedule, evaluation cadence."""
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.99)
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 8       # batches of held-out text per evaluation
    seed: int = 0

    RULES = {"steps": _integer(1), "batch_size": _integer(1), "lr": _real(0, 10, low_open=True),
             "min_lr_ratio": _real(0, 1), "warmup_steps": _integer(0), "weight_decay": _real(0, 10),
             "betas": _betas, "grad_clip": _real(0, float("inf"), low_open=True), "eval_every": _integer(1),
             "eval_batches": _integer(1), "seed": _integer(0)}

    def __post_init__(self):
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)


def _heads_divide(config) -> list[str]:
    if config.d_model % config.n_heads:
        return [f"d_model {config.d_model} is not divisible by n_heads {config.n_heads}"]
    return []


@dataclass
class Preset:
    model: GPTConfig | MLMConfig
    train: TrainConfig = field(default_factory=TrainConfig)


PRESETS = {
    "gpt": {
        "tiny": Preset(GPTConfig(seq_len=32, d_model=32, n_heads=2, n_layers=2),
                       TrainConfig(steps=40, batch_size=8, lr=3e-3, warmup_steps=5, eval_every=20, eval_batches=2)),
        # measured on 2 CPU cores: BPE-512 with 64-token windows (~125 characters) beat
        # characters with 128 at equal time (2.42 vs 2.69 bits per character held out)
        "small": Preset(GPTConfig(seq_len=64, d_model=128, n_heads=4, n_layers=4, tokenizer="bpe", bpe_vocab_size=512),
                        TrainConfig(steps=1200, batch_size=32, lr=3e-3, warmup_steps=50, eval_every=300)),
        # the study examples' size (see mlm "study"), for walking through a trained decoder
        "study": Preset(GPTConfig(seq_len=32, d_model=64, n_heads=4, n_layers=2, tokenizer="bpe", bpe_vocab_size=512),
                        TrainConfig(steps=400, batch_size=32, lr=3e-3, warmup_steps=30, eval_every=400,
                                    eval_batches=4)),
        "base": Preset(GPTConfig(seq_len=256, d_model=512, n_heads=8, n_layers=6, dropout=0.1,
                                 tokenizer="bpe", bpe_vocab_size=2048),
                       TrainConfig(steps=5000, batch_size=64, lr=6e-4, warmup_steps=200, eval_every=500,
                                   eval_batches=20)),
    },
    "mlm": {
        "tiny": Preset(MLMConfig(max_len=32, d_model=32, n_heads=2, n_layers=2, tokenizer="char"),
                       TrainConfig(steps=40, batch_size=8, lr=3e-3, warmup_steps=5, eval_every=20, eval_batches=2)),
        # a few CPU minutes take the masked LM only a little past word frequencies (held-out
        # loss 4.1 after 1500 steps); lr 1e-3 beat 3e-3 and 5e-3. Train `base` on a GPU for more.
        "small": Preset(MLMConfig(max_len=64, d_model=128, n_heads=4, n_layers=4, bpe_vocab_size=512),
                        TrainConfig(steps=1500, batch_size=32, lr=1e-3, warmup_steps=100, eval_every=300)),
        # the study examples' model (self-attention walkthrough, contextual embeddings, BPE weaknesses):
        # trained on the spot when no run is given, so it must fit in about a minute on 2 CPU cores
        "study": Preset(MLMConfig(max_len=32, d_model=64, n_heads=4, n_layers=2, bpe_vocab_size=512),
                        TrainConfig(steps=400, batch_size=32, lr=3e-3, warmup_steps=30, eval_every=400,
                                    eval_batches=4)),
        "base": Preset(MLMConfig(max_len=128, d_model=512, n_heads=8, n_layers=6, dropout=0.1,
                                 bpe_vocab_size=4096),
                       TrainConfig(steps=5000, batch_size=64, lr=5e-4, warmup_steps=200, eval_every=500,
                                   eval_batches=20)),
    },
}


def get_preset(kind: str, name: str) -> Preset:
    """A fresh copy of preset `name` for model kind "gpt" or "mlm"."""
    if kind not in PRESETS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(PRESETS)}")
    if name not in PRESETS[kind]:
        raise ValueError(f"unknown preset {name!r} for {kind}; expected one of {sorted(PRESETS[kind])}")
    p = PRESETS[kind][name]
    return Preset(dataclasses.replace(p.model), dataclasses.replace(p.train))
