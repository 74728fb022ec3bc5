"""The demo's results as a plain-text table."""

from __future__ import annotations

from typing import Any


def format_table(metrics: dict[str, Any]) -> str:
    """A small plain-text table of the demo's results."""
    lines = [
        "",
        f"{'metric':<28}{'value':>10}",
        f"{'mAP@[.5:.95]':<28}{metrics['map']:>10.3f}",
        f"{'mAP@0.5':<28}{metrics['map_50']:>10.3f}",
        f"{'mAP@0.75':<28}{metrics['map_75']:>10.3f}",
    ]
    for name, ap in metrics["ap50_per_class_voc"].items():
        lines.append(f"{'AP@0.5 ' + name:<28}{ap:>10.3f}")
    weights = metrics.get("loss_weights", {})
    lines.append(f"{'final ALWA weight (cls)':<28}{weights.get('loss_cls', 1.0):>10.3f}")
    lines.append(f"{'optimizer steps':<28}{metrics.get('steps', 0):>10d}")
    return "\n".join(lines)
