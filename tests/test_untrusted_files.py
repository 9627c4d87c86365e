"""Readers of files a user or an attacker can change: JSON nested 200,000 deep, FIFOs, devices
and directories where files should be, links planted at temporary names, UTF-16 and binary
text. Each ends in the project's own error naming the file, quickly, without a hang."""
import json
import os
import stat
import threading
import time

import pytest
from hypothesis import given, strategies as st

from tinygrad_attn import CheckpointError, DataError, TokenizerError, checkpoint, nn
from tinygrad_attn.data import load_text_file
from tinygrad_attn.data.stream import TextFile, encode_to_file
from tinygrad_attn.errors import TinygradAttnError, UnsafeFileError
from tinygrad_attn.files import atomic_write, read_regular
from tinygrad_attn.run_dir import hold_run, keep_metrics_through, read_metrics
from tinygrad_attn.safe_json import json_depth, loads_json
from tinygrad_attn.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

DEEP = b"[" * 200_000 + b"]" * 200_000
fifo_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")


def finishes(call, seconds=10.0):
    """call() in a thread; its result or exception, and a failure if it is still running after `seconds`."""
    box = {}

    def run():
        try:
            box["value"] = call()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s (a hang)"
    if "error" in box:
        raise box["error"]
    return box["value"]


def tiny():
    return nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))


# ---------------------------------------------------------------- JSON: size and depth first

def _depth(value):
    """Nesting depth by recursion over the parsed value: the independent formula json_depth must match."""
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.text(alphabet='[]{}"\\x', max_size=3), inner, max_size=3), max_leaves=12)


@given(json_values)
def test_json_depth_counts_only_brackets_outside_strings(value):
    assert json_depth(json.dumps(value).encode()) == _depth(value)


def test_json_200000_deep_is_refused_without_recursion_in_a_few_milliseconds():
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="200,000 levels deep"):
        loads_json(DEEP, "x.json", CheckpointError)
    assert time.perf_counter() - start < 1.0
    assert loads_json(b"[" * 64 + b"]" * 64, "x.json") == json.loads("[" * 64 + "]" * 64)


def test_json_over_the_size_limit_is_refused_before_parsing():
    with pytest.raises(UnsafeFileError, match="1,001 bytes, more than the 1,000"):
        loads_json(b" " * 1001, "x.json", max_bytes=1000)
    with pytest.raises(UnsafeFileError, match="not valid JSON"):
        loads_json(b'{"a": ', "x.json")
    with pytest.raises(UnsafeFileError, match="not UTF-8"):
        loads_json(b'"\xff"', "x.json")


def test_deep_json_in_a_tokenizer_file_is_a_tokenizer_error(tmp_path):
    (tmp_path / "tokenizer.json").write_bytes(DEEP)
    with pytest.raises(TokenizerError, match="levels deep"):
        load_tokenizer(tmp_path / "tokenizer.json")


def test_deep_json_in_checkpoint_json_is_a_checkpoint_error(tmp_path):
    checkpoint.save(tmp_path / "ck", tiny(), extra={"step": 1})
    (tmp_path / "ck" / "checkpoint.json").write_bytes(b'{"extra": ' + DEEP + b"}")
    with pytest.raises(CheckpointError, match="levels deep"):
        checkpoint.read_extra(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="levels deep"):
        checkpoint.load(tmp_path / "ck", tiny())


def test_a_deep_metrics_line_is_skipped_with_a_warning_and_the_rest_kept(tmp_path):
    (tmp_path / "metrics.jsonl").write_bytes(b'{"step": 1}\n' + DEEP + b'\n{"step": 2}\n')
    with pytest.warns(UserWarning, match="line 2"):
        assert read_metrics(tmp_path) == [{"step": 1}, {"step": 2}]
    with pytest.warns(UserWarning, match="line 2"):
        keep_metrics_through(tmp_path, 5)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'


# ---------------------------------------------------------------- only regular files

@fifo_only
def test_a_fifo_as_tokenizer_json_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "tokenizer.json")
    with pytest.raises(TokenizerError, match=r"tokenizer\.json is a FIFO \(named pipe\); expected a regular file"):
        finishes(lambda: load_tokenizer(tmp_path / "tokenizer.json"))


@fifo_only
def test_a_fifo_as_checkpoint_json_is_refused_without_hanging(tmp_path):
    checkpoint.save(tmp_path / "ck", tiny())
    os.unlink(tmp_path / "ck" / "checkpoint.json")
    os.mkfifo(tmp_path / "ck" / "checkpoint.json")
    with pytest.raises(CheckpointError, match="is a FIFO"):
        finishes(lambda: checkpoint.read_extra(tmp_path / "ck"))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this platform")
@pytest.mark.parametrize("reader", [load_text_file, TextFile], ids=["load_text_file", "TextFile"])
def test_a_device_as_data_is_named_as_a_device(reader):
    with pytest.raises(DataError, match="/dev/zero is a character device; expected a regular file"):
        finishes(lambda: reader("/dev/zero"))


def test_a_missing_data_file_is_still_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_text_file(tmp_path / "absent.txt")


def test_a_directory_where_metrics_jsonl_should_be_is_a_clear_error(tmp_path):
    (tmp_path / "metrics.jsonl").mkdir()
    with pytest.raises(UnsafeFileError, match="metrics.jsonl is a directory; expected a regular file"):
        read_metrics(tmp_path)
    with pytest.raises(UnsafeFileError, match="is a directory"):
        keep_metrics_through(tmp_path, 3)


def test_a_directory_where_the_lock_should_be_is_a_clear_error(tmp_path):
    (tmp_path / ".lock").mkdir()
    with pytest.raises(UnsafeFileError, match=r"\.lock is a directory; expected a regular file"):
        with hold_run(tmp_path):
            pass


