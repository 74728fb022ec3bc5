"""TrainingHistory: keep per-step loss components and loss weights for plots (demo, ablation)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override


class TrainingHistory(Callback):
    """Record, at every optimizer step, the raw losses a module returns and its current ``loss_weights``.

    Args:
        keys: loss keys to read from the ``training_step`` output (default ``("loss_cls", "loss_reg")``).

    Attributes:
        rows: one dict per recorded batch: ``step``, each loss key, and ``w_<key>`` for each loss weight.

    Example::

        >>> history = TrainingHistory()
        >>> Trainer(callbacks=[history]).fit(module, datamodule)
        >>> history.plot("training.png")
    """

    def __init__(self, keys: Sequence[str] = ("loss_cls", "loss_reg")) -> None:
        self.keys = tuple(keys)
        self.rows: list[dict[str, float]] = []

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not isinstance(outputs, dict):
            return  # a skipped (non-finite) step
        row = {"step": float(trainer.global_step)}
        row.update({k: float(outputs[k]) for k in self.keys if k in outputs})
        row.update({f"w_{k}": float(w) for k, w in getattr(pl_module, "loss_weights", {}).items()})
        self.rows.append(row)

    def plot(self, path: str | Path, title: str = "training", smooth: int = 20) -> Path:
        """Save a PNG with the (moving-average) loss curves and, on a second axis, the loss weights."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        steps = [r["step"] for r in self.rows]
        for key in self.keys:
            values = [r.get(key, float("nan")) for r in self.rows]
            ax.plot(steps, trailing_mean(values, smooth), label=key)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (raw)")
        ax.set_yscale("log")
        weight_keys = sorted({k for r in self.rows for k in r if k.startswith("w_")})
        if weight_keys:
            ax2 = ax.twinx()
            for key in weight_keys:
                ax2.plot(steps, [r.get(key, float("nan")) for r in self.rows], "--", label=key)
            ax2.set_ylabel("loss weight")
            ax2.set_ylim(0, 1.05)
            ax2.legend(loc="upper right")
        ax.legend(loc="upper left")
        ax.set_title(title)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        return path


def trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of the last ``window`` values at each position (fewer at the start): the smoothing of the loss plots."""
    out, total, queue = [], 0.0, []
    for v in values:
        queue.append(v)
        total += v
        if len(queue) > window:
            total -= queue.pop(0)
        out.append(total / len(queue))
    return out
