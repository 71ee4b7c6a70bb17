"""The models folder: which weight files Stillflow looks for, where, and what each option needs.

Stillflow never downloads or bundles weights (algorithm.md §12); the user places them in a
folder passed as ``--models DIR``. Every file may also be a ``.safetensors`` twin. The
StyleCineGAN ``pretrained_models`` layout is accepted as an alternative location.
No torch: the service's ``hello`` and ``stillflow models check`` only look at files.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelMissing

__all__ = ["ModelFile", "MODEL_FILES", "OPTION_NEEDS", "MASK_ENSEMBLE", "find_model", "require_model",
           "require_models_dir", "describe_models"]

log = logging.getLogger(__name__)

_RELEASE = "the StyleCineGAN release (github.com/jeolpyeoni/StyleCineGAN README, pretrained checkpoints)"
_UNRELEASED = "not published by the StyleCineGAN authors; train it yourself or ask them"


@dataclass(frozen=True)
class ModelFile:
    """One weights file: its role, the paths tried inside the models folder, and where to get it."""

    key: str
    what: str
    paths: tuple[str, ...]
    source: str

    def candidates(self) -> tuple[str, ...]:
        """Every accepted relative path: each name plus its .safetensors twin."""
        out: list[str] = []
        for rel in self.paths:
            stem = rel[: -len(".pth.tar")] if rel.endswith(".pth.tar") else rel.rsplit(".", 1)[0]
            out += [rel, stem + ".safetensors"]
        return tuple(dict.fromkeys(out))


MASK_ENSEMBLE = 10
"""Number of DatasetGAN pixel classifiers voting in ``--mask auto``."""

MODEL_FILES: dict[str, ModelFile] = {m.key: m for m in [
    ModelFile("generator", "StyleGAN2 1024 px generator (rosinality checkpoint with g_ema)",
              ("stylegan2/sg2-lhq-1024.pt", "stylegan2-pytorch/sg2-lhq-1024.pt"),
              f"{_RELEASE}: pretrained_models/stylegan2-pytorch/sg2-lhq-1024.pt"),
    ModelFile("mean_latent", "mean w of the generator (one 512-value tensor)",
              ("stylegan2/sg2-lhq-1024-mean.pt", "stylegan2-pytorch/sg2-lhq-1024-mean.pt"),
              f"{_RELEASE}: pretrained_models/stylegan2-pytorch/sg2-lhq-1024-mean.pt"),
    ModelFile("encoder", "Feature-Style encoder for D10 (k = 10)",
              ("encoder/enc.pth.tar", "logs/lhq_k10/enc.pth.tar"),
              f"{_RELEASE}: pretrained_models/logs/lhq_k10/enc.pth.tar"),
    ModelFile("flow_sky", "pix2pixHD motion generator, sky model",
              ("img2flow_sky/latest_net_G.pth",), _UNRELEASED),
    ModelFile("flow_fluid", "pix2pixHD motion generator, fluid model",
              ("img2flow_fluid/latest_net_G.pth",), _UNRELEASED),
    *[ModelFile(f"mask_{i}", f"DatasetGAN pixel classifier {i} of {MASK_ENSEMBLE}",
                (f"datasetgan/best_model_number_{i}.pth",), _UNRELEASED)
      for i in range(MASK_ENSEMBLE)],
]}

_MASK_KEYS = tuple(f"mask_{i}" for i in range(MASK_ENSEMBLE))

OPTION_NEEDS: dict[str, dict[str, tuple[str, ...]]] = {
    "engine stylegan": {"required": ("generator",), "optional": ("mean_latent", "encoder")},
    "motion auto sky": {"required": ("flow_sky",), "optional": ()},
    "motion auto fluid": {"required": ("flow_fluid",), "optional": ()},
    "mask auto": {"required": ("generator", *_MASK_KEYS), "optional": ("mean_latent", "encoder")},
}
"""What each option needs from the models folder (optional files change how it works, not whether)."""


def find_model(models_dir: str | Path | None, key: str) -> Path | None:
    """Path of the first present candidate of model ``key``, or None."""
    if models_dir is None:
        return None
    root = Path(models_dir)
    for rel in MODEL_FILES[key].candidates():
        if (root / rel).is_file():
            return root / rel
    return None


def require_models_dir(models_dir: str | Path | None, purpose: str) -> Path:
    """The models folder as a Path, or ModelMissing when none was given or it does not exist."""
    if models_dir is None or str(models_dir) == "":
        raise ModelMissing(f"{purpose} needs model weights but no models folder was given",
                           hint="pass --models DIR (see docs/stylegan.md for the files it must hold)")
    root = Path(models_dir).expanduser()
    if not root.is_dir():
        raise ModelMissing(f"models folder {root} does not exist",
                           hint="create it and place the weight files listed by 'stillflow models check DIR'")
    return root


def require_model(models_dir: str | Path | None, key: str, purpose: str) -> Path:
    """Path of model ``key``, or ModelMissing naming the expected file and where to get it."""
    root = require_models_dir(models_dir, purpose)
    found = find_model(root, key)
    if found is None:
        spec = MODEL_FILES[key]
        raise ModelMissing(f"{purpose} needs the {spec.what}: expected {root / spec.paths[0]} "
                           f"(or {Path(spec.candidates()[1]).name})", hint=f"where to get it: {spec.source}")
    return found


def describe_models(models_dir: str | Path | None) -> dict[str, Any]:
    """Plain description of a models folder: each file present or missing, each option available or not.

    Returns:
        {"path", "exists", "files": {key: {"present", "path", "expected", "what", "source"}},
         "options": {name: {"available", "missing", "optional_missing", "mode"}}}; plain values only.
    """
    root = Path(models_dir).expanduser() if models_dir else None
    exists = bool(root and root.is_dir())
    files: dict[str, dict[str, Any]] = {}
    for key, spec in MODEL_FILES.items():
        found = find_model(root, key) if exists else None
        files[key] = {"present": found is not None, "path": str(found) if found else None,
                      "expected": spec.paths[0], "what": spec.what, "source": spec.source}
    options: dict[str, dict[str, Any]] = {}
    for name, needs in OPTION_NEEDS.items():
        missing = [k for k in needs["required"] if not files[k]["present"]]
        optional_missing = [k for k in needs["optional"] if not files[k]["present"]]
        mode = ""
        if name in ("engine stylegan", "mask auto"):
            mode = "encoder" if files["encoder"]["present"] else "optimisation"
        options[name] = {"available": not missing, "missing": missing, "optional_missing": optional_missing,
                         "mode": mode}
    return {"path": str(root) if root else None, "exists": exists, "files": files, "options": options}
