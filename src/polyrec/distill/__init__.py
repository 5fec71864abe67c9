"""Knowledge distillation: a large teacher run into a small student (`polyrec distill`)."""

from .run import distill

__all__ = ["distill"]
