"""The plotting helpers that chapters 05 and 09 call (figures built from computed results)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from scconcepts import plotting  # noqa: E402
from scconcepts.claims import ABOVE, Claim  # noqa: E402


def test_claim_intervals_one_row_per_claim_with_its_interval():
    c1 = Claim("a", 0.1, 10, "t", "agrees", "s", (0.05, 0.2), region=(0, ABOVE))
    c2 = Claim("b", -0.02, 10, "t", "inconclusive", "s")   # no interval: a point
    fig = plotting.claim_intervals({"scVI": {"paper's pools": c1, "matched": c2}})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["paper's pools", "matched"]
    assert ax.get_title() == "scVI" and ax.get_xlim()[0] < 0.05 and ax.get_xlim()[1] > 0.2
    plt.close(fig)


def test_label_f1_plot_one_row_per_method():
    per = pd.DataFrame({"method": ["concepts"] * 3 + ["neurons"] * 3,
                        "f1_test": [0.2, 0.6, 0.9, 0.1, 0.3, 0.7]})
    fig = plotting.label_f1_plot({"scVI": per, "scGPT": per})
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["concepts", "neurons"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 6
    plt.close(fig)
