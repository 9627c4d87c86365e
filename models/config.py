"""Model and training settings as dataclasses, with named presets (tiny, small, base).

A preset pairs a model config (what it takes to rebuild the network: saved in every
checkpoint) with a training config (how long, how fast, how big a batch). `tiny` is for
tests, `small` is the CPU demo of the README, `base` is for a GPU.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

MLM_SPECIALS = ("[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]")
GPT_SPECIALS = ("[UNK]",)  # a character unseen in the training split still encodes


class _Dict:
    """to_dict/from_dict for dataclasses; from_dict ignores keys it does not know."""

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

    def __post_init__(self):
        self.specials = tuple(self.specials)  # JSON turns the tuple into a list


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

    def __post_init__(self):
        self.betas = tuple(self.betas)


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
