# %% [markdown]
# # "The cat sat on the mat.", step by step
#
# The first attention layer of a masked LM trained on the spot (the `study` preset, `quick`: 30 steps; pass a run to `study_model` for a real one), recomputed by hand in NumPy one step at a time. Each step prints its array beside its shape, and is checked against the model's own value.

# %%
import sys, pathlib, tempfile
import tinygrad_attn as tga
sys.path.insert(0, str(pathlib.Path(tga.__file__).resolve().parents[1]))  # the checkout: examples/
import numpy as np
from tinygrad_attn import inspect
from tinygrad_attn.models.study import study_model
import examples.self_attention_walkthrough as walk
study = study_model(None, out=tempfile.mkdtemp() + '/study', quick=True)
model, tok, kind = study.model.double().eval(), study.tokenizer, study.kind
print(study.label)

# %%
ids, tokens = walk.sentence_ids(kind, tok)
print(tokens)
print(ids)

# %% [markdown]
# The forward pass by hand (`forward_by_hand`), and the same steps read from the model with `inspect.capture`.

# %%
steps = walk.forward_by_hand(model, ids, causal=kind == 'gpt')
with inspect.capture(model, layers=['blocks.0.ln1', walk.LAYER]) as cap:
    loss, what = walk.model_loss(model, kind, ids)
    loss.backward()
engine = walk.engine_forward(model, cap, ids)
for name, mine in steps.items():
    walk.show(name, mine[0] if mine.ndim == 3 else mine, '(head 0)' if mine.ndim == 3 else '')
    if name in engine:
        gap = walk.diff(mine, engine[name])
        print(f'  model\'s own value: max |difference| {gap:.1e}')
        assert gap < 1e-9, name

# %% [markdown]
# The attention weights of each head, as a heat map: row = query token, column = key token.

# %%
import matplotlib.pyplot as plt
A = steps['A']
fig, axes = plt.subplots(1, A.shape[0], figsize=(3 * A.shape[0], 3))
for h, ax in enumerate(np.atleast_1d(axes)):
    ax.imshow(A[h], cmap='viridis'); ax.set_title(f'head {h}')
    ax.set_xticks(range(len(tokens)), tokens, rotation=90); ax.set_yticks(range(len(tokens)), tokens)
plt.tight_layout(); plt.show()

# %% [markdown]
# Backward, step by step from the gradient that reaches the layer's output (`backward_by_hand`), against the engine's gradients.

# %%
params = {n: p.numpy() for n, p in model.named_parameters()}
grads = walk.backward_by_hand(steps, cap.output_grads[walk.LAYER][0], params, model.blocks[0].attn.head_dim)
for name, theirs in walk.engine_backward(cap).items():
    gap = walk.diff(grads[name], theirs)
    print(f'{name:>12} {str(np.shape(theirs)):>14}  max |difference| {gap:.1e}')
    assert gap < 1e-9, name