def test_a_lock_planted_as_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    with pytest.raises(UnsafeFileError, match="is a symlink"):
        with hold_run(run):
            pass
    assert victim.read_text() == "keep me"


def test_read_regular_refuses_a_file_larger_than_its_limit_before_reading(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(8 << 30)                  # 8 GB, sparse: reading it would take minutes
    start = time.perf_counter()
    with pytest.raises(UnsafeFileError, match="8,589,934,592 bytes, more than the 1,024"):
        read_regular(big, "file", max_bytes=1024)
    assert time.perf_counter() - start < 1.0


# ---------------------------------------------------------------- atomic writes

def test_a_symlink_planted_at_the_old_temporary_name_does_not_redirect_the_tokenizer(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "tokenizer.json.tmp").symlink_to(victim)
    tok = CharTokenizer.train("hello world", specials=("[UNK]",))
    tok.save(tmp_path / "tokenizer.json")
    assert victim.read_text() == "keep me"
    assert load_tokenizer(tmp_path / "tokenizer.json").to_dict() == tok.to_dict()
    assert not stat.S_ISLNK(os.lstat(tmp_path / "tokenizer.json").st_mode)


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    class Unwritable:
        pass
    with pytest.raises(TypeError):
        atomic_write(target, Unwritable())
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    atomic_write(target, "new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_an_atomic_write_gives_the_usual_permissions(tmp_path):
    atomic_write(tmp_path / "f", b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o644 & ~umask


def test_the_token_file_is_written_atomically_and_leaves_no_temporary(tmp_path):
    tok = CharTokenizer.train("abc abc")
    ids = encode_to_file(tok, ["abc ", "cab"], tmp_path / "tokens" / "train.u16")
    assert tok.decode(list(ids)) == "abc cab"
    assert [p.name for p in (tmp_path / "tokens").iterdir()] == ["train.u16"]


# ---------------------------------------------------------------- UTF-16 and binary text

@pytest.mark.parametrize("encoding, why", [
    ("utf-16", "UTF-16 text .*byte-order mark FF FE"), ("utf-32", "UTF-32 text"),
    ("utf-16-le", r"looks like UTF-16 \(LE, no byte-order mark\)"),
    ("utf-16-be", r"looks like UTF-16 \(BE, no byte-order mark\)")])
@pytest.mark.parametrize("reader", [load_text_file, TextFile], ids=["load_text_file", "TextFile"])
def test_utf16_and_utf32_text_are_named_with_the_way_to_convert(tmp_path, reader, encoding, why):
    (tmp_path / "t.txt").write_bytes("To be, or not to be: that is the question.\n".encode(encoding))
    with pytest.raises(DataError, match=why) as info:
        reader(tmp_path / "t.txt")
    assert "iconv" in str(info.value) or "binary" in str(info.value)


@pytest.mark.parametrize("reader", [load_text_file, TextFile], ids=["load_text_file", "TextFile"])
def test_binary_data_and_bad_utf8_name_the_byte_offset(tmp_path, reader):
    (tmp_path / "b.bin").write_bytes(b"some text here " * 10 + b"\x00\x01\x02\x03")
    with pytest.raises(DataError, match="NUL byte at byte 150: it is binary data"):
        reader(tmp_path / "b.bin")
    (tmp_path / "l.txt").write_bytes("caf\u00e9 ".encode() * 3 + "caf\u00e9".encode("latin1"))
    with pytest.raises(DataError, match="byte 21 is 0xe9"):
        reader(tmp_path / "l.txt")


@given(st.text(alphabet="a \u00e9\u4e2d\U0001f600", min_size=1, max_size=40), st.integers(1, 9))
def test_text_split_into_tiny_blocks_reads_back_whole_and_bad_bytes_are_found_at_their_offset(tmp_path_factory, text,
                                                                                               block):
    from tinygrad_attn.data.text import read_text_chunks
    path = tmp_path_factory.mktemp("t") / "t.txt"
    path.write_bytes(text.encode())
    assert "".join(read_text_chunks(path, block)) == text
    path.write_bytes(text.encode() + b"\xff" + b"tail")
    with pytest.raises(DataError, match=f"byte {len(text.encode()):,} is 0xff"):
        "".join(read_text_chunks(path, block))


def test_every_error_here_is_the_projects_own():
    for error in (UnsafeFileError, CheckpointError, TokenizerError, DataError):
        assert issubclass(error, TinygradAttnError)
    assert issubclass(UnsafeFileError, OSError)


def test_a_tokenizer_of_chained_merges_is_refused_from_its_counts_before_any_merge_is_built(tmp_path, monkeypatch):
    import json
    from tinygrad_attn import tokenizers
    from tinygrad_attn.errors import TokenizerError
    path = tmp_path / "tokenizer.json"
    chained = [[256 + i - 1 if i else 97, 98] for i in range(100_000)]   # each token the last one plus a byte
    path.write_text(json.dumps({"type": "bpe", "specials": [], "merges": chained}))
    built = []
    real = tokenizers.BPETokenizer.__init__
    monkeypatch.setattr(tokenizers.BPETokenizer, "__init__", lambda self, *a, **k: built.append(1) or real(self, *a, **k))
    with pytest.raises(TokenizerError, match="100,256 tokens, and the model was trained with 300"):
        tokenizers.load_tokenizer(path, vocab_size=300)
    assert built == []          # refused from the counts: no tokenizer was constructed
    with pytest.raises(TokenizerError, match="more than the 1,024"):   # without a size to compare: the lengths
        tokenizers.load_tokenizer(path)
