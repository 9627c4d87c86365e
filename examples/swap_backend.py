"""The same seeded training step on the CPU (NumPy) and on a GPU (CuPy): same model code, two backends.

    python examples/swap_backend.py           # a GPT of the `small` preset
    python examples/swap_backend.py --quick   # the `tiny` preset

Both copies start from the same weights and see the same batch; we print both losses,
the largest gradient difference, and the weights after one AdamW step. float32 sums
in a different order on the two devices, so expect differences around 1e-6, not 0.
"""
import argparse

import numpy as np

import tinygrad_attn as tga
from tinygrad_attn import optim
from tinygrad_attn.batching import lm_batches
from tinygrad_attn.models import GPT, get_preset

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--quick", action="store_true", help="the tiny preset")
args = parser.parse_args()

cfg = get_preset("gpt", "tiny" if args.quick else "small").model
cfg.vocab_size = 64
rng = np.random.default_rng(0)
x, y = lm_batches(rng.integers(0, cfg.vocab_size, 10_000), 8, cfg.seq_len, rng)


def one_step(device, weights=None):
    """Build the model on `device` (from `weights` if given), take one AdamW step; return loss, grads, new weights."""
    tga.manual_seed(0)
    model = GPT(cfg)
    if weights is not None:
        model.load_state_dict(weights)
    model.to(device)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    loss = model.loss(x, y)
    loss.backward()
    grads = {n: p.grad.numpy() for n, p in model.named_parameters()}
    opt.step()
    after = {n: t.numpy().copy() for n, t in model.state_dict().items()}
    return loss.item(), grads, after


tga.manual_seed(0)
start = {n: t.numpy().copy() for n, t in GPT(cfg).state_dict().items()}
cpu_loss, cpu_grads, cpu_after = one_step("cpu", start)
print(f"cpu  loss {cpu_loss:.6f}")
if not tga.cuda_is_available():
    print("cuda: not available here (needs CuPy and a GPU: pip install 'tinygrad_attn[gpu]'); CPU only")
else:
    gpu_loss, gpu_grads, gpu_after = one_step("cuda", start)
    grad_diff = max(np.abs(cpu_grads[n] - gpu_grads[n]).max() for n in cpu_grads)
    weight_diff = max(np.abs(cpu_after[n] - gpu_after[n]).max() for n in cpu_after)
    print(f"cuda loss {gpu_loss:.6f}  |loss diff| {abs(cpu_loss - gpu_loss):.2e}")
    print(f"max |grad diff| {grad_diff:.2e}   max |weight diff| after one AdamW step {weight_diff:.2e}")
