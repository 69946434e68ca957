"""Notebook 05 in a real browser, as a person uses it.

Starts JupyterLab on 127.0.0.1 (free port, token, throw-away Jupyter/IPython
directories, CHARRNN_RUNS pointing at a run trained here), opens the notebook
in Debian's Chromium through Playwright, runs all cells, sets temperature,
length and seed through the widgets, clicks Sample and checks the text against
the library. Screenshots go to test-artifacts/. Skipped (with the reason)
without Chromium or Playwright, unless CI=true, where it must run.
"""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from charrnn import TrainConfig, load_checkpoint, repo_root, train
from conftest import make_text

CHROMIUM = os.environ.get("CHARRNN_CHROMIUM", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NOTEBOOK = "05_interactive_sampling.ipynb"
ARTIFACTS = repo_root() / "test-artifacts"


def _browser_missing() -> str:
    """Why the browser test cannot run here ('' when it can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install -r requirements-dev.txt)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium, or `make sysdeps` as root)"
    return ""


_why = _browser_missing()
if _why:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"the browser test must run in CI: {_why}")
    pytest.skip(f"browser test skipped: {_why}", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


UNITS = "units.ipynb"


def _write_units_notebook(path: Path, checkpoint: Path, text: str) -> None:
    """A notebook showing the UnitViewer over text read by the checkpoint's model, as notebook 08 does."""
    import nbformat
    code = ("from charrnn import load_checkpoint\n"
            "from charrnn.report.units import read, text_features\n"
            "from charrnn.report.unit_viewer import UnitViewer\n"
            f"model = load_checkpoint({str(checkpoint)!r}).model()\n"
            f"text = {text!r}\n"
            "H, P = read(model, model.vocab.encode(text))\n"
            "UnitViewer(text, H, P, text_features(text))")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nbformat.write(nb, str(path))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server (and the kernels it started, in its process group) by its PID."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server serving a copy of notebook 05, with one trained run in CHARRNN_RUNS."""
    tmp = tmp_path_factory.mktemp("lab")
    runs, work = tmp / "runs", tmp / "work"
    work.mkdir()
    shutil.copy(repo_root() / "notebooks" / NOTEBOOK, work / NOTEBOOK)   # autosave must not touch the repo's copy
    train(make_text(60_000, seed=5), TrainConfig(m=48, n_updates=1500, seq_length=25, checkpoint_dir=str(runs / "browser"),
                            sample_every=1000, log_every=100))
    for name in ("assignment", "assignment-seed1"):     # as the report names its main run and a seed repeat
        shutil.copytree(runs / "browser", runs / name)
    _write_units_notebook(work / UNITS, runs / "browser" / "best.npz", make_text(2500, seed=6))

    config = tmp / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(tmp / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "IPYTHONDIR": str(tmp / "ipython"),
           "CHARRNN_RUNS": str(runs), "JUPYTER_PLATFORM_DIRS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("JUPYTER_PATH", None)
    port, token = _free_port(), os.urandom(16).hex()
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--ServerApp.port_retries=0",
         "--LabApp.expose_app_in_browser=True"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({proc.returncode}):\n{(tmp / 'lab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer in 60 s:\n{(tmp / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.25)
        yield {"url": url, "token": token, "runs": runs}
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="module")
def page(lab):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def _readout(page, label: str):
    """The typeable number field beside the slider described by label."""
    return page.locator(".widget-slider", has=page.locator(".widget-label", has_text=label)).locator(".widget-readout")


def _type_into_readout(page, label: str, value) -> None:
    field = _readout(page, label)
    field.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")


def _show_widget(page) -> None:
    """Scroll the notebook so the whole widget is in view, as a person would to read it."""
    page.locator(".widget-dropdown").evaluate("e => e.scrollIntoView({block: 'start'})")


def _prime_box(page):
    """The prime: a text area, so that it holds line breaks."""
    return page.locator(".widget-textarea", has=page.locator(".widget-label", has_text="Prime")).locator("textarea")


def _seed_box(page):
    return page.locator(".widget-text", has=page.locator(".widget-label", has_text="Seed")).locator("input")


def _open_and_run(page, lab, notebook: str = NOTEBOOK) -> None:
    page.goto(f"{lab['url']}/lab/tree/{notebook}?reset&token={lab['token']}")
    page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=60_000)   # the kernel, really ready
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def _sample_and_read(page, expect_status: str) -> str:
    page.get_by_role("button", name="Sample").click()
    expect(page.locator(".charrnn-status")).to_contain_text(expect_status)
    return page.locator(".charrnn-sample").text_content()


@contextlib.contextmanager
def _shot_on_failure(page, name: str):
    """A full-page screenshot to test-artifacts/name when the block fails."""
    try:
        yield
    except Exception:
        page.screenshot(path=str(ARTIFACTS / name), full_page=True)
        raise


def _open_sampler(page, lab) -> None:
    """Notebook 05 opened and run, its chart drawn."""
    _open_and_run(page, lab)
    expect(page.locator(".charrnn-chart")).to_contain_text("entropy", timeout=60_000)


def _theme(page, name: str) -> None:
    """Switch JupyterLab's theme, as Settings > Theme does (the server exposes the app for this)."""
    page.evaluate("name => window.jupyterapp.commands.execute('apputils:change-theme', {theme: name})", name)


def _box(page, locator):
    b = locator.bounding_box()
    assert b is not None, locator
    return b


def test_sampling_in_the_browser(lab, page):
    best = load_checkpoint(lab["runs"] / "browser" / "best.npz").model()      # sampled from its stored state
    prime, seed, length, temperature = "The ", 1234, 257, 0.7
    seeded = best.sample(length, prime=prime, temperature=temperature, seed=seed)
    greedy = best.sample(length, prime=prime, temperature=0)
    try:
        page.goto(f"{lab['url']}/lab/tree/{NOTEBOOK}?reset&token={lab['token']}")
        page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=60_000)   # the kernel, really ready

        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        chart = page.locator(".charrnn-chart")
        expect(chart).to_contain_text("entropy", timeout=60_000)
        expect(page.locator(".widget-dropdown select")).to_contain_text("browser · best (rnn, step")
        expect(_prime_box(page)).to_have_value(prime)

        _type_into_readout(page, "Temperature", temperature)
        expect(_readout(page, "Temperature")).to_have_text("0.70")
        _type_into_readout(page, "Length", length)
        expect(_readout(page, "Length")).to_have_text(str(length))
        seed_box = page.locator(".widget-text", has=page.locator(".widget-label", has_text="Seed")).locator("input")
        seed_box.fill(str(seed))
        seed_box.press("Enter")
        random_box = page.locator(".widget-checkbox input[type=checkbox]")
        expect(random_box).not_to_be_checked()     # typing a seed unticks "random"

        text = _sample_and_read(page, f"{length} characters")
        assert len(text) == length
        assert text == seeded
        expect(page.locator(".charrnn-status")).to_contain_text(f"seed {seed} · temperature 0.70")
        expect(page.locator(".charrnn-status")).to_contain_text("from the carried state")
        _show_widget(page)
        page.screenshot(path=str(ARTIFACTS / "browser-sampler.png"), full_page=True)

        _type_into_readout(page, "Temperature", 0)
        expect(chart).to_contain_text("entropy 0.00 bits")
        text = _sample_and_read(page, "greedy")
        assert len(text) == length
        assert text == greedy
        _show_widget(page)
        page.screenshot(path=str(ARTIFACTS / "browser-sampler-greedy.png"), full_page=True)
        assert not page.locator(".charrnn-error").count()
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "browser-sampler-failure.png"), full_page=True)
        raise


