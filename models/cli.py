"""The `tinygrad-attn` command: train a GPT or a masked LM, sample, fill masks, evaluate.

    tinygrad-attn train gpt                      # small preset, bundled Shakespeare, CPU, a few minutes
    tinygrad-attn sample --out runs/gpt --prompt "ROMEO." --max-new-tokens 200 --temperature 0.8 --top-k 40
    tinygrad-attn train mlm
    tinygrad-attn fill-mask --out runs/mlm "To be or not to [MASK], that is the question"
    tinygrad-attn eval --out runs/gpt            # held-out loss and perplexity

A run directory holds `checkpoint/` (weights, optimizer, configs), `tokenizer.json`
(trained on the training split) and `metrics.jsonl`. Also runs as `python -m models.cli`.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

import numpy as np

import tinygrad_attn as tga
from tinygrad_attn import checkpoint, distributed, optim
from tinygrad_attn.batching import lm_batches, lm_eval_batches, mlm_batches
from tinygrad_attn.data import corpus_splits, load_shakespeare, load_text_file, split_text
from tinygrad_attn.errors import DistributedError
from tinygrad_attn.tokenizers import build_tokenizer, load_tokenizer
from tinygrad_attn.train import CHECKPOINT_DIR, METRICS_FILE, Trainer

from .config import GPT_SPECIALS, GPTConfig, MLMConfig, TrainConfig, get_preset
from .decoder import GPT
from .encoder import MaskedLM

TOKENIZER_FILE = "tokenizer.json"
SHAKESPEARE = "shakespeare"
MLM_DEMO = "To be or not to [MASK], that is the question."


class CLIError(Exception):
    """A mistake in how the command was called (printed without a traceback)."""


# ---------------------------------------------------------------- data, models, runs

def load_corpus(data: str | None) -> tuple[str, str]:
    """(train_text, eval_text): the bundled plays (two held out whole) or a user's file (last 10%)."""
    if data in (None, SHAKESPEARE):
        return corpus_splits(load_shakespeare())
    return split_text(load_text_file(data))


def build_model(kind: str, config):
    return GPT(config) if kind == "gpt" else MaskedLM(config)


def train_tokenizer(kind: str, config, text: str):
    if kind == "gpt":
        specials = GPT_SPECIALS if config.tokenizer == "char" else ()
    else:
        specials = config.specials
    return build_tokenizer(config.tokenizer, text, config.bpe_vocab_size, specials)


def encode(tokenizer, text: str) -> np.ndarray:
    return np.asarray(tokenizer.encode(text), dtype=np.int64)


def make_batch_fn(kind: str, config, train: TrainConfig, ids: np.ndarray, tokenizer):
    if kind == "gpt":
        return lambda rng: lm_batches(ids, train.batch_size, config.seq_len, rng)
    special = tokenizer.special_ids
    return lambda rng: mlm_batches(ids, train.batch_size, config.max_len, rng, cls_id=special["[CLS]"],
                                   sep_id=special["[SEP]"], pad_id=special["[PAD]"], mask_id=special["[MASK]"],
                                   vocab_size=config.vocab_size, special_ids=tuple(special.values()),
                                   mask_prob=config.mask_prob)


def make_eval_fn(kind: str, config, train: TrainConfig, ids: np.ndarray, tokenizer, max_batches: int | None):
    """model -> held-out loss: mean over predicted tokens of deterministic batches (the same every call)."""
    batch_size = train.batch_size

    def eval_gpt(model):
        total, count = 0.0, 0
        for x, y in lm_eval_batches(ids, batch_size, config.seq_len, max_batches):
            total += model.loss(x, y).item() * y.size
            count += y.size
        return total / count

    mlm_batch = make_batch_fn(kind, config, train, ids, tokenizer) if kind == "mlm" else None

    def eval_mlm(model):
        rng = np.random.default_rng(12345)  # the same masked rows at every evaluation
        total, count = 0.0, 0
        for _ in range(max_batches or 20):
            inputs, labels, mask = mlm_batch(rng)
            n = int((labels != -100).sum())
            total += model.loss(inputs, labels, mask).item() * n
            count += n
        return total / count

    return eval_gpt if kind == "gpt" else eval_mlm


