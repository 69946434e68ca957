"""Scoring generated text, and the report's gate on passages that score as noise."""
import shutil

import numpy as np
import pytest

from charrnn import init_params, load_checkpoint, sample
from charrnn.checkpoint import save_checkpoint
from charrnn.report import build as report
from charrnn.report.quality import PassageCheckError, check_passage, corpus_words, word_score, word_stats, words
from charrnn.vocab import Vocabulary
from conftest import make_text
from test_notebooks import NB_DIR, quick_build


def test_words_strip_edge_punctuation_and_lower_case():
    assert words("The cat's 'mat', (Dog)! -- x2y \n\t") == ["the", "cat's", "mat", "dog", "x2y"]


def test_word_score_counts_words_by_length():
    known = {"the", "cat", "sat"}
    assert word_score("The cat sat.", known) == 1.0
    assert word_score("", known) == 0.0 and word_score("... !!", known) == 0.0
    # one long garbage word outweighs two short real ones: a stuck model does not score 1/2
    assert word_score("the k131111111111111111111111111111111", known) < 0.1
    assert word_score("the zzz", known) == pytest.approx(0.5)
    d = word_stats("the cat the dog zzq", {"the", "cat", "dog"})
    assert d["words"] == 5 and d["distinct"] == 4 and d["in_corpus"] == pytest.approx(0.8)
    assert d["score"] == pytest.approx(12 / 15)


def test_noise_scores_near_zero_and_text_near_one():
    text = make_text(20_000, seed=3)
    known = corpus_words(text)
    vocab = Vocabulary.from_text(text)
    noise = sample(init_params(len(vocab), 32, sigma=0.5, seed=0), vocab, 1000, prime="t", seed=0)
    assert word_score(noise, known) < 0.05
    assert word_score(make_text(1000, seed=4), known) > 0.95


def test_check_passage_is_one_line_naming_what_and_the_figure():
    known = {"the", "cat"}
    assert check_passage("x", "the cat", known, 0.5) == 1.0
    with pytest.raises(PassageCheckError) as exc:
        check_passage("the best model of run assignment", "ShE&GZ2U2ZE6Q(N/Q311(/2331\n}2231", known, 0.15)
    message = str(exc.value)
    assert "\n" not in message and "run assignment" in message and "scores 0.000" in message and "0.15" in message


def test_the_report_stops_rather_than_print_a_noise_passage(tmp_path):
    """The quick build's long assignment run, its best model replaced by noise: executing notebook 04 as
    `make report` does ends with one line naming the run and its score, and no passage is printed."""
    base, env, errors = quick_build()
    assert errors["03_training"] is None, errors
    shutil.copytree(base / "runs", tmp_path / "runs")
    run = tmp_path / "runs" / "quick" / "assignment-long"          # the passage's run
    for name in ("last.npz", "best.npz"):
        ck = load_checkpoint(run / name)
        noise = init_params(len(ck.vocab), ck.config.m, sigma=0.8, seed=5)
        if name == "best.npz":
            ck.params = noise
        else:
            ck.best_params = noise
        save_checkpoint(ck, run / name)
    env = {**env, "CHARRNN_RUNS": str(tmp_path / "runs"), "CHARRNN_FIGURES": str(tmp_path / "figures")}
    out = tmp_path / "build" / "04_text_evolution.ipynb"
    with pytest.raises(report.BuildError) as exc:
        report.execute_notebook(NB_DIR / "04_text_evolution.ipynb", out, env=env, timeout=600)
    message = str(exc.value)
    assert "\n" not in message and "PassageCheckError" in message
    assert "the best model of run assignment-long writes noise" in message
    score = float(message.split("scores ")[1].split(" ")[0])
    assert score < 0.02
    import nbformat
    nb = nbformat.read(out, as_version=4)
    printed = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "1,000 characters from" in str(o)]
    assert printed == []
    assert np.isfinite(score)
