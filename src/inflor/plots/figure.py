"""What every figure shares: the Agg backend, the resolution, saving a PNG with the words on it
(``figure_texts``, read back by ``read_png_texts``), whole-epoch ticks and safe file names."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 110


def figure_texts(fig) -> dict:
    """The words on a figure: its title and legend and, per axes, title, axis labels, the labels
    of the x ticks in view (as the axis's formatter writes them), legend labels, the x range and
    the y scale (so a test can check what a panel covers)."""
    sup = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    axes = []
    for ax in fig.axes:
        leg = ax.get_legend()
        lo, hi = sorted(ax.get_xlim())
        locs = [v for v in ax.xaxis.get_majorticklocs() if lo - 1e-9 * (hi - lo) <= v <= hi + 1e-9 * (hi - lo)]
        ticks = [t for t in ax.xaxis.get_major_formatter().format_ticks(locs) if t]
        axes.append({"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                     "xticklabels": ticks,
                     "xlim": [float(v) for v in ax.get_xlim()], "yscale": ax.get_yscale(),
                     "legend": [t.get_text() for t in leg.get_texts()] if leg is not None else []})
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    return {"title": sup, "legend": legend, "axes": axes}


def _save(fig, path) -> Path:
    """Save as PNG with the figure's words in the PNG text chunk ``inflor:texts`` (JSON), so a
    test or a script can check what a picture shows without looking at it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    texts = figure_texts(fig)
    fig.savefig(path, dpi=DPI, metadata={"Title": texts["title"] or (texts["axes"][0]["title"] if texts["axes"] else ""),
                                         "Software": "inflor", "inflor:texts": json.dumps(texts)})
    plt.close(fig)
    return path


def whole_epochs(ax) -> None:
    """Ticks only at whole numbers on the x axis (epochs are counted, not measured)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def read_png_texts(path) -> dict:
    """The ``inflor:texts`` record written by ``_save`` (``{}`` if absent)."""
    from PIL import Image

    with Image.open(path) as im:
        raw = im.info.get("inflor:texts") or getattr(im, "text", {}).get("inflor:texts")
    return json.loads(raw) if raw else {}


def safe_name(layer: str) -> str:
    """A file-name friendly form of a module path (``layer2.0.sn1`` -> ``layer2.0.sn1``)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in layer) or "layer"
