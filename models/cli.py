"""The `tinygrad-attn` command: train a GPT or a masked LM, sample, fill masks, evaluate.

    tinygrad-attn train gpt                      # small preset, bundled Shakespeare, CPU, a few minutes
    tinygrad-attn sample --out runs/gpt --prompt "ROMEO." --max-new-tokens 200 --temperature 0.8 --top-k 40
    tinygrad-attn train mlm
    tinygrad-attn fill-mask --out runs/mlm "To be or not to [MASK], that is the question"
    tinygrad-attn eval --out runs/gpt            # held-out loss and perplexity

A run directory holds `checkpoint/`, `tokenizer.json` and `metrics.jsonl` (see tinygrad_attn.models.run).
Every mistake ends as one line on stderr and exit status 2. Also runs as `python -m tinygrad_attn.models.cli`.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np


import tinygrad_attn as tga
from tinygrad_attn import checkpoint, distributed, optim
from tinygrad_attn.data import corpus_splits, load_shakespeare
from tinygrad_attn.data.stream import SplitText, TextFile, encode_chunks, encode_to_file
from tinygrad_attn.errors import DataError, DistributedError, TinygradAttnError
from tinygrad_attn.run_dir import hold_run
from tinygrad_attn.tokenizers import WORD_PATTERN, build_tokenizer
from tinygrad_attn.train import CHECKPOINT_DIR, METRICS_FILE, Trainer

from .config import PRESETS, TrainConfig, get_preset
from .kinds import KINDS, format_fill_mask
from . import run_owner
from .memory import check_fits
from .run import (SHAKESPEARE, TOKENIZER_FILE, data_record, data_source, load_run, load_run_tokenizer,
                  read_run_config, tokenizer_record)

PROG = "tinygrad-attn"


class CLIError(Exception):
    """A mistake in how the command was called (printed without a traceback)."""


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------- data and run directories

def load_corpus(data: str):
    """The text, as chunks of its "train" and "eval" parts: the bundled plays (two held out
    whole) or a user's file (the last 10% held out), which is never read whole into memory."""
    if data == SHAKESPEARE:
        return SplitText(*corpus_splits(load_shakespeare()))
    try:
        return TextFile(data)
    except DataError as e:
        raise DataError(f"--data {data}: {e}") from None


def _check_long_enough(ids, what: str, context: int, data: str) -> None:
    if len(ids) < context + 2:
        raise DataError(f"--data {data} is too short: its {what} part has {len(ids)} tokens, but one window of "
                        f"the model's context ({context}) needs {context + 2}; give more text or a smaller --seq-len")


def _probe_writable(directory: Path) -> None:
    with tempfile.TemporaryFile(dir=directory):
        pass


def _check_out(out: Path) -> None:
    """--out must be (or be creatable as) a writable directory: checked before any work."""
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file, not a directory; pick another --out")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CLIError(f"--out {out}: {existing} is a file, not a directory")
    try:
        _probe_writable(existing)
    except OSError as e:
        raise CLIError(f"--out {out}: cannot write in {existing}: {e.strerror or e}") from None


def resume_command(argv: list[str]) -> str:
    """The command line that continues this run: the same flags, with --resume and without --overwrite."""
    args = [a for a in argv if a != "--overwrite"]
    return shlex.join([PROG, *args] + ([] if "--resume" in args else ["--resume"]))


def _check_device(device: str) -> str:
    if device == "cuda" and not tga.cuda_is_available():
        raise CLIError("--device cuda: no usable GPU (CuPy missing or no CUDA device); "
                       "install with pip install 'tinygrad_attn[gpu]' or use --device cpu")
    return device


# ---------------------------------------------------------------- train

SIZE_FLAGS = ("d_model", "n_layers", "n_heads", "seq_len")
TRAIN_FLAGS = ("steps", "batch_size", "lr", "eval_every", "seed")
TOKENS_FILE = "tokens/train.bin"   # the training ids, memory-mapped; rewritten at every start


