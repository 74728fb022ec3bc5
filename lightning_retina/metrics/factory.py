"""Which mAP metric a RetinaNetModule evaluates with (COCO or VOC), what it is fed, and the keys it is logged under."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec

from torch import Tensor
from torchmetrics import Metric

from lightning_retina.metrics.coco import COCOMeanAveragePrecision
from lightning_retina.metrics.voc import VOCMeanAveragePrecision

METRICS = ("coco", "voc", "voc07")
#: The scalars of ``metric.compute()`` that are logged (COCOeval's ``stats`` order; VOC has ``map`` and ``map_50``).
LOG_KEYS = (
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip


def coco_backend() -> str:
    """``"faster_coco_eval"`` when installed (several times faster, same AP), else ``"pycocotools"``."""
    return "faster_coco_eval" if find_spec("faster_coco_eval") is not None else "pycocotools"


def build_metric(kind: str, class_metrics: bool = False) -> Metric:
    """A fresh detection metric.

    Args:
        kind: ``"coco"`` (:class:`COCOMeanAveragePrecision`: torchmetrics' AP@[.5:.95], DDP-safe with uneven
            shards), ``"voc"`` (VOC devkit AP@0.5, area under the interpolated PR curve) or ``"voc07"`` (VOC2007
            11-point AP@0.5).
        class_metrics: also compute per-class AP (COCO: slower).

    Raises:
        ValueError: for an unknown kind.
    """
    if kind == "coco":
        return COCOMeanAveragePrecision(
            box_format="xyxy", iou_type="bbox", class_metrics=class_metrics, backend=coco_backend()
        )
    if kind in ("voc", "voc07"):
        return VOCMeanAveragePrecision(iou_threshold=0.5, use_07_metric=kind == "voc07")
    raise ValueError(f"Unknown metric {kind!r}; expected one of {METRICS} or None")


def metric_target(target: dict[str, Tensor]) -> dict[str, Tensor]:
    """The ground truth a metric needs: boxes and labels, plus ``iscrowd`` / ``difficult`` / ``area`` when present.

    ``area`` (COCO's annotation area, ``float[M]``) decides small / medium / large as in pycocotools' ``COCOeval``;
    without it the box area is used.

    VOC ``difficult`` objects become COCO ``iscrowd`` regions for the COCO metric (neither found nor missed), as
    the VOC devkit treats them.
    """
    out = {k: target[k] for k in ("boxes", "labels", "iscrowd", "difficult", "area") if k in target}
    if "difficult" in out and "iscrowd" not in out:
        out["iscrowd"] = out["difficult"]
    return out


def compute_for_logging(
    metric: Metric, prefix: str, class_names: Sequence[str] | None = None
) -> dict[str, Tensor]:
    """``metric.compute()`` as :func:`metric_log_dict` gives it, then ``metric.reset()``.

    Every process must call it (torchmetrics syncs inside ``compute``), so no rank waits on a collective alone.
    """
    results = metric.compute()
    metric.reset()
    return metric_log_dict(results, prefix, class_names)


def metric_log_dict(
    results: dict[str, Tensor], prefix: str, class_names: Sequence[str] | None = None
) -> dict[str, Tensor]:
    """The values of ``metric.compute()`` to log, under ``{prefix}/{key}``.

    Args:
        results: what :func:`build_metric`'s metric returns from ``compute()``.
        prefix: ``"val"`` or ``"test"``.
        class_names: the names of labels ``0..K-1``; given (per-class metrics on), each class's AP is added as
            ``{prefix}/map_per_class/{name}`` (a label without a name uses its number). Classes whose AP is
            undefined (``-1``: no ground truth) are left out, as they are of the mean.

    Returns:
        ``{key: 0-d tensor}``: the :data:`LOG_KEYS` scalars in ``results``, then the per-class APs.
    """
    out = {f"{prefix}/{k}": results[k].reshape(()) for k in LOG_KEYS if k in results and results[k].numel() == 1}
    per_class, classes = results.get("map_per_class"), results.get("classes")
    if class_names is None or per_class is None or classes is None or per_class.numel() != classes.numel():
        return out  # torchmetrics returns map_per_class = [-1] when class_metrics is off
    for label, value in zip(classes.tolist(), per_class.reshape(-1)):
        if value >= 0:
            name = class_names[label] if 0 <= label < len(class_names) else str(label)
            out[f"{prefix}/map_per_class/{name}"] = value
    return out
