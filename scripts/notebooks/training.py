# %% [markdown]
# # Training the decoder and the masked LM, with live loss plots
#
# Two tiny models on the bundled Shakespeare, each trained for a few dozen steps with the plot redrawn as the loss comes in; then a sample and a filled mask.

# %%
import numpy as np
import matplotlib.pyplot as plt
from IPython.display import display, clear_output
import tinygrad_attn as tga
from tinygrad_attn import optim
from tinygrad_attn.batching import lm_batches
from tinygrad_attn.data import corpus_splits, load_shakespeare
from tinygrad_attn.tokenizers import CharTokenizer
from tinygrad_attn.models import GPT, get_preset
train_text = corpus_splits(load_shakespeare())[0][:200_000]
tok = CharTokenizer.train(train_text)
ids = np.array(tok.encode(train_text))
config = get_preset('gpt', 'tiny').model
config.vocab_size = tok.vocab_size
tga.manual_seed(0)
gpt = GPT(config)
opt = optim.AdamW(gpt.parameters(), lr=3e-3)
rng = np.random.default_rng(0)
print(gpt.num_parameters(), 'parameters')

# %%
def live(losses, title):
    clear_output(wait=True)
    plt.figure(figsize=(5, 3))
    plt.plot(losses); plt.xlabel('step'); plt.ylabel('loss'); plt.title(title); plt.show()

losses = []
for step in range(40):
    x, y = lm_batches(ids, 16, config.seq_len, rng)
    opt.zero_grad()
    loss = gpt.loss(x, y)
    loss.backward()
    opt.step()
    losses.append(loss.item())
    if step % 10 == 9:
        live(losses, 'decoder')
print(f'loss {losses[0]:.3f} -> {losses[-1]:.3f}')
assert np.mean(losses[-5:]) < losses[0]

# %%
out = gpt.generate(tok.encode('ROMEO.'), 80, temperature=0.8, top_k=10, seed=0)
print(tok.decode(out))

# %% [markdown]
# The masked LM: 15% of the tokens hidden, the loss on those alone.

# %%
from tinygrad_attn.models import MaskedLM
from tinygrad_attn.models.config import MLM_SPECIALS
mtok = CharTokenizer.train(train_text, specials=MLM_SPECIALS)
mids = np.array(mtok.encode(train_text))
mconfig = get_preset('mlm', 'tiny').model
mconfig.vocab_size, mconfig.pad_id = mtok.vocab_size, mtok.token_to_id('[PAD]')
tga.manual_seed(0)
mlm = MaskedLM(mconfig)
mopt = optim.AdamW(mlm.parameters(), lr=3e-3)
mask_id, T = mtok.token_to_id('[MASK]'), mconfig.max_len
mlosses = []
for step in range(40):
    starts = rng.integers(0, len(mids) - T, 16)
    x = np.stack([mids[s:s + T] for s in starts])
    hidden = rng.random(x.shape) < 0.15
    labels = np.where(hidden, x, -100)
    mopt.zero_grad()
    loss = mlm.loss(np.where(hidden, mask_id, x), labels, np.ones(x.shape, bool))
    loss.backward()
    mopt.step()
    mlosses.append(loss.item())
    if step % 10 == 9:
        live(mlosses, 'masked LM')
print(f'loss {mlosses[0]:.3f} -> {mlosses[-1]:.3f}')
assert np.mean(mlosses[-5:]) < mlosses[0]
