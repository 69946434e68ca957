"""Is generated text language? Scores for every passage the report prints, and the gate.

A word is a whitespace-separated token with the punctuation at its edges
stripped, lower-cased. A passage's score is the share of its words that occur
in the corpus, each word counted by its length in characters, so that a few
short real words cannot lift a passage of long garbage (a stuck model writing
"The k131111111..." scores near 0, not 1/2). Measured on the default corpus
(1,000 characters): an untrained network 0.000-0.001, letters drawn at random
with the corpus's frequencies 0.02-0.05, the assignment run's best model at
temperature 1 0.37-0.46, at temperature 1.5 0.13-0.15.
"""
from __future__ import annotations

EDGE = "\"'.,;:!?()[]{}<>-_*`~\u2014\u2013\u2018\u2019\u201c\u201d"
# The gate on a report's final passage (temperature 1): well below what a trained model writes (above),
# well above what noise scores.
MIN_PASSAGE_SCORE = 0.15


class PassageCheckError(ValueError):
    """A passage the report was about to print scores as noise."""


def words(text: str) -> list[str]:
    """The lower-cased words of text: whitespace-separated tokens without the punctuation at their edges."""
    out = []
    for token in text.split():
        w = token.strip(EDGE).lower()
        if w:
            out.append(w)
    return out


def corpus_words(corpus) -> set:
    """The set of words of a Corpus (or a str)."""
    text = corpus if isinstance(corpus, str) else corpus.vocab.decode(corpus.ids)
    return set(words(text))


def word_score(text: str, known: set) -> float:
    """The share of text's words (by characters) that occur in known, in [0, 1]; 0 for no words."""
    ws = words(text)
    total = sum(map(len, ws))
    return sum(len(w) for w in ws if w in known) / total if total else 0.0


def scores(text: str, known: set, loss: float) -> str:
    """The two numbers the report prints beside a passage: 'words 0.44, loss 1.77' (word_score, and the model's
    own mean -log p per character of the text, in nats)."""
    return f"words {word_score(text, known):.2f}, loss {loss:.2f}"


def word_stats(text: str, known: set) -> dict:
    """{"words", "distinct", "distinct_fraction", "in_corpus" (share of words, each counted once per
    occurrence), "score" (word_score)} of a generated text."""
    ws = words(text)
    n = len(ws)
    return {"words": n, "distinct": len(set(ws)), "distinct_fraction": len(set(ws)) / n if n else 0.0,
            "in_corpus": sum(w in known for w in ws) / n if n else 0.0, "score": word_score(text, known)}


def check_passage(what: str, text: str, known: set, threshold: float = MIN_PASSAGE_SCORE) -> float:
    """The passage's score; PassageCheckError (one line naming what and the figure) below threshold."""
    score = word_score(text, known)
    if score < threshold:
        preview = text[:40].replace("\n", "\\n")
        raise PassageCheckError(
            f"{what} writes noise: its passage scores {score:.3f} (share of its words found in the corpus, by "
            f"characters), below the {threshold:g} required; it begins {preview!r}")
    return score