def _check_device(device: str) -> str:
    if device == "cuda" and not tga.cuda_is_available():
        raise CLIError("--device cuda: no usable GPU (CuPy missing or no CUDA device); "
                       "install with pip install 'tinygrad_attn[gpu]' or use --device cpu")
    return device


def load_run(out_dir, device: str = "cpu"):
    """(kind, model, tokenizer, extra) of a trained run directory, the model on `device` in eval mode."""
    out = Path(out_dir)
    ckpt = out / CHECKPOINT_DIR
    if not checkpoint.exists(ckpt):
        raise CLIError(f"no trained run in {out}: {ckpt} is missing; train one first, "
                       f"e.g. tinygrad-attn train gpt --out {out}")
    extra = checkpoint.read_extra(ckpt)
    kind = extra.get("kind")
    if kind not in ("gpt", "mlm"):
        raise CLIError(f"{ckpt} was not written by tinygrad-attn train (no model kind recorded)")
    config = (GPTConfig if kind == "gpt" else MLMConfig).from_dict(extra["model_config"])
    if not (out / TOKENIZER_FILE).exists():
        raise CLIError(f"{out / TOKENIZER_FILE} is missing; the run directory is incomplete")
    tokenizer = load_tokenizer(out / TOKENIZER_FILE)
    model = build_model(kind, config)
    checkpoint.load(ckpt, model, map_location=_check_device(device))
    return kind, model.eval(), tokenizer, extra


# ---------------------------------------------------------------- commands

