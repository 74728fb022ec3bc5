"""PNG plots of an evaluation: precision-recall curves per class and a detection confusion matrix (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

#: Above this many classes the PR curves are thin grey lines without a legend, and the matrix has no numbers.
MAX_LABELLED_CLASSES = 20


def plot_pr_curves(recall: Tensor, precision: Tensor, class_names: Sequence[str], path: str | Path) -> Path:
    """Precision over recall of every class, with its AP in the legend, and the mean over classes.

    Args:
        recall: ``float[R]`` recall thresholds (COCOeval's ``recThrs``).
        precision: ``float[R, K]`` interpolated precision at each threshold (COCOeval's
            ``eval["precision"][t, :, k, area, max_dets]``); a class whose column is ``-1`` (no ground truth) is
            left out. AP of a class = mean of its column.
        class_names: ``K`` names, one per column.
        path: the PNG to write (its folder must exist).

    Returns:
        ``path``.
    """
    recall_np, precision_np = recall.detach().cpu().double().numpy(), precision.detach().cpu().double().numpy()
    valid = [k for k in range(precision_np.shape[1]) if (precision_np[:, k] >= 0).all()]
    fig = Figure(figsize=(7, 6), dpi=100)
    ax = fig.add_subplot()
    labelled = len(valid) <= MAX_LABELLED_CLASSES
    for k in valid:
        ap = precision_np[:, k].mean()
        style = {"linewidth": 1.2, "label": f"{class_names[k]} {ap:.3f}"} if labelled else {"linewidth": 0.5}
        ax.plot(recall_np, precision_np[:, k], **style, **({} if labelled else {"color": "grey"}))
    if valid:
        mean = precision_np[:, valid].mean(axis=1)
        ax.plot(recall_np, mean, color="blue", linewidth=3, label=f"all classes {mean.mean():.3f} mAP@0.5")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall (IoU 0.5)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    fig.savefig(path)
    return Path(path)


def plot_confusion_matrix(matrix: Tensor, class_names: Sequence[str], path: str | Path) -> Path:
    """A detection confusion matrix as a heat map, rows normalised, with the counts written in the cells.

    Args:
        matrix: ``int[K + 1, K + 1]`` from :func:`~lightning_retina.metrics.confusion.detection_confusion_matrix`
            (rows: true class, columns: predicted class, index ``K``: background).
        class_names: the ``K`` class names.
        path: the PNG to write (its folder must exist).

    Returns:
        ``path``.
    """
    counts = matrix.detach().cpu().numpy()
    names = [*class_names, "background"]
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=np.float64), where=rows > 0)
    size = min(4 + 0.5 * len(names), 20)
    fig = Figure(figsize=(size + 1.5, size), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the row")
    if len(names) <= MAX_LABELLED_CLASSES + 1:
        ax.set_xticks(range(len(names)), names, rotation=90)
        ax.set_yticks(range(len(names)), names)
        for (i, j), count in np.ndenumerate(counts):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set(xlabel="Predicted", ylabel="True", title="Detection confusion matrix (background: missed / false positive)")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
