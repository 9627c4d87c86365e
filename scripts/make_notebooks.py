"""Write the notebooks in examples/notebooks from the cells below, outputs stripped (run: python scripts/make_notebooks.py).

Each notebook calls the library's public functions; the cells here are its whole source.
tests/test_notebooks.py checks the stored files carry no outputs and executes each one.
"""
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "examples" / "notebooks"

ATTRIBUTION = [
    ("md", "# Which input tokens did this prediction depend on?\n\n"
           "Three answers for one filled-mask logit of a masked LM trained on the spot (the `study` preset, "
           "`quick`: 30 steps, so the weights have learned little; pass a run to `study_model` for a real one):\n"
           "gradient × input, integrated gradients, and attention rollout."),
    ("code", "%matplotlib inline\nimport tempfile\nimport numpy as np\n"
             "from tinygrad_attn import attribution, inspect, plots\n"
             "from tinygrad_attn.models.study import study_model\n"
             "study = study_model(None, out=tempfile.mkdtemp() + '/study', quick=True)\n"
             "model, tok = study.model.double(), study.tokenizer\nprint(study.label)"),
    ("code", "text = 'The cat sat on the [MASK].'\nids = np.array([tok.encode(text)])\n"
             "tokens = [tok.id_to_token(int(i)) for i in ids[0]]\n"
             "position = tokens.index('[MASK]')\nlogits = model(ids).numpy()[0, position]\n"
             "token = int(logits.argmax())\nprint(tokens, '-> predicted', repr(tok.id_to_token(token)))"),
    ("md", "Gradient × input and integrated gradients differentiate that logit with respect to the token "
           "embeddings, which the model takes in place of its lookup (`model(ids, token_embeddings=E)`)."),
    ("code", "f = attribution.logit_of(model, ids, position, token)\n"
             "x = attribution.token_embeddings(model, ids)\n"
             "gxi = attribution.gradient_x_input(f, x)\n"
             "ig = attribution.integrated_gradients(f, x, steps=32)\n"
             "import tinygrad_attn as tga\n"
             "gap = float(f(tga.Tensor(x)).numpy()) - float(f(tga.Tensor(np.zeros_like(x))).numpy())\n"
             "print('IG sums to', ig.sum(), ' f(x) - f(0) =', gap)\n"
             "assert abs(ig.sum() - gap) < 1e-2 * abs(gap) + 1e-6"),
    ("code", "with inspect.capture(model) as cap:\n    model(ids)\n"
             "rollout = attribution.attention_rollout(cap)[0, position]\n"
             "fig_path = plots.plot_attributions({'grad x input': gxi, 'integrated gradients': ig, "
             "'attention rollout': rollout}, tokens, tempfile.mkdtemp() + '/attr.png')\n"
             "from IPython.display import Image\nImage(str(fig_path))"),
]

