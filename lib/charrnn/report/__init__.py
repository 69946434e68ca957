"""The report: what exists only for the notebooks and the PDF. The core (everything in charrnn outside this
package) never imports it.

    build.py       the notebooks -> PDF pipeline and the report's two parts (python -m charrnn.report)
    settings.py    report.toml, its overrides and the quick profile
    runs.py        named runs under runs/, reused when settings and corpus match
    display.py     what the notebooks show: Table, TextBlock, Figure, ColouredText, markdown; Section numbers them
    plots.py       the matplotlib figures
    quality.py     scores: the share of a passage's words found in the corpus
    startstate.py  the state study: text read from h = 0 and from the stored state, stuck stretches
    units.py       the hidden units: features of the text and the unit that follows each
    templates/     the nbconvert LaTeX template

The notebooks import display for what they show and the other modules for what they compute, never build.

Settings reach the kernels one way, the environment the build starts each kernel with: --settings, --corpus
and --parts become CHARRNN_SETTINGS, CHARRNN_CORPUS and CHARRNN_PARTS, which a notebook reads only through
settings.settings(); --force becomes CHARRNN_FORCE_BEFORE and CHARRNN_FORCE_RUNS, read by runs.run();
CHARRNN_PROFILE, CHARRNN_RUNS and CHARRNN_FIGURES pass through unchanged. No notebook reads os.environ.

This file imports nothing, so a notebook importing display does not load the build.
"""
