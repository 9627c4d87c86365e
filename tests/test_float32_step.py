"""No accidental float64: a full training step of each model keeps every tensor in float32."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn.models.config import GPTConfig, MLMConfig
from tinygrad_attn.models.decoder import GPT
from tinygrad_attn.models.encoder import MaskedLM
from tinygrad_attn import autograd, optim
from tinygrad_attn.tensor import Tensor


@pytest.mark.parametrize("kind", ["gpt", "mlm"])
def test_training_step_stays_float32(kind, monkeypatch):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (2, 16))
    if kind == "gpt":
        model = GPT(GPTConfig(vocab_size=50, seq_len=16, d_model=16, n_heads=2, n_layers=2, dropout=0.1))
        loss_fn = lambda: model.loss(ids, rng.integers(0, 50, (2, 16)))  # noqa: E731
    else:
        model = MaskedLM(MLMConfig(vocab_size=50, pad_id=0, max_len=16, d_model=16, n_heads=2, n_layers=2,
                                   dropout=0.1))
        labels = np.where(rng.random((2, 16)) < 0.3, ids, -100)
        labels[:, 0] = ids[:, 0]
        real = np.ones((2, 16), bool)
        real[1, -3:] = False  # padding: the attention mask is used, not skipped as all-true
        loss_fn = lambda: model.loss(ids, labels, real)  # noqa: E731
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    seen = []
    make = Tensor.wrap.__func__

    def recording_make(cls, data, device, requires_grad=False):
        seen.append(np.dtype(data.dtype))
        return make(cls, data, device, requires_grad)

    monkeypatch.setattr(Tensor, "wrap", classmethod(recording_make))
    monkeypatch.setattr(autograd, "_make_tensor", Tensor.wrap)
    loss = loss_fn()
    loss.backward()
    opt.step()
    floats = {d for d in seen if d.kind == "f"}
    assert len(seen) > 100 and floats == {np.dtype(np.float32)}, floats
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32, name
    assert tga.tensor(1.0).dtype == np.float32
