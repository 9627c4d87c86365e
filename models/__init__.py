"""The models built on tinygrad_attn: a GPT-style decoder and a BERT-style masked-LM encoder.

    from models import GPT, GPTConfig, MaskedLM, MLMConfig, get_preset
"""
from .config import GPTConfig, MLMConfig, TrainConfig, get_preset, PRESETS
from .decoder import GPT, sample_token
from .encoder import MaskedLM

__all__ = ["GPT", "GPTConfig", "MaskedLM", "MLMConfig", "TrainConfig", "get_preset", "PRESETS", "sample_token"]