def test_after_an_error_sample_is_off_until_it_is_fixed(lab, page):
    """The issue's steps: sample, type a prime with a character the model never saw, then press Sample.
    The error is one red line, Sample is off and says why, the old text is gone, and the seed box keeps
    the seed of the text last shown; once the prime is fixed, Sample works and shows its own seed."""
    best = load_checkpoint(lab["runs"] / "browser" / "best.npz").model()
    try:
        page.goto(f"{lab['url']}/lab/tree/{NOTEBOOK}?reset&token={lab['token']}")
        page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=60_000)
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        expect(page.locator(".charrnn-chart")).to_contain_text("entropy", timeout=60_000)
        button = page.get_by_role("button", name="Sample")
        seed_box = page.locator(".widget-text", has=page.locator(".widget-label", has_text="Seed")).locator("input")
        expect(page.locator(".widget-checkbox input[type=checkbox]")).to_be_checked()   # random seeds
        first = _sample_and_read(page, "characters")
        shown_seed = int(seed_box.input_value())
        assert first == best.sample(300, prime="The ", seed=shown_seed)

        prime_box = _prime_box(page)
        prime_box.fill("The Zürich")
        error = page.locator(".charrnn-error")
        expect(error).to_contain_text("'ü' (U+00FC)")
        assert error.count() == 1 and "\n" not in error.inner_text().strip()
        expect(button).to_be_disabled()
        expect(page.locator(".charrnn-sample")).to_have_count(0)          # the old text is gone
        expect(page.locator(".charrnn-status")).to_contain_text("Sample is off until the error above is fixed")
        button.click(force=True)                                          # pressing it anyway does nothing
        page.wait_for_timeout(500)
        assert int(seed_box.input_value()) == shown_seed
        expect(page.locator(".charrnn-sample")).to_have_count(0)
        _show_widget(page)
        page.screenshot(path=str(ARTIFACTS / "browser-sampler-error.png"), full_page=True)

        prime_box.fill("The ")
        expect(error).to_have_count(0)
        expect(button).to_be_enabled()
        text = _sample_and_read(page, "characters")
        new_seed = int(seed_box.input_value())
        assert new_seed != shown_seed and text == best.sample(300, prime="The ", seed=new_seed)
        expect(page.locator(".charrnn-status")).to_contain_text(f"seed {new_seed} ")
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "browser-sampler-error-failure.png"), full_page=True)
        raise


