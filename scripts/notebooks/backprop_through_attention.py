# %% [markdown]
# # Backprop through attention
#
# A small GPT (untrained: the mechanics, not what was learned), one backward pass, and what `inspect.capture` records at the attention scores and weights.

# %%
import numpy as np
import tinygrad_attn as tga
from tinygrad_attn import inspect
from tinygrad_attn.models import GPT, GPTConfig
tga.manual_seed(0)
model = GPT(GPTConfig(vocab_size=11, seq_len=6, d_model=16, n_heads=2, n_layers=1, dropout=0.0)).double()
ids = np.random.default_rng(0).integers(0, 11, (1, 6))
targets = np.roll(ids, 1, axis=1)
with inspect.capture(model) as cap:
    loss = model.loss(ids, targets)
    loss.backward()
dS, dA = cap.score_grads['blocks.0.attn'], cap.weight_grads['blocks.0.attn']
print('dL/d(scores)', dS.shape)
print(np.round(dS[0, 0], 4))
print('dL/d(weights)', dA.shape)
print(np.round(dA[0, 0], 4))

# %% [markdown]
# Above the diagonal the causal mask hid the keys: those weights are 0, so are their score gradients.

# %%
future = np.triu(np.ones(dS.shape[-2:], bool), 1)
print('largest |dL/dS| at masked positions:', np.abs(dS[..., future]).max())
assert np.all(dS[..., future] == 0)

# %% [markdown]
# A finite-difference check: nudge one weight of the attention's Q/K/V projection both ways.

# %%
name = 'blocks.0.attn.qkv.weight'
W = dict(model.named_parameters())[name]
analytic, h = cap.param_grads[name][3, 5], 1e-6
W.data[3, 5] += h
up = float(model.loss(ids, targets).numpy())
W.data[3, 5] -= 2 * h
down = float(model.loss(ids, targets).numpy())
W.data[3, 5] += h
numeric = (up - down) / (2 * h)
print(analytic, numeric)
assert abs(analytic - numeric) < 1e-6 * max(1.0, abs(numeric))

# %% [markdown]
# The graph of one head, with |dL/d(tensor)| on each box (SVG inline with Graphviz installed, else the DOT text).

# %%
from tinygrad_attn.viz import draw_graph, to_dot
x = tga.randn(4, 8)
Wq, Wk, Wv = (tga.randn(8, 4, requires_grad=True) for _ in range(3))
head_loss = ((x @ Wq) @ (x @ Wk).T * 0.5).softmax(-1) @ (x @ Wv)
head_loss = head_loss.sum()
head_loss.backward(retain_graph=True)
names = {'x': x, 'Wq': Wq, 'Wk': Wk, 'Wv': Wv}
import shutil, tempfile
from IPython.display import SVG, display
if shutil.which('dot'):
    display(SVG(filename=str(draw_graph(head_loss, show_grad_norms=True, names=names, path=tempfile.mkdtemp() + '/head.svg'))))
else:
    print(to_dot(head_loss, show_grad_norms=True, names=names))
