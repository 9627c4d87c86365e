"""Does the test suite catch plausible bugs? Inject each mutation, run pytest, restore the file.

    python scripts/mutation_check.py                       # the own set, against the whole suite
    python scripts/mutation_check.py --set issue23 -- tests/test_parameter_space.py
    python scripts/mutation_check.py --only topk-largest   # one mutation by name

A mutation is an exact string replacement in one library file (the original must occur
exactly once). The file is always put back (try/finally), and the script refuses to start
on a file with uncommitted changes, so an interrupted run cannot leave a bug behind
unnoticed: `git diff` shows it. Mutations run one after another, never in parallel.
A mutation is "caught" when pytest exits with failures (exit code 1); any other exit code
(an error collecting tests, an interrupted run) is reported as such, not as caught. The same
pytest run goes first without any mutation (skip it with --no-baseline): a test that fails
anyway would make every mutation look caught.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str          # relative to the checkout's root
    original: str      # must occur exactly once in the file
    mutated: str
    why: str           # the bug a user would meet


# The 10 bugs that issue 23 found the suite missing (each now has a test that catches it).
ISSUE23 = [
    # logcumsumexp now combines pairs by logaddexp (no shift left to get wrong): the same kind of bug
    # is one shift for the whole row again, which underflows entries far below the row's max
    Mutation("logcumsumexp-global-shift", "tinygrad_attn/functional/scans.py",
             "y = cat([y[along(0, shift)], logaddexp(y[along(shift, n)], y[along(0, n - shift)])], ax)",
             "y = cat([y[along(0, shift)], log(exp(y[along(shift, n)] - x.data.max()) + "
             "exp(y[along(0, n - shift)] - x.data.max())) + x.data.max()], ax)",
             "logcumsumexp shifted by the global max: small rows underflow to -inf"),
    Mutation("smooth-l1-beta-linear", "tinygrad_attn/functional/losses.py",
             "d * d * (0.5 / beta), a - 0.5 * beta)", "d * d * (0.5 / beta), a - 0.5)",
             "smooth_l1 ignores beta in its linear branch"),
    Mutation("topk-largest", "tinygrad_attn/functional/scans.py",
             "idx = argsort(x, ax, descending=largest).data", "idx = argsort(x, ax, descending=True).data",
             "topk ignores largest=False"),
    Mutation("einsum-inverse-permutation", "tinygrad_attn/functional/einsum.py",
             "x.permute(*[term.index(c) for c in output])", "x.permute(*[output.index(c) for c in term])",
             "einsum's final permutation inverted (same for swaps, wrong for 3-cycles)"),
    Mutation("sort-unstable", "tinygrad_attn/functional/scans.py",
             'return _index_tensor(x, xp.argsort(x.data, axis=ax, kind="stable"))',
             'return _index_tensor(x, xp.argsort(x.data, axis=ax, kind="quicksort"))',
             "ascending sort/argsort not stable on ties"),
    Mutation("clip-float16-unwidened", "tinygrad_attn/optim.py",
             "if g.dtype.itemsize < 4:  # float16 squares overflow", "if False:  # float16 squares overflow",
             "clip_grad_norm_ squares float16 gradients in float16: inf norm, every gradient zeroed"),
    Mutation("checkpoint-layer-count", "models/run.py",
             "if len(layers) != config.n_layers:", "if len(layers) < config.n_layers:",
             "a checkpoint whose n_layers was lowered is accepted"),
    Mutation("checkpoint-unsigned-meta", "tinygrad_attn/checkpoint.py",
             'if meta.get("meta_sha256") != _sha256(_canonical(body)):',
             'if "meta_sha256" in meta and meta["meta_sha256"] != _sha256(_canonical(body)):',
             "a checkpoint.json without meta_sha256 (and an edited extra) is accepted"),
    Mutation("config-accepts-nan", "models/config.py",
             "if v != v or v < low or v > high", "if v < low or v > high",
             "config checks accept NaN (dropout=nan, lr=nan)"),
    Mutation("buckets-drop-last-single", "tinygrad_attn/distributed/buckets.py",
             "        if group:\n            self._add_bucket(group)",
             "        if len(group) > 1:\n            self._add_bucket(group)",
             "data-parallel bucketing drops a final one-parameter group"),
]

# Bugs of our own, in code issue 23 did not touch (part 5 of the issue).
OWN = [
    Mutation("schedule-warmup-off-by-one", "tinygrad_attn/optim.py",
             "return step / self.warmup_steps", "return (step + 1) / self.warmup_steps",
             "warm-up starts one step late: lr at step 0 is base/warmup, the peak comes a step early"),
    Mutation("adam-eps-unscaled", "tinygrad_attn/optim.py",
             "scratch += eps * root", "scratch += eps",
             "Adam adds eps to sqrt(v) instead of sqrt(v_hat): steps of tiny gradients come out wrong"),
    Mutation("autograd-first-sum-in-place", "tinygrad_attn/autograd.py",
             "            self.grads[key] = previous + g\n            self.owned.add(key)\n            return",
             "            previous += g\n            self.grads[key] = previous\n            self.owned.add(key)\n"
             "            return",
             "a tensor used twice sums its gradients into an array another tensor's gradient shares"),
    Mutation("dropout-scale-multiplied", "tinygrad_attn/functional/nn.py",
             "return (keep * (1.0 / (1.0 - p))).astype(like.dtype)", "return (keep * (1.0 - p)).astype(like.dtype)",
             "dropout scales the kept activations by (1-p) instead of 1/(1-p)"),
    Mutation("mlm-random-share", "tinygrad_attn/batching.py",
             "to_random = chosen & (action >= 0.8) & (action < 0.9)",
             "to_random = chosen & (action >= 0.8) & (action < 0.95)",
             "MLM masking replaces 15% of the chosen tokens by random ones and keeps 5% (not 10/10)"),
    Mutation("bpe-latest-merge-first", "tinygrad_attn/tokenizers.py",
             "best = min((r for r in ranked if r[0] is not None), default=None)",
             "best = max((r for r in ranked if r[0] is not None), default=None)",
             "BPE encode applies the latest-learned merge first, not the earliest: other tokens than training"),
    Mutation("eval-windows-overlap", "tinygrad_attn/batching.py",
             "starts = np.arange(n_windows) * seq_len", "starts = np.arange(n_windows) * (seq_len - 1)",
             "held-out windows overlap by one token: some targets counted twice, the corpus end never"),
    Mutation("key-padding-on-queries", "tinygrad_attn/nn/attention.py",
             "mask = kpm[:, None, None, :]", "mask = kpm[:, None, :, None]",
             "key_padding_mask hides padded queries instead of padded keys"),
    Mutation("layernorm-eps-outside-root", "tinygrad_attn/backend/array_kernels.py",
             "        var += eps\n        rstd = 1.0 / xp.sqrt(var)",
             "        rstd = 1.0 / (xp.sqrt(var) + eps)",
             "LayerNorm adds eps to the standard deviation instead of the variance"),
    Mutation("generate-window-jumps-early", "models/decoder.py",
             "if length - start <= window:", "if length - start < window:",
             "generate slides its window one token early: the full context is never used"),
]

# A second round of our own, aimed at what the first round's 10-of-10 suggests the suite may not
# look at: edges of ranges, modes left behind, guards of rare failures.
OWN2 = [
    Mutation("mlm-window-never-reaches-end", "tinygrad_attn/batching.py",
             "starts = rng.integers(0, len(ids) - body + 1, size=batch_size)",
             "starts = rng.integers(0, len(ids) - body, size=batch_size)",
             "MLM batches never draw the corpus's last window (off by one)"),
    Mutation("mlm-sep-hidden", "tinygrad_attn/batching.py",
             "attention_mask = positions[None, :] < (lengths[:, None] + 2)",
             "attention_mask = positions[None, :] < (lengths[:, None] + 1)",
             "MLM attention_mask hides each row's [SEP] as if it were padding"),
    Mutation("forced-mask-may-pick-specials", "tinygrad_attn/batching.py",
             "scores = np.where(maskable, rng.random(ids.shape), -1.0)", "scores = rng.random(ids.shape)",
             "a row that drew no target gets one at any position, [CLS]/[SEP]/padding included"),
    Mutation("tied-head-decays", "tinygrad_attn/optim.py",
             "(decay if id(p) in linear and id(p) not in embedding else no_decay)",
             "(decay if id(p) in linear else no_decay)",
             "a weight tied between the embedding and the output head gets weight decay"),
    Mutation("sgd-momentum-as-average", "tinygrad_attn/optim.py",
             'buf = state["momentum_buffer"] = g.copy()', 'buf = state["momentum_buffer"] = (1 - mu) * g',
             "SGD's first momentum buffer is (1 - momentum) g, as if it were an average"),
    Mutation("trainer-inf-gradient-passes", "tinygrad_attn/train.py",
             "if not math.isfinite(grad_norm):", "if math.isnan(grad_norm):",
             "the trainer's guard lets an infinite gradient norm through to the update"),
    Mutation("generate-leaves-model-training", "models/decoder.py",
             "self.train(was_training)", "self.train(True)",
             "generate on a model in eval mode leaves it in training mode (dropout on afterwards)"),
    Mutation("eval-mode-not-recursive", "tinygrad_attn/nn/module.py",
             "for m in self.modules():\n            object.__setattr__(m, \"training\", bool(mode))",
             "for m in (self,):\n            object.__setattr__(m, \"training\", bool(mode))",
             "model.eval() switches the top module only: dropout inside blocks stays on"),
    Mutation("checkpoint-dtype-unchecked", "tinygrad_attn/checkpoint.py",
             "    _check_dtypes(directory, arrays, model)\n\n    optim_state = None",
             "\n    optim_state = None",
             "loading integer tensors into float parameters is not refused"),
    Mutation("char-decode-skips-one-more", "tinygrad_attn/tokenizers.py",
             "if not (skip_specials and i < len(self.specials)):",
             "if not (skip_specials and i <= len(self.specials)):",
             "CharTokenizer.decode(skip_specials=True) also drops the first ordinary character"),
]

SETS = {"own": OWN, "own2": OWN2, "issue23": ISSUE23}


def _dirty(file: Path) -> bool:
    r = subprocess.run(["git", "status", "--porcelain", "--", str(file)], cwd=ROOT, capture_output=True, text=True)
    return bool(r.stdout.strip())


def _pytest(pytest_args: list[str]):
    env = {**os.environ, "CI": "true"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", *pytest_args],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    failed = [line.split(" ")[1] for line in r.stdout.splitlines() if line.startswith("FAILED ")]
    return r.returncode, failed[0] if failed else None


def run_one(m: Mutation, pytest_args: list[str]) -> tuple[str, float]:
    path = ROOT / m.file
    text = path.read_text()
    if text.count(m.original) != 1:
        return f"NOT APPLIED (original found {text.count(m.original)} times)", 0.0
    t0 = time.perf_counter()
    try:
        path.write_text(text.replace(m.original, m.mutated))
        code, first_failure = _pytest(pytest_args)
    finally:
        path.write_text(text)
    verdict = {0: "not caught", 1: "caught"}.get(code, f"pytest exit {code}")
    if code == 1 and first_failure:
        verdict += f" by {first_failure}"
    return verdict, time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="own")
    parser.add_argument("--only", action="append", default=[], help="run only the mutation(s) of this name")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run that goes first")
    parser.add_argument("pytest_args", nargs="*", help="after --: what pytest runs (default: the whole suite)")
    args = parser.parse_args(argv)
    mutations = [m for m in SETS[args.set] if not args.only or m.name in args.only]
    if args.list:
        for m in mutations:
            print(f"{m.name:30s} {m.file:40s} {m.why}")
        return 0
    dirty = sorted({m.file for m in mutations if _dirty(ROOT / m.file)})
    if dirty:
        print(f"refusing to mutate files with uncommitted changes: {', '.join(dirty)}", file=sys.stderr)
        return 2
    if not args.no_baseline:
        code, first_failure = _pytest(args.pytest_args)
        if code != 0:
            print(f"the unmutated run fails (pytest exit {code}, first: {first_failure}); fix that first",
                  file=sys.stderr)
            return 2
    rows = []
    for m in mutations:
        verdict, seconds = run_one(m, args.pytest_args)
        rows.append((m, verdict, seconds))
        print(f"{m.name:30s} {verdict}  ({seconds:.0f} s)", flush=True)
    caught = sum(v.startswith("caught") for _, v, _ in rows)
    print(f"\n| mutation | file | bug | result |\n|---|---|---|---|")
    for m, verdict, _ in rows:
        print(f"| {m.name} | {m.file} | {m.why} | {verdict} |")
    print(f"\ncaught {caught} of {len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