def _fresh_setup(args, kind):
    """Config, data and tokenizer of a new run; nothing is written."""
    preset = get_preset(kind.name, args.preset)
    config, train = preset.model, preset.train
    for name in TRAIN_FLAGS:
        if getattr(args, name) is not None:
            setattr(train, name, getattr(args, name))
    for name in SIZE_FLAGS:
        if getattr(args, name) is not None:
            setattr(config, kind.context_field if name == "seq_len" else name, getattr(args, name))
    for flag, field in (("tokenizer", "tokenizer"), ("vocab_size", "bpe_vocab_size"), ("dropout", "dropout")):
        if getattr(args, flag) is not None:
            setattr(config, field, getattr(args, flag))
    if args.whole_word_mask:
        if not hasattr(config, "whole_word_mask"):
            raise CLIError(f"--whole-word-mask is for mlm runs (a {kind.name} predicts every token, nothing is masked)")
        config.whole_word_mask = True
    config.vocab_size = max(config.vocab_size, 1)    # set from the tokenizer below; checked for the rest now
    try:
        config.check()
        train.check()
    except tga.ConfigError as e:
        raise CLIError(str(e)) from None
    data = args.data or SHAKESPEARE
    corpus = load_corpus(data)
    tokenizer = build_tokenizer(config.tokenizer, corpus.chunks("train"), config.bpe_vocab_size,
                                kind.specials(config))
    kind.fit_tokenizer(config, tokenizer)
    return config, train, data, tokenizer, corpus


def _resumed_setup(args, kind, out: Path):
    """Config, data and tokenizer of the run in `out`, every one checked against the checkpoint."""
    stored = read_run_config(out)
    if stored.kind is not kind:
        raise CLIError(f"--resume: {out} holds a {stored.kind.name} run, not {kind.name}")
    config, train = stored.config, stored.train
    _refuse_changes(args, kind, config, train)
    if args.steps is not None:
        train.steps = args.steps
    tokenizer = load_run_tokenizer(out, config, stored.extra)
    data = data_source(stored.extra, args.allow_data_change, warn)
    return config, train, data, tokenizer, load_corpus(data)


def _refuse_changes(args, kind, config, train) -> None:
    """--resume continues the run as saved: a flag that names another value than the checkpoint's
    (other than --steps, which says how far to go) is refused, each change named, not ignored."""
    saved = {name: getattr(train, name) for name in TRAIN_FLAGS if name != "steps"}
    saved.update({name: getattr(config, kind.context_field if name == "seq_len" else name) for name in SIZE_FLAGS})
    saved.update({flag: getattr(config, field, None) for flag, field in
                  (("tokenizer", "tokenizer"), ("vocab_size", "bpe_vocab_size"), ("dropout", "dropout"))})
    changed = [f"--{name.replace('_', '-')} {getattr(args, name)} (saved: {value})" for name, value in saved.items()
               if getattr(args, name, None) is not None and getattr(args, name) != value]
    if changed:
        raise CLIError(f"--resume continues the run as it was saved, and these differ: {', '.join(changed)}; "
                       f"drop them (only --steps may change), or train a new run with another --out")


def cmd_train(args) -> int:
    kind, out = KINDS[args.model], Path(args.out or f"runs/{args.model}")
    # under `mpiexec -n N` the N processes train one model; rank 0 alone writes and prints
    main_rank = distributed.is_main()
    if distributed.world_size() > 1 and args.device == "cuda":
        from tinygrad_attn.backend.nccl import select_local_gpu
        select_local_gpu(distributed.local_rank())
    hold = hold_run if main_rank else (lambda out: contextlib.nullcontext())
    device = _check_device(args.device)
    if args.preset == "base" and device == "cpu" and main_rank:
        warn("--preset base is sized for a GPU; on a CPU it takes hours (use --device cuda, or --preset small)")
    _check_out(out)
    created = not out.exists()
    ckpt = out / CHECKPOINT_DIR
    try:
        if main_rank:
            run_owner.recover(out, warn)
            run_owner.check_owned(out)
        if args.resume:
            if not checkpoint.exists(ckpt):
                raise CLIError(f"--resume: no checkpoint in {out}; start a run with: "
                               f"{PROG} train {kind.name} --out {out}")
            with hold(out):
                return _train(args, kind, out, device, *_resumed_setup(args, kind, out))
        if checkpoint.exists(ckpt) and not args.overwrite:
            raise CLIError(f"{out} already holds a trained run; continue it with --resume, "
                           f"replace it with --overwrite, or pick another --out")
        setup = _fresh_setup(args, kind)
        with hold(out):
            replace = main_rank and args.overwrite and checkpoint.exists(ckpt)
            # --overwrite: the finished run moves aside, and comes back on any failure before the
            # new run's first checkpoint (run_owner.replacing)
            with run_owner.replacing(out) if replace else contextlib.nullcontext():
                if main_rank:
                    run_owner.claim(out)
                    setup[3].save(out / TOKENIZER_FILE)
                return _train(args, kind, out, device, *setup)
    except BaseException as e:
        if main_rank and created and out.exists() and not checkpoint.exists(ckpt) and not isinstance(e, FloatingPointError):
            shutil.rmtree(out, ignore_errors=True)   # a failure leaves no half-made run directory
        raise


