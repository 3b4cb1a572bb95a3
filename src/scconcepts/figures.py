"""Numbered, captioned figures in the book's chapters.

A chapter draws a figure with :mod:`scconcepts.plotting`, hands it to :func:`glue_figure`, and
places it in its markdown with myst-nb's ``glue:figure`` directive, which gives the figure a
number, a caption (with glued values) and alt text::

    # %%
    fig = plotting.cross_r2_bars(r2)
    figures.glue_figure("ch07_fig_r2", fig)

    # %% [markdown]
    # ```{glue:figure} ch07_fig_r2
    # :name: fig-ch07-r2
    # :alt: Bars of R² on the own held-out cells and on the other dataset, per model.
    #
    # **Generalisation (Fig 4A analogue).** R² of each SAE on ...
    # ```

The figure is closed after glueing: the inline backend would otherwise also show it, unnumbered,
under the code cell.
"""

from __future__ import annotations

__all__ = ["glue_figure"]


def glue_figure(name: str, fig, glue_fn=None):
    """Glue a matplotlib figure under ``name`` (for ``glue:figure``) without showing it here.

    Parameters
    ----------
    name : str
        Glue key, ``ch<NN>_fig_<what>`` by convention.
    fig : matplotlib.figure.Figure
        The figure (any :mod:`scconcepts.plotting` function returns one).
    glue_fn : callable, optional
        ``myst_nb.glue`` by default (a stand-in for tests).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig``, closed.

    Raises
    ------
    TypeError
        When ``fig`` is not a matplotlib figure (e.g. ``None`` from a plotting call that drew
        nothing): the chapter's ``glue:figure`` would otherwise fail later, at build time.
    """
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"glue_figure({name!r}): expected a matplotlib Figure, got "
                        f"{type(fig).__name__}")
    if glue_fn is None:
        from myst_nb import glue as glue_fn
    glue_fn(name, fig, display=False)
    plt.close(fig)
    return fig
