# %% [markdown]
# # Swapping CPU and GPU
#
# One model, one step on the CPU and, where CuPy sees a GPU, on CUDA: the same loss and gradients to float32 rounding. Without a GPU the CPU path runs alone, and the notebook shows what moving and mixing devices does.

# %%
import numpy as np
import tinygrad_attn as tga
from tinygrad_attn.models import GPT, get_preset
config = get_preset('gpt', 'tiny').model
config.vocab_size = 32
x = np.random.default_rng(0).integers(0, 32, (4, config.seq_len))
y = np.roll(x, -1, axis=1)

def step(device):
    tga.manual_seed(0)
    model = GPT(config).to(device)
    loss = model.loss(x, y)
    loss.backward()
    return loss.item(), {n: p.grad.numpy() for n, p in model.named_parameters()}

cpu_loss, cpu_grads = step('cpu')
print('cpu loss', cpu_loss)
if tga.cuda_is_available():
    gpu_loss, gpu_grads = step('cuda')
    worst = max(np.abs(cpu_grads[n] - gpu_grads[n]).max() for n in cpu_grads)
    print('cuda loss', gpu_loss, ' max |grad difference|', worst)
    assert abs(cpu_loss - gpu_loss) < 1e-4 and worst < 1e-3
else:
    print('no CUDA GPU here (pip install "tinygrad_attn[gpu]" on a machine with one): CPU only')

# %% [markdown]
# A tensor lives on one device; `.to()` moves it, and an op between devices is a clear error.

# %%
t = tga.randn(2, 3)
print(t.device)
back = t.to('cpu')
assert back.device == 'cpu'
if tga.cuda_is_available():
    g = t.to('cuda')
    try:
        g + t
    except tga.DeviceError as e:
        print('DeviceError:', e)
else:
    try:
        t.to('cuda')
    except tga.TinygradAttnError as e:
        print(type(e).__name__ + ':', e)