def _train(args, kind, out, device, config, train, data, tokenizer, corpus) -> int:
    ranks, main_rank = distributed.world_size(), distributed.is_main()
    distributed.local_batch_size(train.batch_size, ranks)   # --batch-size is the global batch: it must split
    if main_rank:
        train_ids = encode_to_file(tokenizer, corpus.chunks("train"), out / TOKENS_FILE)
    else:  # the same ids, kept in memory: rank 0 alone writes into the run directory
        train_ids = encode_chunks(tokenizer, corpus.chunks("train"))
    eval_ids = encode_chunks(tokenizer, corpus.chunks("eval"))
    context = kind.context(config)
    _check_long_enough(train_ids, "training", context, data)
    _check_long_enough(eval_ids, "held-out", context, data)
    if device == "cpu":   # an absurd size is refused with its numbers, not found by the allocator
        check_fits(config, context, distributed.local_batch_size(train.batch_size, ranks), CLIError)
    tga.manual_seed(train.seed)
    model = kind.model_cls(config).to(device)
    opt = optim.AdamW(optim.param_groups_for_weight_decay(model, train.weight_decay), lr=train.lr,
                      betas=train.betas)
    sched = optim.WarmupCosine(opt, min(train.warmup_steps, train.steps), train.steps, train.min_lr_ratio)
    say = print if main_rank else (lambda *a: None)
    say(f"{kind.name}: {model.num_parameters():,} parameters, {config.tokenizer} tokenizer with "
        f"{tokenizer.vocab_size} tokens; {len(train_ids):,} training / {len(eval_ids):,} held-out tokens; "
        f"{train.steps} steps of {train.batch_size} on {device}" + (f", {ranks} ranks" if ranks > 1 else ""))
    batch_fn, parallel = kind.batch_fn(config, train, train_ids, tokenizer), None
    if ranks > 1:
        parallel = distributed.DataParallel(model)
        batch_fn = parallel.shard(batch_fn)
    trainer = Trainer(model, opt, batch_fn,
                      steps=train.steps, schedule=sched,
                      eval_fn=kind.eval_fn(_token_masking(config), train, eval_ids, tokenizer, train.eval_batches),
                      eval_every=train.eval_every, out_dir=out, grad_clip=train.grad_clip, seed=train.seed,
                      extra={"kind": kind.name, "model_config": config.to_dict(), "train_config": train.to_dict(),
                             "data": data_record(data), "tokenizer": tokenizer_record(tokenizer)},
                      desc=f"train {kind.name}", parallel=parallel)
    trainer.resume_command = resume_command(args.argv)
    try:
        trained = trainer.fit(resume=args.resume)
    except KeyboardInterrupt:
        return 130
    if not trained or not main_rank:
        return 0          # nothing to do, or a rank other than 0 (which alone reports)
    print(f"saved to {out} (checkpoint, {TOKENIZER_FILE}, {METRICS_FILE}) after {trainer.elapsed:.0f}s of training")
    if not args.no_sample:
        command = sorted(kind.commands)[0]
        print(f"--- {command} ({PROG} {command} --out {out}) ---\n"
              f"{kind.demo(model.eval(), tokenizer, data == SHAKESPEARE, train.seed)}")
    return 0


# ---------------------------------------------------------------- use a trained run

def _load_for(command: str, args):
    run = load_run(args.out, _check_device(args.device))
    if command not in KINDS[run.kind].commands:
        able = [name for name, kind in KINDS.items() if command in kind.commands]
        raise CLIError(f"{args.out} holds a {run.kind} run; `{command}` needs a run of kind {' or '.join(able)}")
    return run


