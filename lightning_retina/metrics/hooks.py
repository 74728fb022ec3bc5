"""The evaluation-epoch hooks that log a module's mAP metrics, shared by RetinaNetModule and TorchvisionDetector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning_retina.metrics.factory import compute_for_logging


class LogsEvaluationMetrics:
    """Mixin for a ``LightningModule`` with ``val_metric`` and ``test_metric`` (each a metric or ``None``; put the
    mixin before ``LightningModule`` in the bases): at the end of a validation / test epoch it logs
    :func:`~lightning_retina.metrics.compute_for_logging` of the metric as ``val/...`` / ``test/...`` and resets it.
    Every rank computes (torchmetrics syncs inside ``compute``), so no rank waits on a collective alone."""

    val_metric: Any
    test_metric: Any

    def metric_class_names(self) -> Sequence[str] | None:
        """The class names to log per-class AP under (``.../map_per_class/<name>``), or ``None`` for none."""
        return None

    def on_validation_epoch_end(self) -> None:
        self._log_metric("val", self.val_metric)

    def on_test_epoch_end(self) -> None:
        self._log_metric("test", self.test_metric)

    def _log_metric(self, prefix: str, metric: Any) -> None:
        if metric is None:
            return
        logged = compute_for_logging(metric, prefix, self.metric_class_names())
        self.log_dict(logged, sync_dist=True)  # type: ignore[attr-defined]
