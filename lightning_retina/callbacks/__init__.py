"""Lightning callbacks: ``ALWA`` (adaptive loss weight adjustment for any detector), ``TrainingHistory``
(per-step losses and loss weights for plots), ``TimeBudgetLR`` (a cosine lr schedule over a wall-clock budget),
``COCOPredictionWriter`` (predict / test detections as a COCO results file), ``EvaluationImages`` (validation images
with boxes drawn, to image loggers) and ``EvaluationPlots`` (PR curves and a confusion matrix as PNGs after
``validate`` / ``test``)."""

from lightning_retina.callbacks.alwa import ALWA
from lightning_retina.callbacks.evaluation_images import EvaluationImages
from lightning_retina.callbacks.evaluation_plots import EvaluationPlots
from lightning_retina.callbacks.history import TrainingHistory
from lightning_retina.callbacks.prediction_writer import COCOPredictionWriter
from lightning_retina.callbacks.time_budget import TimeBudgetLR

__all__ = ["ALWA", "COCOPredictionWriter", "EvaluationImages", "EvaluationPlots", "TrainingHistory", "TimeBudgetLR"]
