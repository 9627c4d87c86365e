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
