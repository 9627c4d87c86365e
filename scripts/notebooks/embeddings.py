# %% [markdown]
# # Contextual against static embeddings, and document embeddings
#
# The embedding table gives a word one vector whatever surrounds it; each block mixes in the other tokens. A masked LM trained on the spot (`quick`: the numbers show mechanics, not semantics).

# %%
import sys, pathlib, tempfile
import tinygrad_attn as tga
sys.path.insert(0, str(pathlib.Path(tga.__file__).resolve().parents[1]))  # the checkout: examples/
import numpy as np
from tinygrad_attn.representations import contextual_embeddings, cosine_similarity, document_embedding
from tinygrad_attn.models.study import study_model
import examples.contextual_embeddings as ctx
study = study_model(None, out=tempfile.mkdtemp() + '/study', quick=True)
model, tok = study.model, study.tokenizer
print(study.label)

# %%
a, b = (contextual_embeddings(model, tok, text) for text in ctx.CONTEXTS)
static = cosine_similarity(a.static_word(ctx.WORD), b.static_word(ctx.WORD))
print(f'{ctx.WORD!r} in {ctx.CONTEXTS}')
print(f'static (table) vectors: cos {static:.3f}')
assert abs(static - 1) < 1e-6   # one vector per word, whatever the sentence
layers = range(a.layers.shape[0])
cos = [cosine_similarity(a.word(ctx.WORD, L), b.word(ctx.WORD, L)) for L in layers]
for L, c in zip(layers, cos):
    print(f'layer {L}: cos {c:.3f}')
assert min(cos[1:]) < 1 - 1e-6   # after a block, the context has changed the vector

# %%
import matplotlib.pyplot as plt
plt.plot(list(layers), cos, marker='o')
plt.xlabel('layer'); plt.ylabel(f'cos({ctx.WORD!r} in sentence 1, in sentence 2)'); plt.show()

# %% [markdown]
# Document vectors: the mean of the final layer over a text's tokens, and the `[CLS]` vector.

# %%
docs = list(ctx.DOCUMENTS)
for pooling in ('mean', 'cls'):
    vectors = document_embedding(model, tok, docs, pooling=pooling)
    table = np.array([[cosine_similarity(u, v) for v in vectors] for u in vectors])
    print(pooling, 'pooling, cos between documents:')
    print(np.round(table, 3))
    assert np.allclose(np.diag(table), 1)
for i, d in enumerate(docs):
    print(f'doc{i}: {d!r}')
