"""The models built on tinygrad_attn: a GPT-style decoder and a BERT-style masked-LM encoder.

    from tinygrad_attn.models import GPT, GPTConfig, MaskedLM, MLMConfig, get_preset
    from tinygrad_attn.models import load_run              # a trained run of `tinygrad-attn train`
"""
from .config import GPTConfig, MLMConfig, TrainConfig, get_preset, PRESETS
from .decoder import GPT, sample_token
from .encoder import MaskedLM
from .run import Run, load_run

__all__ = ["GPT", "GPTConfig", "MaskedLM", "MLMConfig", "TrainConfig", "get_preset", "PRESETS", "sample_token",
           "Run", "load_run"]