def test_the_picker_speaks_nats_per_character_and_opens_on_the_main_model(lab, page):
    with _shot_on_failure(page, "browser-picker-failure.png"):
        _open_sampler(page, lab)
        picker = page.locator(".widget-dropdown select").first
        expect(picker.locator("option:checked")).to_contain_text("training loss")
        picked = picker.locator("option:checked").text_content().replace("\xa0", " ").strip()
        assert re.fullmatch(r"assignment · best \(rnn, step [\d,]+, training loss \d\.\d{3} nats/char\)", picked), picked
        names = [t.replace("\xa0", " ").split(" ·")[0] for t in picker.locator("option").all_text_contents()]
        assert "assignment-seed1" not in names and names[:2] == ["assignment", "assignment"]
        expect(page.get_by_text("1 run repeated under another seed not listed")).to_be_visible()
        page.get_by_role("button", name="seed repeats").click()
        expect(picker.locator("option", has_text="assignment-seed1 · best")).to_have_count(1)


def test_prime_holds_a_line_break_and_survives_a_checkpoint_switch(lab, page):
    best = load_checkpoint(lab["runs"] / "browser" / "best.npz").model()
    with _shot_on_failure(page, "browser-prime-failure.png"):
        _open_sampler(page, lab)
        box = _prime_box(page)
        box.click()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type("the cat.")
        page.keyboard.press("Enter")                    # a line break, as in the report's primes
        page.keyboard.type("And ")
        expect(box).to_have_value("the cat.\nAnd ")
        expect(page.locator(".charrnn-chart")).to_contain_text("And␣")
        picker = page.locator(".widget-dropdown select").first
        picker.select_option(label=picker.locator("option", has_text="browser · last").text_content())
        expect(page.locator(".widget-dropdown select option:checked").first).to_contain_text("browser · last")
        page.wait_for_timeout(500)
        expect(box).to_have_value("the cat.\nAnd ")        # not replaced by the default prime
        picker.select_option(label=picker.locator("option", has_text="browser · best").text_content())
        _seed_box(page).fill("21")
        _seed_box(page).press("Enter")
        text = _sample_and_read(page, "seed 21 ")
        assert text == best.sample(300, prime="the cat.\nAnd ", seed=21)
        expect(page.locator(".charrnn-prime")).to_have_text("the cat.\nAnd ")


def test_seed_retyped_is_kept_and_greedy_needs_none(lab, page):
    with _shot_on_failure(page, "browser-seed-failure.png"):
        _open_sampler(page, lab)
        first = _sample_and_read(page, "characters")
        seed_box, random_box = _seed_box(page), page.locator(".widget-checkbox input[type=checkbox]").last
        shown = seed_box.input_value()
        expect(random_box).to_be_checked()
        seed_box.click()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type(shown)                       # the number the box already shows
        expect(random_box).not_to_be_checked()
        again = _sample_and_read(page, f"seed {shown} ")
        assert again == first and seed_box.input_value() == shown

        _type_into_readout(page, "Temperature", 0)
        expect(seed_box).to_be_disabled()
        expect(random_box).to_be_disabled()
        _sample_and_read(page, "greedy (no seed needed)")
        assert seed_box.input_value() == shown


