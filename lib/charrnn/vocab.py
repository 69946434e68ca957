"""The vocabulary: sorted unique characters and their integer ids."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Vocabulary:
    """Maps characters to ids 0..K-1 in sorted (code point) order."""

    chars: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> "Vocabulary":
        """The sorted unique characters of `text`."""
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls(tuple(sorted(set(text))))

    def __post_init__(self):
        if len(set(self.chars)) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise ValueError("a vocabulary holds distinct single characters")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, ch: str) -> bool:
        return ch in self._index

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned integer type that holds every id."""
        return np.dtype(np.uint8 if len(self) <= 256 else np.uint16 if len(self) <= 65536 else np.uint32)

    def missing(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._index))

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text`, shape (len(text),), in the smallest integer type that fits K."""
        codes = np.array([ord(c) for c in self.chars], dtype=np.uint32)  # (K,), sorted
        out = np.empty(len(text), dtype=self.dtype)
        step = 1 << 18  # a quarter of a million characters at a time: a few MB of temporaries
        for start in range(0, len(text), step):
            chunk = np.frombuffer(text[start:start + step].encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            ids = np.searchsorted(codes, chunk).clip(0, len(codes) - 1)
            if not np.array_equal(codes[ids], chunk):
                bad = self.missing(text[start:start + step])
                raise ValueError(f"characters not in the vocabulary: {describe_chars(bad)}")
            out[start:start + step] = ids
        return out

    def decode(self, ids) -> str:
        """The text of a sequence of ids; IndexError names the first id outside 0..K-1 (a negative id
        would otherwise read a character from the end). A code-point lookup, the mirror of encode: about
        8 bytes of temporaries per character and no Python object per character."""
        ids = np.asarray(ids).ravel()
        if not ids.size:
            return ""
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got an array of {ids.dtype}")
        if ids.min() < 0 or ids.max() >= len(self.chars):
            bad = ids[(ids < 0) | (ids >= len(self.chars))][0]
            raise IndexError(f"id {bad} is outside the vocabulary's 0..{len(self.chars) - 1}")
        codes = np.array([ord(c) for c in self.chars], dtype=np.uint32)  # (K,)
        return codes[ids].tobytes().decode("utf-32-le", "surrogatepass")

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars) -> "Vocabulary":
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise ValueError("vocabulary must be a list of characters")
        if list(chars) != sorted(chars):
            raise ValueError("vocabulary is not sorted")
        return cls(tuple(chars))


def describe_chars(chars) -> str:
    """A readable list of characters, e.g. "'\\t' (U+0009), 'é' (U+00E9)"."""
    return ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars)