BACKPROP = [
    ("md", "# Backprop through attention\n\nA small GPT (untrained: the mechanics, not what was learned), "
           "one backward pass, and what `inspect.capture` records at the attention scores and weights."),
    ("code", "%matplotlib inline\nimport numpy as np\nimport tinygrad_attn as tga\n"
             "from tinygrad_attn import inspect\nfrom tinygrad_attn.models import GPT, GPTConfig\n"
             "tga.manual_seed(0)\n"
             "model = GPT(GPTConfig(vocab_size=11, seq_len=6, d_model=16, n_heads=2, n_layers=1, dropout=0.0)).double()\n"
             "ids = np.random.default_rng(0).integers(0, 11, (1, 6))\ntargets = np.roll(ids, 1, axis=1)\n"
             "with inspect.capture(model) as cap:\n    loss = model.loss(ids, targets)\n    loss.backward()\n"
             "dS, dA = cap.score_grads['blocks.0.attn'], cap.weight_grads['blocks.0.attn']\n"
             "print('dL/d(scores)', dS.shape)\nprint(np.round(dS[0, 0], 4))\n"
             "print('dL/d(weights)', dA.shape)\nprint(np.round(dA[0, 0], 4))"),
    ("md", "Above the diagonal the causal mask hid the keys: those weights are 0, so are their score gradients."),
    ("code", "future = np.triu(np.ones(dS.shape[-2:], bool), 1)\n"
             "print('largest |dL/dS| at masked positions:', np.abs(dS[..., future]).max())\n"
             "assert np.all(dS[..., future] == 0)"),
    ("md", "A finite-difference check: nudge one weight of the attention's Q/K/V projection both ways."),
    ("code", "name = 'blocks.0.attn.qkv.weight'\nW = dict(model.named_parameters())[name]\n"
             "analytic, h = cap.param_grads[name][3, 5], 1e-6\nW.data[3, 5] += h\n"
             "up = float(model.loss(ids, targets).numpy())\nW.data[3, 5] -= 2 * h\n"
             "down = float(model.loss(ids, targets).numpy())\nW.data[3, 5] += h\n"
             "numeric = (up - down) / (2 * h)\nprint(analytic, numeric)\n"
             "assert abs(analytic - numeric) < 1e-6 * max(1.0, abs(numeric))"),
    ("md", "The graph of one head, with |dL/d(tensor)| on each box (SVG inline with Graphviz installed, "
           "else the DOT text)."),
    ("code", "from tinygrad_attn.viz import draw_graph, to_dot\nx = tga.randn(4, 8)\n"
             "Wq, Wk, Wv = (tga.randn(8, 4, requires_grad=True) for _ in range(3))\n"
             "head_loss = ((x @ Wq) @ (x @ Wk).T * 0.5).softmax(-1) @ (x @ Wv)\nhead_loss = head_loss.sum()\n"
             "head_loss.backward(retain_graph=True)\nnames = {'x': x, 'Wq': Wq, 'Wk': Wk, 'Wv': Wv}\n"
             "import shutil, tempfile\nfrom IPython.display import SVG\n"
             "if shutil.which('dot'):\n"
             "    display(SVG(filename=str(draw_graph(head_loss, show_grad_norms=True, names=names, "
             "path=tempfile.mkdtemp() + '/head.svg'))))\n"
             "else:\n    print(to_dot(head_loss, show_grad_norms=True, names=names))"),
]


# the examples' own functions, so each piece of maths is written once (notebooks run from a checkout)
EXAMPLES = ("import sys, pathlib, tempfile\nimport tinygrad_attn as tga\n"
            "sys.path.insert(0, str(pathlib.Path(tga.__file__).resolve().parents[1]))  # the checkout: examples/\n")

WALKTHROUGH = [
    ("md", "# \"The cat sat on the mat.\", step by step\n\n"
           "The first attention layer of a masked LM trained on the spot (the `study` preset, `quick`: 30 steps; "
           "pass a run to `study_model` for a real one), recomputed by hand in NumPy one step at a time. "
           "Each step prints its array beside its shape, and is checked against the model's own value."),
    ("code", "%matplotlib inline\n" + EXAMPLES + "import numpy as np\nfrom tinygrad_attn import inspect\n"
             "from tinygrad_attn.models.study import study_model\nimport examples.self_attention_walkthrough as walk\n"
             "study = study_model(None, out=tempfile.mkdtemp() + '/study', quick=True)\n"
             "model, tok, kind = study.model.double().eval(), study.tokenizer, study.kind\nprint(study.label)"),
    ("code", "ids, tokens = walk.sentence_ids(kind, tok)\nprint(tokens)\nprint(ids)"),
    ("md", "The forward pass by hand (`forward_by_hand`), and the same steps read from the model with "
           "`inspect.capture`."),
    ("code", "steps = walk.forward_by_hand(model, ids, causal=kind == 'gpt')\n"
             "with inspect.capture(model, layers=['blocks.0.ln1', walk.LAYER]) as cap:\n"
             "    loss, what = walk.model_loss(model, kind, ids)\n    loss.backward()\n"
             "engine = walk.engine_forward(model, cap, ids)\n"
             "for name, mine in steps.items():\n"
             "    walk.show(name, mine[0] if mine.ndim == 3 else mine, '(head 0)' if mine.ndim == 3 else '')\n"
             "    if name in engine:\n"
             "        gap = walk.diff(mine, engine[name])\n        print(f'  model\\'s own value: max |difference| {gap:.1e}')\n"
             "        assert gap < 1e-9, name"),
    ("md", "The attention weights of each head, as a heat map: row = query token, column = key token."),
    ("code", "import matplotlib.pyplot as plt\nA = steps['A']\n"
             "fig, axes = plt.subplots(1, A.shape[0], figsize=(3 * A.shape[0], 3))\n"
             "for h, ax in enumerate(np.atleast_1d(axes)):\n"
             "    ax.imshow(A[h], cmap='viridis'); ax.set_title(f'head {h}')\n"
             "    ax.set_xticks(range(len(tokens)), tokens, rotation=90); ax.set_yticks(range(len(tokens)), tokens)\n"
             "plt.tight_layout(); plt.show()"),
    ("md", "Backward, step by step from the gradient that reaches the layer's output (`backward_by_hand`), "
           "against the engine's gradients."),
    ("code", "params = {n: p.numpy() for n, p in model.named_parameters()}\n"
             "grads = walk.backward_by_hand(steps, cap.output_grads[walk.LAYER][0], params, model.blocks[0].attn.head_dim)\n"
             "for name, theirs in walk.engine_backward(cap).items():\n"
             "    gap = walk.diff(grads[name], theirs)\n    print(f'{name:>12} {str(np.shape(theirs)):>14}  max |difference| {gap:.1e}')\n"
             "    assert gap < 1e-9, name"),
]