def test_start_from_zeros_clears_the_old_text_and_says_why_a_prime_is_needed(lab, page):
    with _shot_on_failure(page, "browser-zeros-failure.png"):
        _open_sampler(page, lab)
        _sample_and_read(page, "from the carried state")
        page.get_by_role("button", name="zeros").click()
        expect(page.locator(".charrnn-sample")).to_have_count(0)    # not shown under the new start
        expect(page.locator(".charrnn-status")).to_have_text("Press Sample to generate text.")
        _prime_box(page).fill("")
        expect(page.locator(".charrnn-error")).to_contain_text("From zeros the network has nothing to go on")
        expect(page.get_by_role("button", name="Sample")).to_be_disabled()
        _prime_box(page).fill("The ")
        _sample_and_read(page, "from h = 0")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_layout_at_1024_pixels(lab, page, theme):
    """Labels in one column, nothing clipped, the chart beside the controls and the text on screen in a
    1,024 x 768 window; in both themes the start button picked stands out from the other."""
    page.set_viewport_size({"width": 1024, "height": 768})
    try:
        with _shot_on_failure(page, f"browser-layout-{theme}-failure.png"):
            _open_sampler(page, lab)
            if theme == "dark":
                _theme(page, "JupyterLab Dark")
                expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1, timeout=30_000)
            _sample_and_read(page, "characters")
            page.locator(".widget-dropdown").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(300)
            label = lambda text: page.locator(".widget-label", has_text=text).first
            rights = {t: _box(page, label(t))["x"] + _box(page, label(t))["width"]
                      for t in ("Start from", "Temperature", "Prime", "Seed")}
            assert max(rights.values()) - min(rights.values()) < 4, rights
            start, buttons = _box(page, label("Start from")), _box(page, page.locator(".charrnn-start"))
            assert abs((start["y"] + start["height"] / 2) - (buttons["y"] + buttons["height"] / 2)) < 6   # one row
            tops = [_box(page, b)["y"] for b in page.locator(".charrnn-start button").all()]
            assert len(tops) == 2 and abs(tops[0] - tops[1]) < 2, tops          # the buttons side by side
            prime = _box(page, _prime_box(page))
            temp = _box(page, page.locator(".widget-slider", has=label("Temperature")))
            assert prime["x"] + prime["width"] <= temp["x"] + temp["width"] + 2      # not clipped on the right
            chart, button = _box(page, page.locator(".charrnn-chart")), _box(page, page.get_by_role("button", name="Sample"))
            assert chart["y"] < button["y"] and chart["x"] > button["x"] + button["width"]   # beside, not below
            toggle, cell = (_box(page, page.get_by_role("button", name="seed repeats")),
                            _box(page, page.locator(".jp-OutputArea-output").first))
            assert toggle["x"] + toggle["width"] <= cell["x"] + cell["width"] + 1    # the seed-repeats button in view
            text = _box(page, page.locator(".charrnn-output"))
            assert text["y"] < 768 - 40                    # the sampled text starts on screen
            on, off = (page.locator(".charrnn-start button" + s).first for s in (".mod-active", ":not(.mod-active)"))
            colours = [b.evaluate("e => getComputedStyle(e).backgroundColor") for b in (on, off)]
            rgb = [tuple(int(x) for x in re.findall(r"\d+", c)[:3]) for c in colours]
            assert sum(abs(a - b) for a, b in zip(*rgb)) > 120, colours
            page.screenshot(path=str(ARTIFACTS / f"browser-sampler-1024-{theme}.png"))
    finally:
        if theme == "dark":
            _theme(page, "JupyterLab Light")
        page.set_viewport_size({"width": 1280, "height": 1100})


def test_unit_viewer_in_the_browser(lab, page):
    with _shot_on_failure(page, "browser-units-failure.png"):
        _open_and_run(page, lab, UNITS)
        shown = page.locator(".widget-dropdown select").first
        expect(shown).to_be_visible(timeout=60_000)
        expect(page.locator(".charrnn-legend")).to_contain_text("activation")
        unit = page.locator(".widget-text", has=page.locator(".widget-label", has_text="Unit")).locator("input")
        first = unit.input_value()
        unit.fill("3" if first != "3" else "4")
        unit.press("Enter")
        expect(shown.locator("option:checked")).to_have_text("a unit you choose (type it)")
        expect(page.get_by_text(re.compile(r"unit [34] ·"))).to_be_visible()
        shown.select_option(label="where the model is sure")
        expect(unit).to_be_disabled()
        expect(page.locator(".charrnn-legend")).to_contain_text("probability")
        viewer = page.locator(".jp-OutputArea-output").first
        assert _box(page, viewer)["height"] < 700       # the text scrolls inside, the page does not grow
        page.screenshot(path=str(ARTIFACTS / "browser-unit-viewer.png"), full_page=True)
