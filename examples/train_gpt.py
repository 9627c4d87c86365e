"""Train a small GPT on the bundled Shakespeare and print a sample: `tinygrad-attn train gpt` as a script.

    python examples/train_gpt.py            # the `small` preset, a few minutes on a CPU
    python examples/train_gpt.py --quick    # a handful of steps on the `tiny` preset
"""
import argparse
import numpy as np

import tinygrad_attn as tga
from tinygrad_attn import optim
from tinygrad_attn.batching import lm_batches, lm_eval_batches
from tinygrad_attn.data import corpus_splits, load_shakespeare
from tinygrad_attn.tokenizers import CharTokenizer
from tinygrad_attn.train import Trainer
from tinygrad_attn.models import GPT, get_preset

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--quick", action="store_true", help="tiny preset, 20 steps")
parser.add_argument("--out", default=None, help="run directory for checkpoints and metrics (default: none)")
parser.add_argument("--device", default="cpu")
args = parser.parse_args()

preset = get_preset("gpt", "tiny" if args.quick else "small")
cfg, hp = preset.model, preset.train
if args.quick:
    hp.steps, hp.eval_every = 20, 10

# 1. text -> ids: two whole plays are held out for evaluation; characters are the tokens
train_text, eval_text = corpus_splits(load_shakespeare())
tok = CharTokenizer.train(train_text, specials=("[UNK]",))
train_ids, eval_ids = np.array(tok.encode(train_text)), np.array(tok.encode(eval_text))
cfg.vocab_size = tok.vocab_size

# 2. the model, AdamW (no decay on embeddings, biases, norms), warm-up then cosine decay
tga.manual_seed(hp.seed)
model = GPT(cfg).to(args.device)
opt = optim.AdamW(optim.param_groups_for_weight_decay(model, hp.weight_decay), lr=hp.lr, betas=hp.betas)
sched = optim.WarmupCosine(opt, min(hp.warmup_steps, hp.steps), hp.steps, hp.min_lr_ratio)
print(f"GPT with {model.num_parameters():,} parameters, {tok.vocab_size} characters")


def held_out_loss(model):
    batches = lm_eval_batches(eval_ids, hp.batch_size, cfg.seq_len, max_batches=hp.eval_batches)
    return float(np.mean([model.loss(x, y).item() for x, y in batches]))


# 3. train: random windows of seq_len+1 tokens, predict each next character
trainer = Trainer(model, opt, lambda rng: lm_batches(train_ids, hp.batch_size, cfg.seq_len, rng),
                  lambda model, batch: model.loss(*batch), steps=hp.steps, schedule=sched,
                  eval_fn=held_out_loss, eval_every=hp.eval_every, out_dir=args.out,
                  grad_clip=hp.grad_clip, seed=hp.seed)
history = trainer.fit()
print(f"loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}, held-out {history[-1]['eval_loss']:.3f}")

# 4. sample with the KV cache: each new character costs one position
ids = model.generate(tok.encode("ROMEO."), max_new_tokens=60 if args.quick else 300,
                     temperature=0.8, top_k=40, seed=0)
print(tok.decode(ids))
