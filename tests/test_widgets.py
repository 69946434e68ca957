"""The sampler widget, driven from Python the way a person drives it: set controls, click Sample, read."""
import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from charrnn import TrainConfig, load_checkpoint, sample, train  # noqa: E402
from charrnn.sampling import next_char_distribution  # noqa: E402
from charrnn.widgets import SamplerUI, default_prime, entropy_bits, sampler_ui, visible  # noqa: E402

TEXT = ("The quick brown fox jumps over the lazy dog.\n"
        "And then the dog sleeps, and the fox runs home to the den.\n") * 20


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs directory with one tiny trained run (best.npz and last.npz)."""
    root = tmp_path_factory.mktemp("runs")
    train(TEXT, TrainConfig(m=16, n_updates=300, seq_length=10, checkpoint_dir=str(root / "tiny"),
                            sample_every=100, log_every=50))
    return root


@pytest.fixture
def ui(runs):
    ui = SamplerUI.from_runs(runs)
    ui.random_seed.value = False
    return ui


def test_picker_lists_best_and_last_with_step_and_loss(runs, ui):
    labels = [label for label, _ in ui.picker.options]
    assert len(labels) == 2
    assert labels[0].startswith("tiny · best (rnn, step ") and "training loss" in labels[0]
    assert labels[1].startswith("tiny · last (rnn, step 300,")
    for (label, _), e in zip(ui.picker.options, ui.entries):    # per character, not per 10-character update
        ck = e.checkpoint
        smooth = ck.best_smooth_loss if ck.kind == "best" else ck.smooth_loss
        assert f"training loss {smooth / 10:.3f} nats/char" in label
    assert ui.checkpoint.kind == "best"            # the default pick: the newest run's best parameters
    assert ui.prime.value == "The "                # occurs in the corpus
    assert not ui.checkpoint.vocab.missing(ui.prime.value)


def test_sample_has_the_requested_length_and_is_shown(ui):
    ui.length.value = 123
    ui.seed.value = 7
    ui.button.click()
    assert ui.error == ""
    assert len(ui.result_text) == 123
    assert "123 characters" in ui.output.value
    assert "charrnn-sample" in ui.output.value


def test_fixed_seed_reproduces_and_matches_the_library(ui):
    ui.temperature.value, ui.top_p.value, ui.length.value, ui.seed.value = 0.8, 0.9, 200, 42
    ui.button.click()
    first = ui.result_text
    ui.button.click()
    assert ui.result_text == first
    ck = ui.checkpoint
    assert ui.start.value == "state" and ck.model().has_state
    assert first == ck.model().sample(200, prime="The ", temperature=0.8, top_p=0.9, seed=42)
    # the carried state: its input character, then the prime, from the stored state
    assert first == sample(ck.params, ck.vocab, n=200, h0=ck.state[0], prime=ck.vocab.chars[ck.state_input[0]] + "The ",
                           temperature=0.8, top_p=0.9, seed=42)
    ui.seed.value = 43
    ui.button.click()
    assert ui.result_text != first


def test_random_seed_draws_a_new_seed_and_shows_it(ui):
    ui.random_seed.value = True
    ui.button.click()
    seed, text = ui.seed.value, ui.result_text
    ck = ui.checkpoint
    assert text == ck.model().sample(300, prime="The ", seed=seed)
    assert f"seed {seed} " in ui.output.value
    ui.seed.value = seed                           # typing a seed turns "random" off
    ui.seed.value = seed + 1
    assert ui.random_seed.value is False


def test_temperature_zero_is_the_librarys_greedy_sample(ui):
    ui.temperature.value = 0
    ui.length.value = 250
    ui.seed.value = 1
    ui.button.click()
    model = ui.checkpoint.model()
    assert ui.result_text == model.sample(250, prime="The ", temperature=0)
    ui.seed.value = 2                              # the seed does not matter when greedy
    ui.button.click()
    assert ui.result_text == model.sample(250, prime="The ", temperature=0)
    assert "greedy" in ui.output.value
    assert ui.chart_rows[0][1] == 1.0 and entropy_bits(ui.probabilities) == 0.0


def test_bad_prime_is_one_readable_inline_line(ui):
    ui.prime.value = "The Zürich"
    assert "'ü'" in ui.error and "'Z'" in ui.error and "vocabulary" in ui.error
    assert "\n" not in ui.error and "Traceback" not in ui.message.value
    assert "charrnn-error" in ui.message.value
    ui.button.click()                              # no exception escapes the button
    assert "'ü'" in ui.error and ui.result_text == ""
    ui.prime.value = "The "
    assert ui.error == "" and ui.message.value == ""


def test_after_an_error_sample_is_off_the_old_text_is_gone_and_no_seed_is_spent(ui):
    """The issue's case: a sample is shown, then a bad prime is typed. The old text must not stay under
    the error, Sample must say why it is off, and the seed box must keep the seed of the text shown."""
    ui.random_seed.value = True
    ui.button.click()
    shown_seed, text = ui.seed.value, ui.result_text
    assert text and "charrnn-sample" in ui.output.value
    ui.prime.value = "The Zürich"
    assert ui.button.disabled and "'ü'" in ui.button.tooltip
    assert "charrnn-sample" not in ui.output.value and text not in ui.output.value
    assert "Sample is off" in ui.output.value and ui.result_text == ""
    ui.sample()                                    # even called from code: nothing drawn, no seed used
    assert ui.seed.value == shown_seed and ui.result_text == ""
    ui.prime.value = "The "
    assert not ui.button.disabled and ui.error == "" and "Press Sample" in ui.output.value
    ui.button.click()
    assert ui.seed.value != shown_seed
    assert ui.result_text == ui.checkpoint.model().sample(300, prime="The ", seed=ui.seed.value)
    assert f"seed {ui.seed.value} " in ui.output.value


def test_start_from_zeros_is_the_plain_sample_from_h0(ui):
    ui.start.value = "zeros"
    ui.temperature.value, ui.length.value, ui.seed.value = 0.9, 90, 5
    ui.button.click()
    ck = ui.checkpoint
    assert ui.result_text == sample(ck.params, ck.vocab, n=90, prime="The ", temperature=0.9, seed=5)
    assert "from h = 0" in ui.output.value and "h = 0" in ui.chart.value
    ui.start.value = "state"
    ui.prime.value = ""                            # from the carried state a prime is optional
    assert ui.error == ""
    ui.button.click()
    assert ui.result_text == ck.model().sample(90, prime="", temperature=0.9, seed=5)
    assert "from the carried state" in ui.output.value and "carried state" in ui.chart.value
    ui.start.value = "zeros"                       # ...but from zeros there is nothing to feed
    assert "From zeros the network has nothing to go on" in ui.error and "prime" in ui.error and ui.button.disabled


def test_a_checkpoint_without_a_state_samples_from_zeros_and_says_so(runs, tmp_path):
    import shutil
    from charrnn.checkpoint import save_checkpoint
    shutil.copytree(runs / "tiny", tmp_path / "old")
    ck = load_checkpoint(tmp_path / "old" / "best.npz")
    ck.state = ck.state_input = None               # as a version-1 best.npz was
    save_checkpoint(ck, tmp_path / "old" / "best.npz")
    ui = SamplerUI.from_runs(tmp_path)
    assert ui.checkpoint.kind == "best" and not ui.model.has_state
    assert ui.start.value == "zeros" and ui.start.disabled
    assert "no stored state" in ui.info.value
    ui.seed.value, ui.random_seed.value = 3, False
    ui.button.click()
    assert ui.result_text == sample(ui.checkpoint.params, ui.checkpoint.vocab, n=300, prime="The ", seed=3)


def test_other_checkpoint_is_used_after_picking_it(ui):
    ui.picker.value = 1
    assert ui.checkpoint.kind == "last"
    ui.temperature.value, ui.length.value = 0, 80
    ui.button.click()
    last = load_checkpoint(ui.checkpoint.path)
    assert ui.result_text == last.model().sample(80, prime="The ", temperature=0)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.7])
def test_chart_is_the_distribution_after_the_prime(ui, temperature):
    ui.temperature.value = temperature
    ck = ui.checkpoint
    expected = ck.model().next_char_distribution("The ", temperature=temperature)
    assert not np.allclose(expected, next_char_distribution(ck.params, ck.vocab, "The ", temperature=temperature))
    np.testing.assert_allclose(ui.probabilities, expected, rtol=0, atol=1e-12)
    assert ui.probabilities.sum() == pytest.approx(1.0, abs=1e-12)    # top-p 1: nothing filtered
    rows = ui.chart_rows
    assert len(rows) == 15
    assert [p for _, p in rows] == sorted((p for _, p in rows), reverse=True)
    assert f"entropy {entropy_bits(expected):.2f} bits" in ui.chart.value


@pytest.mark.parametrize("top_p", [0.05, 0.3, 0.75, 0.95])
def test_top_p_keeps_at_least_top_p_of_the_mass(ui, top_p):
    ui.temperature.value = 1.2
    ui.top_p.value = top_p
    full = ui.checkpoint.model().next_char_distribution("The ", temperature=1.2)
    kept = ui.probabilities > 0
    assert ui.probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    assert full[kept].sum() >= top_p - 1e-12
    assert ui.nucleus_mass == pytest.approx(full[kept].sum())
    dropped = full[~kept]                          # the smallest set: every dropped char is less likely
    assert dropped.size == 0 or dropped.max() <= full[kept].min()
    assert "top-p keeps" in ui.chart.value


def test_chart_updates_when_a_control_changes(ui):
    before = ui.chart.value
    ui.prime.value = "The d"
    assert ui.chart.value != before
    assert "Next character after" in ui.chart.value


def test_whitespace_is_visible():
    assert visible(" ") == "␣" and visible("\n") == "⏎" and visible("\t") == "⇥" and visible("a") == "a"
    assert visible("\x07") == "U+0007"


def test_default_prime_uses_only_corpus_characters():
    from charrnn import Vocabulary
    assert default_prime(Vocabulary.from_text("abc xyz")) == "a"
    assert default_prime(Vocabulary.from_text("hello World")) == "W"
    assert default_prime(Vocabulary.from_text("The end")) == "The "


def test_no_checkpoint_says_how_to_make_one(tmp_path):
    ui = SamplerUI.from_runs(tmp_path / "empty")
    assert ui.checkpoint is None and ui.button.disabled
    assert "make report" in ui.info.value and "python -m charrnn train" in ui.info.value
    ui.button.click()
    assert ui.result_text == ""


def test_unreadable_checkpoint_is_skipped_with_a_note(runs, tmp_path):
    import shutil
    shutil.copytree(runs / "tiny", tmp_path / "tiny")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "last.npz").write_bytes(b"not a zip")
    ui = SamplerUI.from_runs(tmp_path)
    assert len(ui.picker.options) == 2
    assert "Skipped 1 unreadable" in ui.info.value


def test_sampler_ui_takes_a_run_directory(runs):
    ui = sampler_ui(runs / "tiny")
    assert ui.checkpoint.kind == "last" and len(ui.picker.options) == 1
    ui.length.value = 10
    ui.button.click()
    assert len(ui.result_text) == 10


def test_default_pick_is_the_longest_trained_runs_best(runs, tmp_path):
    import shutil
    shutil.copytree(runs / "tiny", tmp_path / "long")
    train(TEXT, TrainConfig(m=16, n_updates=50, seq_length=10, checkpoint_dir=str(tmp_path / "a-newer-short"),
                            sample_every=100, log_every=10))
    ui = SamplerUI.from_runs(tmp_path)
    assert [label.split(" ·")[0] for label, _ in ui.picker.options] == ["a-newer-short"] * 2 + ["long"] * 2
    assert ui.picker.label.startswith("long · best")


# --- what a student meets in JupyterLab (each also driven in a real browser in test_browser.py) ---

def test_the_sampler_model_works_without_widgets(runs):
    from charrnn.widgets import Sampler, Settings, find_checkpoints
    entries, _ = find_checkpoints(runs)
    sampler = Sampler(entries, rng=np.random.default_rng(0))
    s = Settings(start="state", temperature=0.7, top_p=0.9, length=50, prime="The ")
    assert sampler.problem(0, s) == ""
    preview = sampler.preview(0, s)
    np.testing.assert_allclose(preview.probs, entries[0].model.next_char_distribution("The ", temperature=0.7,
                                                                                      top_p=0.9), atol=1e-12)
    assert sampler.draw(0, s, 11) == entries[0].model.sample(50, prime="The ", temperature=0.7, top_p=0.9, seed=11)
    assert "nothing to go on" in sampler.problem(0, Settings(start="zeros", prime=""))
    assert "'ü'" in sampler.problem(0, Settings(prime="Zü"))


def test_a_line_break_in_the_prime_is_fed_as_one(ui):
    ui.prime.value = "The dog.\nAnd "
    ui.seed.value, ui.length.value = 9, 60
    ui.button.click()
    assert ui.error == ""
    assert ui.result_text == ui.checkpoint.model().sample(60, prime="The dog.\nAnd ", seed=9)
    ui.prime.value = "The dog.\\nAnd "             # typed as a backslash and an n: the error says what to do
    assert "'\\\\'" in ui.error and "press Enter" in ui.error


def test_switching_checkpoint_keeps_the_prime(runs, tmp_path):
    import shutil
    shutil.copytree(runs / "tiny", tmp_path / "tiny")
    train("abc abd abe\n" * 40, TrainConfig(m=8, n_updates=30, seq_length=8, checkpoint_dir=str(tmp_path / "other"),
                                            sample_every=100, log_every=10))
    ui = SamplerUI.from_runs(tmp_path)
    tiny = [i for _, i in ui.picker.options if ui.entries[i].run == "tiny"][0]
    other = [i for _, i in ui.picker.options if ui.entries[i].run == "other"][0]
    ui.picker.value = tiny
    ui.prime.value = "the dog\n"
    ui.picker.value = other                       # its vocabulary lacks 't', 'h', 'o', 'g'
    assert ui.prime.value == "the dog\n"
    assert "'t'" in ui.error and ui.button.disabled
    ui.picker.value = tiny
    assert ui.prime.value == "the dog\n" and ui.error == ""


def test_switching_the_start_clears_the_text_drawn_from_the_other(ui):
    ui.seed.value = 4
    ui.button.click()
    assert ui.result_text and "charrnn-sample" in ui.output.value
    ui.start.value = "zeros"
    assert ui.result_text == "" and "charrnn-sample" not in ui.output.value and "Press Sample" in ui.output.value


def test_at_temperature_zero_no_seed_is_drawn_or_offered(ui):
    ui.random_seed.value = True
    ui.seed.value = 77
    ui.random_seed.value = True
    ui.temperature.value = 0
    assert ui.seed.disabled and ui.random_seed.disabled and "no seed" in ui.seed.tooltip
    ui.button.click()
    assert ui.seed.value == 77                     # untouched: nothing was drawn
    assert "greedy" in ui.output.value and "seed 77" not in ui.output.value
    ui.temperature.value = 0.5
    assert not ui.seed.disabled and not ui.random_seed.disabled
    ui.button.click()
    assert ui.seed.value != 77


def test_retyping_the_seed_shown_keeps_it(ui):
    """The box shows the seed just drawn; typing it again (keystroke by keystroke, as the box sends it)
    means: this one. Sample then repeats the text instead of drawing a new seed."""
    ui.random_seed.value = True
    ui.button.click()
    seed, text = ui.seed.value, ui.result_text
    digits = str(seed)
    for k in range(1, len(digits) + 1):           # select all, then type the digits
        ui.seed.value = int(digits[:k])
    assert ui.random_seed.value is False and ui.seed.value == seed
    ui.button.click()
    assert ui.seed.value == seed and ui.result_text == text


def test_picker_opens_on_the_main_model_and_lists_seed_repeats_on_request(runs, tmp_path):
    import shutil
    for name in ("assignment", "assignment-seed1", "assignment-seed2", "cells-rnn"):
        shutil.copytree(runs / "tiny", tmp_path / name)
    shutil.copytree(runs / "tiny", tmp_path / "lonely-seed3")     # no run "lonely" beside it: listed
    ui = SamplerUI.from_runs(tmp_path)
    runs_listed = [ui.entries[i].run for _, i in ui.picker.options]
    assert runs_listed == ["assignment"] * 2 + ["cells-rnn"] * 2 + ["lonely-seed3"] * 2
    assert ui.picker.label.startswith("assignment · best (")
    assert "2 runs repeated under another seed not listed" in ui.info.value
    ui.seeds_shown.value = True
    assert len(ui.picker.options) == 10 and ui.picker.label.startswith("assignment · best (")
    assert "not listed" not in ui.info.value
    ui.picker.value = [i for _, i in ui.picker.options if ui.entries[i].run == "assignment-seed2"][0]
    ui.seeds_shown.value = False                  # the pick is hidden now: the first listed is picked
    assert ui.picker.label.startswith("assignment · ")


def test_unit_viewer_names_what_it_shows():
    from charrnn.report.units import text_features
    from charrnn.report.unit_viewer import UnitViewer
    rng = np.random.default_rng(0)
    text = 'He said "yes" and (then) left.\nShe said "no" and "why".\n' * 6 + "[Exit]\n"
    features = text_features(text)
    H = rng.normal(size=(len(text), 12))
    quotes = features['inside "quotes"']
    H[:, 5] = quotes + 0.1 * rng.normal(size=len(text))      # a unit that follows the quotes
    H[:, 7] = features["inside [brackets]"] + 0.01 * rng.normal(size=len(text))   # met once: |r| higher
    viewer = UnitViewer(text, H, rng.uniform(size=len(text) - 1), features)
    assert viewer.feature.value == ("feature", 'inside "quotes"') and viewer.unit.value == 5
    assert "charrnn-legend" in viewer.legend.value and viewer.output.layout.max_height == "420px"
    viewer.unit.value = 3                          # a unit of one's own: the dropdown says so
    assert viewer.feature.value == ("unit", "") and "unit 3 " in viewer.info.value
    viewer.feature.value = ("feature", "inside [brackets]")
    assert viewer.unit.value == 7 and viewer.feature.value == ("feature", "inside [brackets]")
    viewer.feature.value = ("sure", "")
    assert viewer.unit.disabled and "probability" in viewer.legend.value
    viewer.feature.value = ("feature", 'inside "quotes"')
    assert not viewer.unit.disabled and viewer.unit.value == 5