BPE = [
    ("md", "# BPE and its weaknesses\n\nByte-level BPE trained on the bundled Shakespeare: how words split, "
           "and what a split does to a model's embeddings."),
    ("code", EXAMPLES + "import numpy as np\nfrom tinygrad_attn.tokenizers import BPETokenizer\n"
             "from tinygrad_attn.data import load_shakespeare\nimport examples.bpe_weaknesses as bpe\n"
             "text = ''.join(load_shakespeare().values())[:300_000]\n"
             "tok = BPETokenizer.train(text, vocab_size=400)\nprint(tok.vocab_size, 'tokens')"),
    ("md", "Every split below is `tok.tokens(text)`: a leading space, capitals, digits, non-ASCII bytes, rare names."),
    ("code", "bpe.show_cases(tok)"),
    ("md", "Encoding is lossless: any text, even one the corpus never had, decodes back to itself byte for byte."),
    ("code", "for sample in ['The cat sat on the mat.', 'café 🙂 日本', '  two  spaces\\n', 'Rosencrantz']:\n"
             "    ids = tok.encode(sample)\n    assert tok.decode(ids) == sample\n"
             "    print(f'{sample!r:>28}: {len(ids):>2} ids for {len(sample.encode()):>2} bytes')"),
    ("md", "Frequent words get one token, rare ones many: the cost of a word in tokens falls with its frequency."),
    ("code", "from collections import Counter\nwords = Counter(text.split())\n"
             "common, rare = [w for w, _ in words.most_common(50)], [w for w, n in words.items() if n == 1][:50]\n"
             "per_word = lambda ws: np.mean([len(tok.encode(' ' + w)) for w in ws])\n"
             "print(f'50 most common words: {per_word(common):.2f} tokens each; 50 words seen once: {per_word(rare):.2f}')\n"
             "assert per_word(common) < per_word(rare)"),
]