def cmd_sample(args) -> int:
    run = _load_for("sample", args)
    prompt = _prompt(args.prompt, args.escapes)
    prompt_ids = run.tokenizer.encode(prompt)
    if not prompt_ids:
        raise CLIError("--prompt is empty; give at least one character")
    stream = TextStream(run.tokenizer)
    stream.write(prompt_ids)
    try:
        run.model.generate(prompt_ids, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                           top_p=args.top_p, seed=args.seed, use_cache=not args.no_cache,
                           on_token=lambda token: stream.write([token]))
    except KeyboardInterrupt:   # Ctrl-C: keep what was printed, end the line, no traceback
        stream.close()
        return 130
    stream.close()
    return 0


class TextStream:
    """Prints ids as text as they come. A byte-level BPE token can hold part of a character, so
    ids wait until they decode without a trailing replacement character (at most 4: one UTF-8 character)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.pending = tokenizer, []

    def write(self, ids) -> None:
        self.pending.extend(ids)
        text = self.tokenizer.decode(self.pending)
        if text.endswith("\ufffd") and len(self.pending) < 4:
            return
        self._emit(text)

    def close(self) -> None:
        self._emit(self.tokenizer.decode(self.pending) if self.pending else "")
        print(flush=True)

    def _emit(self, text: str) -> None:
        self.pending = []
        print(text, end="", flush=True)


def _prompt(text: str, escapes: bool) -> str:
    """--prompt as text: not valid UTF-8 (argv's undecodable bytes) is an error, and with --escapes
    only the escapes change (café stays café; the bytes of a non-Latin-1 character round-trip too)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CLIError("--prompt is not valid UTF-8; pass the text in UTF-8 (see `locale`)") from None
    if not escapes:
        return text
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as e:
        raise CLIError(f"--prompt has a bad escape at character {e.start}: {text[e.start:e.end + 2]!r}; "
                       rf"write \\ for a backslash") from None


def corpus_words(chunks, min_count: int = 25) -> set:
    """The words of the text (a string or chunks of it) seen at least `min_count` times, as BPE pre-tokenizes
    them (" king", "The"): what fill-mask may answer, so that a frequent fragment (" c", " s") is not offered."""
    counts = Counter()
    for chunk in [chunks] if isinstance(chunks, str) else chunks:
        pieces = WORD_PATTERN.findall(chunk)
        # a word without its space counts only at the start of a line: "t" of "don't" is not a word
        counts.update(w for prev, w in zip([""] + pieces, pieces)
                      if w.strip().isalpha() and (w[0] == " " or not prev or prev[-1].isspace()))
    return {w for w, n in counts.items() if n >= min_count}


def cmd_fill_mask(args) -> int:
    run = _load_for("fill-mask", args)
    if "[MASK]" not in args.text:
        raise CLIError(f"the text has no [MASK]: {args.text!r}")
    words = None
    if not args.all_tokens:
        words = corpus_words(load_corpus(data_source(run.extra, args.allow_data_change, warn)).chunks("train"))
    try:
        results = run.model.fill_mask(args.text, run.tokenizer, top_k=args.top_k, words_only=not args.all_tokens,
                                      words=words)
    except ValueError as e:
        raise CLIError(str(e)) from None
    print(format_fill_mask(results, args.text))
    return 0


def cmd_eval(args) -> int:
    run = load_run(args.out, _check_device(args.device))
    kind, config = KINDS[run.kind], _token_masking(run.model.config, args.whole_word_mask)
    train = TrainConfig.from_dict(run.extra["train_config"])
    data = args.data or data_source(run.extra, args.allow_data_change, warn)
    ids = encode_chunks(run.tokenizer, load_corpus(data).chunks("eval"))
    _check_long_enough(ids, "held-out", kind.context(config), data)
    _warn_if_unknown(ids, run.tokenizer, data)
    unigram_id = None
    if kind.unigram_baseline:
        unigram_id = most_frequent_token(encode_chunks(run.tokenizer, load_corpus(data).chunks("train")), run.tokenizer)
    with tga.no_grad():
        result = kind.eval_fn(config, train, ids, run.tokenizer, args.batches, unigram_id)(run.model)
    loss = result["eval_loss"] if isinstance(result, dict) else result
    print(f"{args.out}: held-out {kind.loss_label} loss {loss:.4f}, perplexity {math.exp(loss):.2f} "
          f"({'all' if args.batches is None else args.batches} batches of {train.batch_size}, "
          f"step {run.extra['trainer']['step']})")
    if unigram_id is not None:
        print(f"masked-token top-1 accuracy {100 * result['eval_acc']:.1f}%; unigram baseline (always "
              f"{run.tokenizer.id_to_token(unigram_id)!r}, the most frequent training token) "
              f"{100 * result['unigram_acc']:.1f}%")
    return 0


UNKNOWN_WARN_RATE = 0.05  # above this a loss or accuracy describes [UNK] more than the text


def _warn_if_unknown(ids, tokenizer, data: str) -> None:
    """Warn when many held-out tokens are [UNK]: predicting [UNK] is easy, so the numbers flatter the model."""
    unk = tokenizer.special_ids.get("[UNK]")
    if unk is None or len(ids) == 0:
        return
    rate = float((ids == unk).mean())
    if rate > UNKNOWN_WARN_RATE:
        warn(f"{100 * rate:.1f}% of the held-out tokens of {data} are [UNK] (text the tokenizer does not know); "
             f"the loss and accuracy below measure [UNK] more than the text")


def _token_masking(config, whole_words: bool = False):
    """The config held-out evaluation uses: every run measured with the same masking (token by token unless
    asked for whole words), whatever it was trained with."""
    if not hasattr(config, "whole_word_mask"):
        if whole_words:
            raise CLIError("--whole-word-mask is for mlm runs (nothing else is masked)")
        return config
    return config.replace(whole_word_mask=whole_words)


def most_frequent_token(ids, tokenizer) -> int:
    """The most frequent non-special token id in `ids`: the unigram baseline's only answer."""
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=tokenizer.vocab_size)
    counts[list(tokenizer.special_ids.values())] = 0
    return int(counts.argmax())