def cmd_train(args) -> int:
    kind, out = args.model, Path(args.out or f"runs/{args.model}")
    # under `mpiexec -n N` the N processes train one model; rank 0 alone writes and prints
    ranks, main_rank = distributed.world_size(), distributed.is_main()
    if ranks > 1 and args.device == "cuda":
        from tinygrad_attn.backend.nccl import select_local_gpu
        select_local_gpu(distributed.local_rank())
    device = _check_device(args.device)
    ckpt = out / CHECKPOINT_DIR
    if args.resume:
        if not checkpoint.exists(ckpt):
            raise CLIError(f"--resume: no checkpoint in {out}; start a run with: tinygrad-attn train {kind} --out {out}")
        extra = checkpoint.read_extra(ckpt)
        if extra.get("kind") != kind:
            raise CLIError(f"--resume: {out} holds a {extra.get('kind')} run, not {kind}")
        config = (GPTConfig if kind == "gpt" else MLMConfig).from_dict(extra["model_config"])
        train = TrainConfig.from_dict(extra["train_config"])
        if args.steps is not None:
            train.steps = args.steps
        data = extra.get("data", SHAKESPEARE)
        tokenizer = load_tokenizer(out / TOKENIZER_FILE)
        train_text, eval_text = load_corpus(data)
    else:
        if checkpoint.exists(ckpt) and not args.overwrite:
            raise CLIError(f"{out} already holds a trained run; continue it with --resume, "
                           f"replace it with --overwrite, or pick another --out")
        preset = get_preset(kind, args.preset)
        config, train = preset.model, preset.train
        for name, value in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr),
                            ("eval_every", args.eval_every), ("seed", args.seed)):
            if value is not None:
                setattr(train, name, value)
        if args.tokenizer is not None:
            config.tokenizer = args.tokenizer
        if args.vocab_size is not None:
            config.bpe_vocab_size = args.vocab_size
        if args.dropout is not None:
            config.dropout = args.dropout
        data = args.data or SHAKESPEARE
        train_text, eval_text = load_corpus(data)
        tokenizer = train_tokenizer(kind, config, train_text)
        config.vocab_size = tokenizer.vocab_size
        if kind == "mlm":
            config.pad_id = tokenizer.token_to_id("[PAD]")
        if main_rank:
            if args.overwrite:
                shutil.rmtree(ckpt, ignore_errors=True)
                (out / METRICS_FILE).unlink(missing_ok=True)
            out.mkdir(parents=True, exist_ok=True)
            tokenizer.save(out / TOKENIZER_FILE)
    distributed.local_batch_size(train.batch_size, ranks)   # --batch-size is the global batch: it must split

    train_ids, eval_ids = encode(tokenizer, train_text), encode(tokenizer, eval_text)
    tga.manual_seed(train.seed)
    model = build_model(kind, config).to(device)
    opt = optim.AdamW(optim.param_groups_for_weight_decay(model, train.weight_decay), lr=train.lr,
                      betas=train.betas)
    sched = optim.WarmupCosine(opt, min(train.warmup_steps, train.steps), train.steps, train.min_lr_ratio)
    say = print if main_rank else (lambda *a: None)
    say(f"{kind}: {model.num_parameters():,} parameters, {config.tokenizer} tokenizer with "
        f"{tokenizer.vocab_size} tokens; {len(train_ids):,} training / {len(eval_ids):,} held-out tokens; "
        f"{train.steps} steps of {train.batch_size} on {device}" + (f", {ranks} ranks" if ranks > 1 else ""))
    batch_fn, parallel = make_batch_fn(kind, config, train, train_ids, tokenizer), None
    if ranks > 1:
        parallel = distributed.DataParallel(model)
        batch_fn = parallel.shard(batch_fn)
    trainer = Trainer(model, opt, batch_fn,
                      steps=train.steps, schedule=sched,
                      eval_fn=make_eval_fn(kind, config, train, eval_ids, tokenizer, train.eval_batches),
                      eval_every=train.eval_every, out_dir=out, grad_clip=train.grad_clip, seed=train.seed,
                      extra={"kind": kind, "model_config": config.to_dict(), "train_config": train.to_dict(),
                             "data": data},
                      desc=f"train {kind}", parallel=parallel)
    try:
        trainer.fit(resume=args.resume)
    except KeyboardInterrupt:
        return 130
    if not main_rank:
        return 0
    print(f"saved to {out} (checkpoint, {TOKENIZER_FILE}, {METRICS_FILE}) after {trainer.elapsed:.0f}s of training")
    if args.no_sample:
        return 0
    model.eval()
    if kind == "gpt":
        prompt = "ROMEO." if data == SHAKESPEARE else "\n"
        ids = model.generate(tokenizer.encode(prompt), 200, temperature=0.8, top_k=40, seed=train.seed)
        print(f"--- sample (tinygrad-attn sample --out {out}) ---\n{tokenizer.decode(ids)}")
    else:
        _print_fill_mask(model.fill_mask(MLM_DEMO, tokenizer, top_k=5), MLM_DEMO)
    return 0


def cmd_sample(args) -> int:
    kind, model, tokenizer, extra = load_run(args.out, args.device)
    if kind != "gpt":
        raise CLIError(f"{args.out} holds a masked LM; `sample` needs a gpt run (try fill-mask)")
    prompt = args.prompt.encode().decode("unicode_escape") if args.escapes else args.prompt
    prompt_ids = tokenizer.encode(prompt)
    if not prompt_ids:
        raise CLIError("--prompt is empty; give at least one character")
    ids = model.generate(prompt_ids, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                         top_p=args.top_p, seed=args.seed, use_cache=not args.no_cache)
    print(tokenizer.decode(ids))
    return 0


def _print_fill_mask(results, text):
    print(text)
    for i, candidates in enumerate(results, start=1):
        shown = "  ".join(f"{token.strip() or repr(token)!s} {p:.3f}" for token, p in candidates)
        print(f"[MASK] {i}: {shown}")


