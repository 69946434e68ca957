"""The report's settings (report.toml), and building one notebook or retraining one run."""
import os
import subprocess
import sys

import pytest

from charrnn.corpus import Corpus
from charrnn.paths import repo_root
from charrnn.report import runs
from charrnn.report import build as report
from charrnn.report.settings import SettingsError, settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for k in ("CHARRNN_SETTINGS", "CHARRNN_CORPUS", "CHARRNN_PROFILE", "CHARRNN_FORCE_BEFORE", "CHARRNN_FORCE_RUNS"):
        monkeypatch.delenv(k, raising=False)


def test_the_repository_file_is_the_full_profile():
    s = settings()
    assert s.profile == "full" and s.sources == (repo_root() / "report.toml",)
    assert s["assignment"]["updates"] == 100_000 and s["assignment"]["m"] == 100 and "quick" not in s
    assert s["budget"]["seconds"] == 180 and s["cells"]["lstm"]["batch_size"] >= 1


def test_every_key_of_report_toml_is_commented():
    text = (repo_root() / "report.toml").read_text()
    for line in text[:text.index("[quick.")].splitlines():     # the quick profile's overrides come last
        if "=" in line and not line.lstrip().startswith("#"):
            key = line.split("=")[0].strip()
            if key not in ("m", "batch_size", "seq_length", "eta"):      # the cells' tables, explained above them
                assert "#" in line, f"report.toml: {key} has no comment"


def test_the_quick_profile_lays_its_tables_over(monkeypatch):
    monkeypatch.setenv("CHARRNN_PROFILE", "quick")
    s = settings()
    assert s.profile == "quick" and s["assignment"]["updates"] == 2_000
    assert s["assignment"]["m"] == 100                      # not overridden: kept
    assert s["budget"]["m"] == 32 and s["budget"]["preset"] == "budget"


def test_another_file_needs_only_the_keys_it_changes(tmp_path, monkeypatch):
    f = tmp_path / "mine.toml"
    f.write_text('title = "My report"\nauthors = ["Ada"]\n[assignment]\nupdates = 200_000\nm = 200\n'
                 '[cells.lstm]\neta = 0.003\n')
    s = settings(f)
    assert s["title"] == "My report" and s["authors"] == ["Ada"]
    assert s["assignment"]["updates"] == 200_000 and s["assignment"]["seq_length"] == 25
    assert s["cells"]["lstm"]["eta"] == 0.003 and runs.cell_config(s, "lstm").eta == 0.003
    assert runs.assignment_config(s, 1_000_000).m == 200
    monkeypatch.setenv("CHARRNN_SETTINGS", str(f))
    assert settings()["title"] == "My report"
    monkeypatch.setenv("CHARRNN_CORPUS", "data/goblet_book.txt")
    assert settings()["corpus"] == "data/goblet_book.txt"
    assert runs.corpus_path(settings()) == repo_root() / "data" / "goblet_book.txt"


@pytest.mark.parametrize("content,message", [
    ("[assignment]\nupdatez = 5\n", "unknown setting 'assignment.updatez'"),
    ("[budget]\nsecondz = 5\n", "unknown setting 'budget.secondz'"),
    ("[cells.gru]\nmm = 5\n", "unknown setting 'cells.gru.mm'"),
    ("titel = 'x'\n", "unknown setting 'titel'"),
    ("[assignment]\nupdates = 'many'\n", "'assignment.updates' must be a number"),
    ("assignment = 3\n", "'assignment' must be a table"),
    ("[assignment\n", "is not valid TOML"),
])
def test_a_bad_settings_file_is_one_line(tmp_path, content, message):
    f = tmp_path / "bad.toml"
    f.write_text(content)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        settings(f)
    assert "\n" not in str(exc.value)
    with pytest.raises(SettingsError, match="settings file not found"):
        settings(tmp_path / "nope.toml")