# ---------------------------------------------------------------- argument parsing

def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: `kind` within [low, high] (open ends where asked); the message gives the range."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        too_low = low is not None and (value < low or (low_open and value == low))
        too_high = high is not None and (value > high or (high_open and value == high))
        if too_low or too_high or value != value:
            lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(x for x in (lo, hi) if x)}, got {text}")
        return value
    return parse


POSITIVE = _number(int, 1)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end as one line, like every other error (main prints it)."""

    def error(self, message):
        raise CLIError(f"{message} (see {self.prog} --help)")


class _Help(argparse.RawDescriptionHelpFormatter):
    pass


def _device(parser):
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.split("\n")[0], formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"{PROG} {tga.__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    preset = "default: from --preset"

    t = sub.add_parser("train", help="train a gpt (causal decoder) or mlm (masked-LM encoder)", formatter_class=_Help)
    t.add_argument("model", choices=sorted(KINDS), help="the kind of model")
    t.add_argument("--preset", default="small", choices=sorted(PRESETS["mlm"]),
                   help="model size and training defaults; small takes a few minutes on a CPU, base wants a GPU, "
                        "study is the study examples' model, about a minute (default: %(default)s)")
    t.add_argument("--steps", type=POSITIVE, help=f"training steps ({preset}; with --resume: the new total)")
    t.add_argument("--batch-size", type=POSITIVE, help=f"sequences per step ({preset})")
    t.add_argument("--lr", type=_number(float, 0, 10, low_open=True), help=f"peak learning rate ({preset})")
    t.add_argument("--eval-every", type=POSITIVE, help=f"steps between held-out evaluations and checkpoints ({preset})")
    t.add_argument("--seed", type=_number(int, 0), help=f"seed of weights, batches and dropout ({preset})")
    t.add_argument("--dropout", type=_number(float, 0, 1, high_open=True), help=f"dropout probability ({preset})")
    t.add_argument("--d-model", type=POSITIVE, help=f"width of the model ({preset})")
    t.add_argument("--n-layers", type=POSITIVE, help=f"transformer blocks ({preset})")
    t.add_argument("--n-heads", type=POSITIVE, help=f"attention heads; must divide --d-model ({preset})")
    t.add_argument("--seq-len", type=_number(int, 3), help=f"context length in tokens ({preset})")
    t.add_argument("--tokenizer", choices=["char", "bpe"], help=f"characters or byte-level BPE ({preset})")
    t.add_argument("--vocab-size", type=_number(int, 256), help=f"BPE vocabulary size, with --tokenizer bpe ({preset})")
    t.add_argument("--whole-word-mask", action="store_true", help="mlm: mask every token of a chosen word together")
    t.add_argument("--data", help="a UTF-8 text file to train on (default: the bundled Shakespeare)")
    t.add_argument("--out", help="run directory (default: runs/gpt or runs/mlm)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--allow-data-change", action="store_true",
                   help="with --resume: go on although the --data file changed since the run began")
    t.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    t.add_argument("--no-sample", action="store_true", help="skip the demo printed at the end")
    _device(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate text from a trained gpt run", formatter_class=_Help)
    s.add_argument("--out", default="runs/gpt", help="run directory (default: %(default)s)")
    s.add_argument("--prompt", default="ROMEO.", help="text to continue (default: %(default)s)")
    s.add_argument("--escapes", action="store_true", help=r"interpret \n etc. in --prompt")
    s.add_argument("--max-new-tokens", type=POSITIVE, default=200, help="tokens to generate (default: %(default)s)")
    s.add_argument("--temperature", type=_number(float, 0), default=0.8,
                   help="0 picks the likeliest token, higher is more random (default: %(default)s)")
    s.add_argument("--top-k", type=POSITIVE, default=40, help="sample among the k likeliest tokens (default: %(default)s)")
    s.add_argument("--top-p", type=_number(float, 0, 1, low_open=True),
                   help="sample among the likeliest tokens holding this much probability (default: off)")
    s.add_argument("--seed", type=_number(int, 0), help="seed for repeatable samples (default: random)")
    s.add_argument("--no-cache", action="store_true", help="recompute the whole window for every token")
    _device(s)
    s.set_defaults(func=cmd_sample)

    f = sub.add_parser("fill-mask", help="top candidates for each [MASK] from a trained mlm run", formatter_class=_Help)
    f.add_argument("text", help="text with one or more [MASK]")
    f.add_argument("--out", default="runs/mlm", help="run directory (default: %(default)s)")
    f.add_argument("--top-k", type=POSITIVE, default=5, help="candidates per [MASK] (default: %(default)s)")
    f.add_argument("--all-tokens", action="store_true",
                   help="rank every token, not only whole words of the training text")
    f.add_argument("--allow-data-change", action="store_true",
                   help="read the training words although the run's data file changed since training")
    _device(f)
    f.set_defaults(func=cmd_fill_mask)

    e = sub.add_parser("eval", help="held-out loss and perplexity of a trained run", formatter_class=_Help)
    e.add_argument("--out", default="runs/gpt", help="run directory (default: %(default)s)")
    e.add_argument("--batches", type=POSITIVE, help="cap on eval batches (default: all held-out text)")
    e.add_argument("--data", help="evaluate on the held-out part of this file (default: the run's own data)")
    e.add_argument("--whole-word-mask", action="store_true",
                   help="mlm: mask whole words in the held-out batches (default: token by token)")
    e.add_argument("--allow-data-change", action="store_true",
                   help="evaluate although the run's data file changed since training")
    _device(e)
    e.set_defaults(func=cmd_eval)
    return p


DEBUG_ENV_VAR = "TINYGRAD_ATTN_DEBUG"   # =1: an internal error shows its traceback


def console() -> int:
    """The `tinygrad-attn` program: `main` in this process (the CPU backend sets its fast
    process settings at first use, so nothing needs to be set before Python starts)."""
    return main()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # every rank reports an error that all ranks raise together (rank 0 prints it); any
    # other error on a rank aborts all of them with its message, so that none waits forever
    report = print if distributed.launched_rank() == 0 else (lambda *a, **k: None)
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        with distributed.abort_on_error(distributed.world(), collective=(DistributedError, FloatingPointError)):
            return args.func(args)
    except BrokenPipeError:
        # the reader went away (`... | head`): no traceback; keep Python from failing again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno()) if _has_fileno(sys.stdout) else None
        return 0
    except FloatingPointError as e:   # the trainer's non-finite guard: not a usage mistake
        report(f"{PROG}: training stopped: {e}", file=sys.stderr)
        return 1
    except (CLIError, TinygradAttnError, FileNotFoundError) as e:
        report(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        report(f"{PROG}: error: out of memory; pick a smaller --batch-size, --d-model, --n-layers or --seq-len "
               f"(or --preset tiny)", file=sys.stderr)
        return 2
    except OSError as e:   # the disk is full, a path went away, a permission changed
        report(f"{PROG}: error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""), file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001  (the boundary: a bug of ours is one line and exit 1, not a traceback)
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        report(f"{PROG}: internal error: {type(e).__name__}: {e}. This is a bug in tinygrad-attn: please report it "
               f"with the command line (set {DEBUG_ENV_VAR}=1 to see the traceback)", file=sys.stderr)
        return 1


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
