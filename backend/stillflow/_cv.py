"""OpenCV, imported in one place with the thread count the engine expects."""
from __future__ import annotations

import cv2

# The engine parallelises its own loops; OpenCV's pool would oversubscribe two cores.
cv2.setNumThreads(2)

__all__ = ["cv2"]