EMBEDDINGS = [
    ("md", "# Contextual against static embeddings, and document embeddings\n\n"
           "The embedding table gives a word one vector whatever surrounds it; each block mixes in the other "
           "tokens. A masked LM trained on the spot (`quick`: the numbers show mechanics, not semantics)."),
    ("code", "%matplotlib inline\n" + EXAMPLES + "import numpy as np\n"
             "from tinygrad_attn.representations import contextual_embeddings, cosine_similarity, document_embedding\n"
             "from tinygrad_attn.models.study import study_model\nimport examples.contextual_embeddings as ctx\n"
             "study = study_model(None, out=tempfile.mkdtemp() + '/study', quick=True)\n"
             "model, tok = study.model, study.tokenizer\nprint(study.label)"),
    ("code", "a, b = (contextual_embeddings(model, tok, text) for text in ctx.CONTEXTS)\n"
             "static = cosine_similarity(a.static_word(ctx.WORD), b.static_word(ctx.WORD))\n"
             "print(f'{ctx.WORD!r} in {ctx.CONTEXTS}')\nprint(f'static (table) vectors: cos {static:.3f}')\n"
             "assert abs(static - 1) < 1e-6   # one vector per word, whatever the sentence\n"
             "layers = range(a.layers.shape[0])\ncos = [cosine_similarity(a.word(ctx.WORD, L), b.word(ctx.WORD, L)) for L in layers]\n"
             "for L, c in zip(layers, cos):\n    print(f'layer {L}: cos {c:.3f}')\n"
             "assert min(cos[1:]) < 1 - 1e-6   # after a block, the context has changed the vector"),
    ("code", "import matplotlib.pyplot as plt\nplt.plot(list(layers), cos, marker='o')\n"
             "plt.xlabel('layer'); plt.ylabel(f'cos({ctx.WORD!r} in sentence 1, in sentence 2)'); plt.show()"),
    ("md", "Document vectors: the mean of the final layer over a text's tokens, and the `[CLS]` vector."),
    ("code", "docs = list(ctx.DOCUMENTS)\nfor pooling in ('mean', 'cls'):\n"
             "    vectors = document_embedding(model, tok, docs, pooling=pooling)\n"
             "    table = np.array([[cosine_similarity(u, v) for v in vectors] for u in vectors])\n"
             "    print(pooling, 'pooling, cos between documents:')\n    print(np.round(table, 3))\n"
             "    assert np.allclose(np.diag(table), 1)\nfor i, d in enumerate(docs):\n    print(f'doc{i}: {d!r}')"),
]

TRAINING = [
    ("md", "# Training the decoder and the masked LM, with live loss plots\n\n"
           "Two tiny models on the bundled Shakespeare, each trained for a few dozen steps with the plot "
           "redrawn as the loss comes in; then a sample and a filled mask."),
    ("code", "%matplotlib inline\nimport numpy as np\nimport matplotlib.pyplot as plt\n"
             "from IPython.display import display, clear_output\nimport tinygrad_attn as tga\n"
             "from tinygrad_attn import optim\nfrom tinygrad_attn.batching import lm_batches\n"
             "from tinygrad_attn.data import corpus_splits, load_shakespeare\n"
             "from tinygrad_attn.tokenizers import CharTokenizer\nfrom tinygrad_attn.models import GPT, get_preset\n"
             "train_text = corpus_splits(load_shakespeare())[0][:200_000]\n"
             "tok = CharTokenizer.train(train_text)\nids = np.array(tok.encode(train_text))\n"
             "config = get_preset('gpt', 'tiny').model\nconfig.vocab_size = tok.vocab_size\n"
             "tga.manual_seed(0)\ngpt = GPT(config)\nopt = optim.AdamW(gpt.parameters(), lr=3e-3)\n"
             "rng = np.random.default_rng(0)\nprint(gpt.num_parameters(), 'parameters')"),
    ("code", "def live(losses, title):\n    clear_output(wait=True)\n    plt.figure(figsize=(5, 3))\n"
             "    plt.plot(losses); plt.xlabel('step'); plt.ylabel('loss'); plt.title(title); plt.show()\n\n"
             "losses = []\nfor step in range(40):\n    x, y = lm_batches(ids, 16, config.seq_len, rng)\n"
             "    opt.zero_grad()\n    loss = gpt.loss(x, y)\n    loss.backward()\n    opt.step()\n"
             "    losses.append(loss.item())\n    if step % 10 == 9:\n        live(losses, 'decoder')\n"
             "print(f'loss {losses[0]:.3f} -> {losses[-1]:.3f}')\nassert np.mean(losses[-5:]) < losses[0]"),
    ("code", "out = gpt.generate(tok.encode('ROMEO.'), 80, temperature=0.8, top_k=10, seed=0)\n"
             "print(tok.decode(out))"),
    ("md", "The masked LM: 15% of the tokens hidden, the loss on those alone."),
    ("code", "from tinygrad_attn.models import MaskedLM\nfrom tinygrad_attn.models.config import MLM_SPECIALS\n"
             "mtok = CharTokenizer.train(train_text, specials=MLM_SPECIALS)\nmids = np.array(mtok.encode(train_text))\n"
             "mconfig = get_preset('mlm', 'tiny').model\nmconfig.vocab_size, mconfig.pad_id = mtok.vocab_size, mtok.token_to_id('[PAD]')\n"
             "tga.manual_seed(0)\nmlm = MaskedLM(mconfig)\nmopt = optim.AdamW(mlm.parameters(), lr=3e-3)\n"
             "mask_id, T = mtok.token_to_id('[MASK]'), mconfig.max_len\nmlosses = []\nfor step in range(40):\n"
             "    starts = rng.integers(0, len(mids) - T, 16)\n    x = np.stack([mids[s:s + T] for s in starts])\n"
             "    hidden = rng.random(x.shape) < 0.15\n    labels = np.where(hidden, x, -100)\n"
             "    mopt.zero_grad()\n    loss = mlm.loss(np.where(hidden, mask_id, x), labels, np.ones(x.shape, bool))\n"
             "    loss.backward()\n    mopt.step()\n    mlosses.append(loss.item())\n"
             "    if step % 10 == 9:\n        live(mlosses, 'masked LM')\n"
             "print(f'loss {mlosses[0]:.3f} -> {mlosses[-1]:.3f}')\nassert np.mean(mlosses[-5:]) < mlosses[0]"),
]