def test_make_report_with_a_bad_settings_file_says_so_in_one_line(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[budget]\nsecondz = 3\n")
    env = {**os.environ, "CHARRNN_PROFILE": "quick", "CHARRNN_RUNS": str(tmp_path / "runs"),
           "CHARRNN_FIGURES": str(tmp_path / "figures")}
    r = subprocess.run([sys.executable, "-m", "charrnn.report", "--settings", str(f), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "unknown setting 'budget.secondz'" in r.stderr
    assert not (tmp_path / "out" / "report.pdf").exists()


def test_changing_one_runs_settings_retrains_that_run_only(tmp_path, monkeypatch, text_small):
    monkeypatch.setenv("CHARRNN_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CHARRNN_PROFILE", "quick")
    corpus = Corpus.from_text(text_small * 3)
    calls = []
    real = runs.train
    monkeypatch.setattr(runs, "train", lambda *a, **kw: calls.append(a[1].cell) or real(*a, **kw))
    f = tmp_path / "mine.toml"
    f.write_text("[quick.cells]\nseconds = 0.3\n")
    s = settings(f)
    first = {c: runs.run(f"cell-{c}", runs.cell_config(s, c), corpus, progress=False) for c in ("rnn", "gru")}
    assert calls == ["rnn", "gru"]
    f.write_text("[quick.cells]\nseconds = 0.3\n[quick.cells.gru]\nm = 20\n")
    s = settings(f)
    again = {c: runs.run(f"cell-{c}", runs.cell_config(s, c), corpus, progress=False) for c in ("rnn", "gru")}
    assert calls == ["rnn", "gru", "gru"]
    assert again["rnn"].step == first["rnn"].step and again["gru"].params["W"].shape == (60, 20)


def test_force_names_only_the_runs_it_matches(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_PROFILE", "full")
    monkeypatch.setenv("CHARRNN_RUNS", str(tmp_path))
    for name in ("assignment", "assignment-seed1", "budget"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text("{}")
    monkeypatch.setenv("CHARRNN_FORCE_BEFORE", str(os.path.getmtime(tmp_path / "budget" / "run.json") + 1))
    assert all(runs._forced(tmp_path / n, n) for n in ("assignment", "assignment-seed1", "budget"))
    monkeypatch.setenv("CHARRNN_FORCE_RUNS", "assignment*")
    assert [n for n in ("assignment", "assignment-seed1", "budget") if runs._forced(tmp_path / n, n)] == \
        ["assignment", "assignment-seed1"]
    monkeypatch.setenv("CHARRNN_FORCE_RUNS", "budget")
    assert [n for n in ("assignment", "assignment-seed1", "budget") if runs._forced(tmp_path / n, n)] == ["budget"]


def test_only_executes_the_named_notebook_and_reuses_the_others(tmp_path, monkeypatch):
    executed, built = [], []
    monkeypatch.setattr(report, "execute_notebook", lambda src, dst, **kw: executed.append(src.stem) or dst)
    monkeypatch.setattr(report, "build_pdf", lambda paths, out, *a, **kw: built.append([p.name for p in paths]) or out)
    monkeypatch.setattr(report, "corpus_description", lambda path: "corpus")
    with pytest.raises(report.BuildError, match="run the whole build once first"):
        report.build(tmp_path, only=["03"])
    assert executed == []
    (tmp_path / "build").mkdir(exist_ok=True)
    for n in report.NOTEBOOKS:
        (tmp_path / "build" / f"{n}.ipynb").write_text("{}")
    report.build(tmp_path, only=["03"])
    assert executed == ["03_training"] and built[-1] == [f"{n}.ipynb" for n in report.NOTEBOOKS]
    with pytest.raises(report.BuildError, match="no such report notebook"):
        report.build(tmp_path, only=["05"])
    report.build(tmp_path, force=["budget"], only=["07_cells.ipynb"])
    assert executed[-1] == "07_cells"


def test_force_and_settings_reach_the_notebooks_kernels(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(report, "execute_notebook", lambda src, dst, env=None, **kw: seen.append(env) or dst)
    monkeypatch.setattr(report, "build_pdf", lambda *a, **kw: tmp_path / "report.pdf")
    monkeypatch.setattr(report, "corpus_description", lambda path: "corpus")
    f = tmp_path / "mine.toml"
    f.write_text('title = "Mine"\n')
    report.build(tmp_path, force=["assignment*", "budget"], settings_path=f, notebooks=("01_data",))
    env = seen[-1]
    assert env["CHARRNN_FORCE_RUNS"] == "assignment*,budget" and float(env["CHARRNN_FORCE_BEFORE"]) > 0
    assert env["CHARRNN_SETTINGS"] == str(f.resolve())
    report.build(tmp_path, force=True, notebooks=("01_data",))
    assert "CHARRNN_FORCE_RUNS" not in seen[-1] and "CHARRNN_FORCE_BEFORE" in seen[-1]


def test_every_setting_says_what_it_is_for_and_the_package_reads_it_there():
    """Each TrainConfig field carries its role, whether it keys a report run, and whether a resume may change
    it; the trainer's and the command line's resume checks and the run store read those, not lists of their own."""
    import dataclasses

    from charrnn.report import runs
    from charrnn.config import ROLES, TrainConfig
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["role"] in ROLES and f.metadata["on_resume"] in ("fixed", "free"), f.name
        assert isinstance(f.metadata["keys_run"], bool), f.name
    free, fixed = set(TrainConfig.names(on_resume="free")), set(TrainConfig.names(on_resume="fixed"))
    assert free | fixed == {f.name for f in dataclasses.fields(TrainConfig)} and not free & fixed
    assert {"n_updates", "epochs", "time_budget", "val_every", "log_every", "checkpoint_dir"} <= free
    assert {"cell", "m", "seed", "eta", "batch_size", "spike_guard", "dropout", "val_fraction"} <= fixed
    assert runs._IGNORED == set(TrainConfig.names(keys_run=False)) == {"log_every", "checkpoint_dir",
                                                                        "checkpoint_every", "resume"}
    assert set(TrainConfig.names(role="bookkeeping")) >= runs._IGNORED


def test_a_resume_refuses_every_fixed_setting_changed_and_takes_every_free_one(tmp_path, text_small):
    from charrnn import TrainConfig, train
    from charrnn.config import ConfigError
    base = TrainConfig(n_updates=20, m=8, seq_length=10, checkpoint_dir=str(tmp_path / "r"), checkpoint_every=10,
                       sample_every=10, sample_length=5, log_every=5)
    train(text_small, base)
    for field, value in [("m", 9), ("eta", 0.05), ("seed", 1), ("sigma", 0.02), ("clip", 4.0), ("ema", 0.9),
                         ("init", "orthogonal")]:
        with pytest.raises(ConfigError, match=field):
            train(text_small, base.replace(resume=str(tmp_path / "r"), n_updates=30, **{field: value}))
    h = train(text_small, base.replace(resume=str(tmp_path / "r"), n_updates=30, log_every=3, sample_every=7,
                                       sample_length=4, val_every=11, checkpoint_every=9))
    assert h.step == 30


def test_the_parts_come_from_the_settings_or_charrnn_parts(monkeypatch):
    """report.toml's parts (both by default); `make report PARTS=assignment` reaches the kernels as CHARRNN_PARTS."""
    monkeypatch.delenv("CHARRNN_PARTS", raising=False)
    assert settings()["parts"] == ["assignment", "beyond"]
    monkeypatch.setenv("CHARRNN_PARTS", "assignment")
    assert settings()["parts"] == ["assignment"]
