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
