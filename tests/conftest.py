"""Shared fixtures: small texts made here, never the course corpus."""
import numpy as np
import pytest

WORDS = ("the of and to a in that is was he for it with as his on be at by had are but from or have an they "
         "which one you were her all she there would their we him been has when who will more no if out so said "
         "what up its about into than them can only other new some could time these two may then do first any my "
         "now such like our over man me even most made after also did many before must through back years where "
         "much your way well down should because each just those people Mr how too little state good very make "
         "world still own see men work long get here between both life being under never day same another know").split()


def make_text(n_chars: int, seed: int = 0) -> str:
    """Pseudo-English: seeded random words, punctuation and line breaks, about n_chars long."""
    rng = np.random.default_rng(seed)
    out, size = [], 0
    while size < n_chars:
        w = WORDS[rng.integers(len(WORDS))]
        if rng.random() < 0.08:
            w = w.capitalize()
        r = rng.random()
        w += "." if r < 0.06 else "," if r < 0.12 else ""
        sep = "\n" if rng.random() < 0.07 else " "
        out.append(w + sep)
        size += len(w) + 1
    return "".join(out)[:n_chars]


@pytest.fixture(scope="session")
def text_small():
    return make_text(3_000, seed=1)


@pytest.fixture(scope="session")
def text_medium():
    return make_text(130_000, seed=2)


@pytest.fixture
def corpus_file(tmp_path, text_small):
    p = tmp_path / "corpus.txt"
    p.write_text(text_small, encoding="utf-8")
    return p
