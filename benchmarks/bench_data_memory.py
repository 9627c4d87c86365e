"""Peak memory of turning a large --data file into training ids: streamed (what the CLI does) vs whole.

    python benchmarks/bench_data_memory.py --mb 200                  # char and bpe, streamed
    python benchmarks/bench_data_memory.py --mb 50 --method whole    # the old path, for comparison

Each measurement runs in a fresh process: build a file of `--mb` MB from the bundled plays,
train the tokenizer on its training part, encode it, draw 100 batches, and report the
process's peak resident set size (ru_maxrss) next to the file size.
"""
import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r'''
import resource, sys, time
import numpy as np
from tinygrad_attn.batching import lm_batches
from tinygrad_attn.tokenizers import build_tokenizer
path, kind, method, out = sys.argv[1:5]
t0 = time.perf_counter()
specials = ("[UNK]",) if kind == "char" else ()
if method == "stream":
    from tinygrad_attn.data.stream import TextFile, encode_chunks, encode_to_file
    text = TextFile(path)
    tok = build_tokenizer(kind, text.chunks("train"), 512, specials)
    ids = encode_to_file(tok, text.chunks("train"), out)
    held_out = encode_chunks(tok, text.chunks("eval"))
else:
    from tinygrad_attn.data import load_text_file, split_text
    train, evaluation = split_text(load_text_file(path))
    tok = build_tokenizer(kind, train, 512, specials)
    ids = np.asarray(tok.encode(train), dtype=np.int64)
    held_out = np.asarray(tok.encode(evaluation), dtype=np.int64)
rng = np.random.default_rng(0)
for _ in range(100):
    lm_batches(ids, 32, 128, rng)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(f"{peak} {len(ids)} {time.perf_counter() - t0:.1f}")
'''


def make_file(path, megabytes):
    from tinygrad_attn.data import corpus_splits, load_shakespeare
    block = corpus_splits(load_shakespeare())[0].encode("utf-8")
    with open(path, "wb") as f:
        left = megabytes * 1_000_000
        while left > 0:
            f.write(block[:left])
            left -= len(block[:left])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the data file in MB (default: 200)")
    parser.add_argument("--method", choices=["stream", "whole"], default="stream", help="default: stream")
    parser.add_argument("--tokenizers", default="char,bpe", help="default: char,bpe")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.txt")
        make_file(data, args.mb)
        size = os.path.getsize(data)
        for kind in args.tokenizers.split(","):
            r = subprocess.run([sys.executable, "-c", CHILD, data, kind, args.method, os.path.join(tmp, "ids.bin")],
                               capture_output=True, text=True)
            if r.returncode:
                print(f"{kind}: failed\n{r.stderr[-2000:]}")
                continue
            peak, n_ids, seconds = r.stdout.split()
            print(f"{args.method:6} {kind:4} file {size / 1e6:6.0f} MB  ids {int(n_ids):>11,}  peak RSS "
                  f"{int(peak) / 1e6:7.0f} MB = {int(peak) / size:4.2f}x the file  ({seconds} s)")


if __name__ == "__main__":
    main()
