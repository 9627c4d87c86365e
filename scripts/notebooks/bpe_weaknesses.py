# %% [markdown]
# # BPE and its weaknesses
#
# Byte-level BPE trained on the bundled Shakespeare: how words split, and what a split does to a model's embeddings.

# %%
import sys, pathlib, tempfile
import tinygrad_attn as tga
sys.path.insert(0, str(pathlib.Path(tga.__file__).resolve().parents[1]))  # the checkout: examples/
import numpy as np
from tinygrad_attn.tokenizers import BPETokenizer
from tinygrad_attn.data import load_shakespeare
import examples.bpe_weaknesses as bpe
text = ''.join(load_shakespeare().values())[:300_000]
tok = BPETokenizer.train(text, vocab_size=400)
print(tok.vocab_size, 'tokens')

# %% [markdown]
# Every split below is `tok.tokens(text)`: a leading space, capitals, digits, non-ASCII bytes, rare names.

# %%
bpe.show_cases(tok)

# %% [markdown]
# Encoding is lossless: any text, even one the corpus never had, decodes back to itself byte for byte.

# %%
for sample in ['The cat sat on the mat.', 'café 🙂 日本', '  two  spaces\n', 'Rosencrantz']:
    ids = tok.encode(sample)
    assert tok.decode(ids) == sample
    print(f'{sample!r:>28}: {len(ids):>2} ids for {len(sample.encode()):>2} bytes')

# %% [markdown]
# Frequent words get one token, rare ones many: the cost of a word in tokens falls with its frequency.

# %%
from collections import Counter
words = Counter(text.split())
common, rare = [w for w, _ in words.most_common(50)], [w for w, n in words.items() if n == 1][:50]
per_word = lambda ws: np.mean([len(tok.encode(' ' + w)) for w in ws])
print(f'50 most common words: {per_word(common):.2f} tokens each; 50 words seen once: {per_word(rare):.2f}')
assert per_word(common) < per_word(rare)
