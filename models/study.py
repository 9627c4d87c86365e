"""The model the study examples look at: a trained run (`--run DIR`), one trained on the spot, or untrained weights.

    study = study_model(args.run, out="runs/study", random=args.random, quick=args.quick)
    study.model, study.tokenizer, study.kind     # "mlm" or "gpt"
    print(study.label)                           # what the weights are: every claim about them depends on it

Without a run, the `study` preset (d_model 64, 4 heads, 2 layers, BPE-512) is trained into
`out`, about a minute on 2 CPU cores (`quick`: a few seconds, which learns little), and
loaded from there next time. `random` gives the same architecture with untrained weights.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import tinygrad_attn as tga
from tinygrad_attn import checkpoint
from tinygrad_attn.errors import TinygradAttnError
from tinygrad_attn.tokenizers import build_tokenizer
from tinygrad_attn.train import CHECKPOINT_DIR, read_metrics

from .cli import load_corpus
from .config import get_preset
from .kinds import KINDS
from .run import SHAKESPEARE, load_run

QUICK_STEPS = 30


@dataclass
class StudyModel:
    kind: str
    model: object
    tokenizer: object
    label: str
    trained: bool


def _last_eval_loss(run: Path):
    evals = [r["eval_loss"] for r in read_metrics(run) if isinstance(r.get("eval_loss"), (int, float))]
    return evals[-1] if evals else None


def _load(run: Path, kind: str | None) -> StudyModel:
    try:
        found, model, tokenizer, extra = load_run(run)
    except TinygradAttnError as e:
        raise SystemExit(f"--run {run}: {e}") from None
    if kind is not None and found != kind:
        raise SystemExit(f"--run {run} holds a {found} run; this example needs a {kind} run "
                         f"(tinygrad-attn train {kind})")
    step = extra.get("trainer", {}).get("step", "?")
    loss = _last_eval_loss(run)
    loss = "" if loss is None else f", held-out loss {loss:.3f}"
    return StudyModel(found, model, tokenizer, f"TRAINED weights: {found} run {run} (step {step}{loss})", True)


def _untrained(kind: str, base: StudyModel | None, seed: int) -> StudyModel:
    """The architecture of `base` (or of the study preset) with fresh random weights."""
    if base is not None:
        kind, config, tokenizer = base.kind, base.model.config, base.tokenizer
    else:
        config = get_preset(kind, "study").model
        tokenizer = build_tokenizer(config.tokenizer, load_corpus(SHAKESPEARE).chunks("train"), config.bpe_vocab_size,
                                    KINDS[kind].specials(config))
        KINDS[kind].fit_tokenizer(config, tokenizer)
    tga.manual_seed(seed)
    model = KINDS[kind].model_cls(config).eval()
    return StudyModel(kind, model, tokenizer, f"UNTRAINED weights (random init, seed {seed}): what attention looks "
                                              "like before any learning; nothing here is learned", False)


def study_model(run=None, out="runs/study", random: bool = False, quick: bool = False, kind: str = "mlm",
                steps: int | None = None, seed: int = 0, any_kind: bool = False) -> StudyModel:
    """A trained run, or one trained on the spot into `out` (reused next time), or untrained weights.

    `kind` is what is trained without a run; a run must hold that kind too, unless `any_kind`.
    """
    if run is not None:
        loaded = _load(Path(run), None if random or any_kind else kind)
        return _untrained(kind, loaded, seed) if random else loaded
    if random:
        return _untrained(kind, None, seed)
    out = Path(out)
    if not checkpoint.exists(out / CHECKPOINT_DIR):
        steps = steps or (QUICK_STEPS if quick else get_preset(kind, "study").train.steps)
        print(f"no --run given: training a small {kind} here ({steps} steps of the `study` preset"
              f"{'; --quick: too few to learn much' if quick else ', about a minute on 2 CPU cores'}) into {out}; "
              f"later runs load it, or pass --run DIR of a `tinygrad-attn train {kind}` run")
        # in a process of its own, as the command line: training opts into process settings (host memory)
        status = subprocess.run([sys.executable, "-m", "tinygrad_attn.models.cli", "train", kind, "--preset", "study",
                                 "--steps", str(steps), "--eval-every", str(steps), "--seed", str(seed),
                                 "--out", str(out), "--no-sample"]).returncode
        if status:
            raise SystemExit(f"training failed (exit status {status}); see the message above")
    else:
        print(f"loading the {kind} trained earlier in {out}")
    return _load(out, kind)
