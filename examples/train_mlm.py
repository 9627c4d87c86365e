"""Train a small BERT-style masked LM on the bundled Shakespeare, then fill in a [MASK].

    python examples/train_mlm.py            # the `small` preset (BPE tokens), a few minutes on a CPU
    python examples/train_mlm.py --quick    # a handful of steps on the `tiny` preset
"""
import argparse
import numpy as np

import tinygrad_attn as tga
from tinygrad_attn import optim
from tinygrad_attn.batching import mlm_batches
from tinygrad_attn.data import corpus_splits, load_shakespeare
from tinygrad_attn.tokenizers import build_tokenizer
from tinygrad_attn.train import Trainer
from tinygrad_attn.models import MaskedLM, get_preset

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--quick", action="store_true", help="tiny preset, 20 steps")
parser.add_argument("--device", default="cpu")
args = parser.parse_args()

preset = get_preset("mlm", "tiny" if args.quick else "small")
cfg, hp = preset.model, preset.train
if args.quick:
    hp.steps, hp.eval_every = 20, 10

# 1. tokenizer on the training plays only; [PAD] [MASK] [CLS] [SEP] [UNK] are special tokens
train_text, eval_text = corpus_splits(load_shakespeare())
tok = build_tokenizer(cfg.tokenizer, train_text, cfg.bpe_vocab_size, specials=cfg.specials)
train_ids, eval_ids = np.array(tok.encode(train_text)), np.array(tok.encode(eval_text))
cfg.vocab_size, cfg.pad_id = tok.vocab_size, tok.token_to_id("[PAD]")
sp = tok.special_ids


def batch(ids, rng):
    """Rows of [CLS] text [SEP] [PAD]..., 15% of tokens chosen: 80% -> [MASK], 10% random, 10% kept."""
    return mlm_batches(ids, hp.batch_size, cfg.max_len, rng, cls_id=sp["[CLS]"], sep_id=sp["[SEP]"],
                       pad_id=sp["[PAD]"], mask_id=sp["[MASK]"], vocab_size=tok.vocab_size,
                       special_ids=tuple(sp.values()), mask_prob=cfg.mask_prob)


def held_out_loss(model):
    rng = np.random.default_rng(0)   # the same masked rows every time
    return float(np.mean([model.loss(*batch(eval_ids, rng)).item() for _ in range(hp.eval_batches)]))


tga.manual_seed(hp.seed)
model = MaskedLM(cfg).to(args.device)
opt = optim.AdamW(optim.param_groups_for_weight_decay(model, hp.weight_decay), lr=hp.lr, betas=hp.betas)
sched = optim.WarmupCosine(opt, min(hp.warmup_steps, hp.steps), hp.steps, hp.min_lr_ratio)
print(f"MaskedLM with {model.num_parameters():,} parameters, {tok.vocab_size} tokens")

# the loss counts only the chosen positions (labels are -100 everywhere else)
trainer = Trainer(model, opt, lambda rng: batch(train_ids, rng), lambda model, b: model.loss(*b),
                  steps=hp.steps, schedule=sched, eval_fn=held_out_loss, eval_every=hp.eval_every,
                  grad_clip=hp.grad_clip, seed=hp.seed)
history = trainer.fit()
print(f"masked-token loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}, "
      f"held-out {history[-1]['eval_loss']:.3f}")

text = "To be or not to [MASK], that is the question."
for candidates in model.fill_mask(text, tok, top_k=5):
    print(text, "->", ", ".join(f"{t.strip() or repr(t)} ({p:.2f})" for t, p in candidates))
vec = model.embed("Now is the winter of our discontent", tok)
print(f"document embedding: {vec.shape}, norm {np.linalg.norm(vec):.2f}")
