"""Lightning callbacks: ``ALWA`` (adaptive loss weight adjustment for any detector)."""

from lightning_retina.callbacks.alwa import ALWA

__all__ = ["ALWA"]
