"""StyleGAN deep-feature engine (``--engine stylegan``): generator, encoder, inversion, MSDFW, models folder.

Importing the package is cheap: submodules load torch only when imported themselves.
``models_dir`` and ``commands`` need no torch. See docs/stylegan.md.
"""
from __future__ import annotations

__all__: list[str] = []
