"""scconcepts.figures.glue_figure: glued under its name, closed, and refusing a non-figure."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from scconcepts.figures import glue_figure  # noqa: E402


def test_glue_figure_glues_and_closes():
    seen = {}
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    out = glue_figure("ch00_fig_x", fig, glue_fn=lambda k, v, display: seen.update(
        {k: (v, display)}))
    assert out is fig and seen["ch00_fig_x"] == (fig, False)
    assert fig.number not in plt.get_fignums()  # closed: the inline backend will not show it


def test_glue_figure_refuses_a_non_figure():
    with pytest.raises(TypeError, match="expected a matplotlib Figure"):
        glue_figure("ch00_fig_x", None, glue_fn=lambda *a, **k: None)