SWAP = [
    ("md", "# Swapping CPU and GPU\n\nOne model, one step on the CPU and, where CuPy sees a GPU, on CUDA: the "
           "same loss and gradients to float32 rounding. Without a GPU the CPU path runs alone, and the notebook "
           "shows what moving and mixing devices does."),
    ("code", "import numpy as np\nimport tinygrad_attn as tga\nfrom tinygrad_attn.models import GPT, get_preset\n"
             "config = get_preset('gpt', 'tiny').model\nconfig.vocab_size = 32\n"
             "x = np.random.default_rng(0).integers(0, 32, (4, config.seq_len))\ny = np.roll(x, -1, axis=1)\n\n"
             "def step(device):\n    tga.manual_seed(0)\n    model = GPT(config).to(device)\n"
             "    loss = model.loss(x, y)\n    loss.backward()\n"
             "    return loss.item(), {n: p.grad.numpy() for n, p in model.named_parameters()}\n\n"
             "cpu_loss, cpu_grads = step('cpu')\nprint('cpu loss', cpu_loss)\n"
             "if tga.cuda_is_available():\n    gpu_loss, gpu_grads = step('cuda')\n"
             "    worst = max(np.abs(cpu_grads[n] - gpu_grads[n]).max() for n in cpu_grads)\n"
             "    print('cuda loss', gpu_loss, ' max |grad difference|', worst)\n"
             "    assert abs(cpu_loss - gpu_loss) < 1e-4 and worst < 1e-3\n"
             "else:\n    print('no CUDA GPU here (pip install \"tinygrad_attn[gpu]\" on a machine with one): CPU only')"),
    ("md", "A tensor lives on one device; `.to()` moves it, and an op between devices is a clear error."),
    ("code", "t = tga.randn(2, 3)\nprint(t.device)\nback = t.to('cpu')\nassert back.device == 'cpu'\n"
             "if tga.cuda_is_available():\n    g = t.to('cuda')\n    try:\n        g + t\n"
             "    except tga.DeviceError as e:\n        print('DeviceError:', e)\n"
             "else:\n    try:\n        t.to('cuda')\n    except tga.TinygradAttnError as e:\n"
             "        print(type(e).__name__ + ':', e)"),
]


def write(name: str, cells) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
                for kind, src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = NOTEBOOKS / name
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    print(write("attribution.ipynb", ATTRIBUTION))
    print(write("backprop_through_attention.ipynb", BACKPROP))
    print(write("self_attention_walkthrough.ipynb", WALKTHROUGH))
    print(write("bpe_weaknesses.ipynb", BPE))
    print(write("embeddings.ipynb", EMBEDDINGS))
    print(write("training.ipynb", TRAINING))
    print(write("swap_backend.ipynb", SWAP))
