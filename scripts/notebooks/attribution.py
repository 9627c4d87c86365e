# %% [markdown]
# # Which input tokens did this prediction depend on?
#
# Three answers for one filled-mask logit of a masked LM trained on the spot (the `study` preset, `quick`: 30 steps, so the weights have learned little; pass a run to `study_model` for a real one):
# gradient × input, integrated gradients, and attention rollout.

# %%
import tempfile
import numpy as np
from tinygrad_attn import attribution, inspect, plots
from tinygrad_attn.models.study import study_model
study = study_model(None, out=tempfile.mkdtemp() + '/study', quick=True)
model, tok = study.model.double(), study.tokenizer
print(study.label)

# %%
text = 'The cat sat on the [MASK].'
ids = np.array([tok.encode(text)])
tokens = [tok.id_to_token(int(i)) for i in ids[0]]
position = tokens.index('[MASK]')
logits = model(ids).numpy()[0, position]
token = int(logits.argmax())
print(tokens, '-> predicted', repr(tok.id_to_token(token)))

# %% [markdown]
# Gradient × input and integrated gradients differentiate that logit with respect to the token embeddings, which the model takes in place of its lookup (`model(ids, token_embeddings=E)`).

# %%
f = attribution.logit_of(model, ids, position, token)
x = attribution.token_embeddings(model, ids)
gxi = attribution.gradient_x_input(f, x)
ig = attribution.integrated_gradients(f, x, steps=32)
import tinygrad_attn as tga
gap = float(f(tga.Tensor(x)).numpy()) - float(f(tga.Tensor(np.zeros_like(x))).numpy())
print('IG sums to', ig.sum(), ' f(x) - f(0) =', gap)
assert abs(ig.sum() - gap) < 1e-2 * abs(gap) + 1e-6

# %%
with inspect.capture(model) as cap:
    model(ids)
rollout = attribution.attention_rollout(cap)[0, position]
fig_path = plots.plot_attributions({'grad x input': gxi, 'integrated gradients': ig, 'attention rollout': rollout}, tokens, tempfile.mkdtemp() + '/attr.png')
from IPython.display import Image
Image(str(fig_path))