def cmd_fill_mask(args) -> int:
    kind, model, tokenizer, _ = load_run(args.out, args.device)
    if kind != "mlm":
        raise CLIError(f"{args.out} holds a gpt model; `fill-mask` needs an mlm run (tinygrad-attn train mlm)")
    if "[MASK]" not in args.text:
        raise CLIError(f"the text has no [MASK]: {args.text!r}")
    _print_fill_mask(model.fill_mask(args.text, tokenizer, top_k=args.top_k), args.text)
    return 0


def cmd_eval(args) -> int:
    kind, model, tokenizer, extra = load_run(args.out, args.device)
    config = model.config
    train = TrainConfig.from_dict(extra["train_config"])
    data = args.data or extra.get("data", SHAKESPEARE)
    _, eval_text = load_corpus(data)
    ids = encode(tokenizer, eval_text)
    with tga.no_grad():
        loss = make_eval_fn(kind, config, train, ids, tokenizer, args.batches)(model)
    what = "next-token" if kind == "gpt" else "masked-token"
    print(f"{args.out}: held-out {what} loss {loss:.4f}, perplexity {math.exp(loss):.2f} "
          f"({'all' if args.batches is None else args.batches} batches of {train.batch_size}, "
          f"step {extra['trainer']['step']})")
    return 0


# ---------------------------------------------------------------- argument parsing

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinygrad-attn", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a gpt (causal decoder) or mlm (masked-LM encoder)")
    t.add_argument("model", choices=["gpt", "mlm"])
    t.add_argument("--preset", default="small", choices=["tiny", "small", "base"],
                   help="model size and training defaults (default: small, a few minutes on a CPU)")
    t.add_argument("--steps", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--eval-every", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--dropout", type=float)
    t.add_argument("--tokenizer", choices=["char", "bpe"])
    t.add_argument("--vocab-size", type=int, help="BPE vocabulary size (with --tokenizer bpe)")
    t.add_argument("--data", help="a UTF-8 text file to train on instead of the bundled Shakespeare")
    t.add_argument("--out", help="run directory (default: runs/gpt or runs/mlm)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    t.add_argument("--no-sample", action="store_true", help="skip the sample printed at the end")
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate text from a trained gpt run")
    s.add_argument("--out", default="runs/gpt")
    s.add_argument("--prompt", default="ROMEO.")
    s.add_argument("--escapes", action="store_true", help=r"interpret \n etc. in --prompt")
    s.add_argument("--max-new-tokens", type=int, default=200)
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--top-k", type=int, default=40)
    s.add_argument("--top-p", type=float)
    s.add_argument("--seed", type=int)
    s.add_argument("--no-cache", action="store_true", help="recompute the whole window for every token")
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    s.set_defaults(func=cmd_sample)

    f = sub.add_parser("fill-mask", help="top candidates for each [MASK] from a trained mlm run")
    f.add_argument("text")
    f.add_argument("--out", default="runs/mlm")
    f.add_argument("--top-k", type=int, default=5)
    f.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    f.set_defaults(func=cmd_fill_mask)

    e = sub.add_parser("eval", help="held-out loss and perplexity of a trained run")
    e.add_argument("--out", default="runs/gpt")
    e.add_argument("--batches", type=int, help="cap on eval batches (default: all held-out text)")
    e.add_argument("--data", help="evaluate on the held-out part of this file instead")
    e.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    e.set_defaults(func=cmd_eval)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # every rank reports an error that all ranks raise together (rank 0 prints it); any
    # other error on a rank aborts all of them with its message, so that none waits forever
    report = print if distributed.launched_rank() == 0 else (lambda *a, **k: None)
    try:
        with distributed.abort_on_error(distributed.world(), collective=(DistributedError, FloatingPointError)):
            return args.func(args)
    except (CLIError, tga.CheckpointError, FileNotFoundError, tga.DeviceError, DistributedError) as e:
        report(f"tinygrad-attn: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:   # the trainer's non-finite guard
        report(f"tinygrad-attn: training stopped: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
