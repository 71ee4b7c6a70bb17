"""Every render knob with its default and unit, and the motion source of a job.

No torch, no bpy: the protocol, the CLI and the add-on build these from plain values.
This module is the only place a default is defined (the CLI help, the wire and the
add-on's properties all read them from here).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import InputError, shown

__all__ = [
    "RenderOptions",
    "MotionSpec",
    "SwaySpec",
    "Region",
    "MAX_REGIONS",
    "MOTION_KINDS",
    "AUTO_MODES",
    "FRAME_FORMATS",
    "ENGINES",
    "DETAIL_MODES",
    "INFLOW_MODES",
    "MAX_IMAGE_SIDE",
    "MAX_FRAMES",
    "MAX_SEED",
    "MAX_PATH_CHARS",
    "ARROW_PX_PER_SPEED",
    "option_help",
]

MAX_IMAGE_SIDE = 16384
"""Largest accepted image side in pixels (the service advertises and enforces it). Stills whose
moving region does not fit the memory budget render in strips (tiles.py); a 16384-px still
needs about 10 GiB for itself, its mask and its motion before any rendering."""

MAX_FRAMES = 1200
"""Largest accepted loop length N."""

MAX_SEED = 2**63 - 1
"""Largest accepted seed (int64)."""

MAX_PATH_CHARS = 4096
"""Longest accepted path string (models folder, motion file)."""

ARROW_PX_PER_SPEED = 50.0
"""An arrow this many pixels long moves content 1 px/frame (algorithm.md §2.2)."""

FRAME_FORMATS = ("png", "png16", "exr")
ENGINES = ("loop", "stylegan")
DETAIL_MODES = ("sharp", "precise", "restore", "smooth")
INFLOW_MODES = ("texture", "smooth")
MOTION_KINDS = ("none", "hints", "file", "clip", "drift", "field", "auto", "sway")

MAX_REGIONS = 16
"""Most motion regions one still may have."""

MAX_SWAY_PX = 64.0
"""Largest sway amplitude in px (a sway is a small oscillation; larger motion is a flow)."""

MAX_SWAY_CYCLES = 64
"""Most whole oscillation cycles per loop."""
AUTO_MODES = ("sky", "fluid", "sky+fluid")


def _opt(default: Any, help_text: str, unit: str = "") -> Any:
    """A dataclass field carrying its CLI help text and unit."""
    return field(default=default, metadata={"help": help_text, "unit": unit})


@dataclass(frozen=True, kw_only=True, slots=True)
class RenderOptions:
    """How a loop is rendered; one name everywhere (CLI flag, wire key, add-on property)."""

    frames: int = _opt(60, "loop length N: number of frames in one loop", "frames")
    fps: float = _opt(30.0, "playback rate written to the manifest and video", "frames/s")
    speed: float = _opt(1.0, "multiplies the motion field (0 = still)", "x")
    levels: int = _opt(4, "Laplacian pyramid levels splatted separately; 1 = single-scale", "levels")
    detail: str = _opt("sharp", "how detail bands move: sharp (finest band by whole pixels, contrast lost to "
                                "the loop's blend restored; --once carries the sub-pixel offset as precise does), precise (as sharp, the finest band's sub-pixel offset "
                                "carried by bicubic resampling: more accurate, ~1.6x slower on a CPU), restore "
                                "(sub-pixel, contrast restored) or smooth (plain bilinear splat: softer, best PSNR)")
    inflow: str = _opt("texture", "what flows into a loop from outside the frame: texture (patches of the detail "
                                  "near the edge, the default) or smooth (detail faded out: softer, and never "
                                  "repeats a wire or a bird that touches the edge); --once always flows in smooth; "
                                  "loop engine with levels >= 2 only")
    once: bool = _opt(False, "render N frames of forward motion without looping (one-shot drift)")
    seed: int = _opt(0, "seed for any randomness (the default engine is deterministic)")
    refine_mask: bool = _opt(True, "clean the mask: fill small holes, drop small islands, snap its edge to the photo "
                                   "(never animates a pixel left unpainted, except inside filled holes)")
    snap_mask: bool = _opt(True, "with refine_mask: drop painted pixels at the mask's edge that belong to the "
                                 "unpainted side of an edge in the photo")
    min_region_frac: float = _opt(0.03, "holes and islands smaller than this fraction of the image are removed", "fraction")
    min_mask_frac: float = _opt(0.0, "a refined mask smaller than this fraction becomes all-animate (StyleCineGAN uses 0.10)", "fraction")
    feather: float = _opt(3.0, "width of the soft edge of the composite mask, inside the mask (pixels outside it never change)", "px")
    hole_threshold: float = _opt(1e-3, "splat weight below which a pixel counts as a hole and is filled", "weight")
    inpaint: bool = _opt(True, "Telea-inpaint holes that no pyramid level could cover")
    importance_scale: float = _opt(10.0, "softmax splatting: Z = scale x importance map (white wins where particles meet)", "")
    format: str = _opt("png", "frame file format: png (8-bit), png16 (16-bit PNG) or exr (float OpenEXR)")
    loops: int = _opt(1, "how many times the loop repeats in the video file", "loops")
    device: str = _opt("auto", "compute device: auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps")
    engine: str = _opt("loop", "engine: loop (no weights needed) or stylegan (needs model files)")
    models: str | None = _opt(None, "folder with model weights for the stylegan engine and auto motion/mask")
    auto_mode: str = _opt("sky+fluid", "what --motion auto and --mask auto predict: sky, fluid or sky+fluid")

    def validate(self) -> "RenderOptions":
        """Raise InputError naming the first option that is out of range; return self."""
        _check(isinstance(self.frames, int) and 1 <= self.frames <= MAX_FRAMES,
               f"frames must be an integer from 1 to {MAX_FRAMES}, got {shown(self.frames)}")
        _check(_finite(self.fps) and 0 < self.fps <= 240, f"fps must be in (0, 240], got {shown(self.fps)}")
        _check(_finite(self.speed) and self.speed >= 0, f"speed must be a finite number >= 0, got {shown(self.speed)}")
        _check(isinstance(self.levels, int) and 1 <= self.levels <= 8, f"levels must be 1 to 8, got {shown(self.levels)}")
        _check(_finite(self.min_region_frac) and 0 <= self.min_region_frac < 1,
               f"min_region_frac must be in [0, 1), got {shown(self.min_region_frac)}")
        _check(_finite(self.min_mask_frac) and 0 <= self.min_mask_frac < 1,
               f"min_mask_frac must be in [0, 1), got {shown(self.min_mask_frac)}")
        _check(isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed <= MAX_SEED,
               f"seed must be an integer from 0 to 2^63-1, got {shown(self.seed)}")
        _check(isinstance(self.once, bool) and isinstance(self.refine_mask, bool) and isinstance(self.inpaint, bool),
               "once, refine_mask and inpaint must be true or false")
        _check(_finite(self.feather) and 0 <= self.feather <= 256, f"feather must be 0 to 256 px, got {shown(self.feather)}")
        _check(_finite(self.hole_threshold) and 0 <= self.hole_threshold < 1,
               f"hole_threshold must be in [0, 1), got {shown(self.hole_threshold)}")
        _check(_finite(self.importance_scale) and 0 <= self.importance_scale <= 20,
               f"importance_scale must be 0 to 20, got {shown(self.importance_scale)}")
        _check(self.format in FRAME_FORMATS, f"format must be one of {', '.join(FRAME_FORMATS)}, got {shown(self.format)}")
        _check(isinstance(self.loops, int) and 1 <= self.loops <= 1000, f"loops must be 1 to 1000, got {shown(self.loops)}")
        _check(self.detail in DETAIL_MODES, f"detail must be one of {', '.join(DETAIL_MODES)}, got {shown(self.detail)}")
        _check(self.inflow in INFLOW_MODES, f"inflow must be one of {', '.join(INFLOW_MODES)}, got {shown(self.inflow)}")
        _check(self.engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}, got {shown(self.engine)}")
        _check(isinstance(self.device, str) and 0 < len(self.device) <= 32,
               "device must be auto, cpu, cuda, cuda:N or mps")
        _check(self.models is None or (isinstance(self.models, str) and 0 < len(self.models) <= MAX_PATH_CHARS),
               f"models must be a folder path of 1 to {MAX_PATH_CHARS} characters")
        _check(self.auto_mode in AUTO_MODES, f"auto_mode must be one of {', '.join(AUTO_MODES)}, got {shown(self.auto_mode)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain values keyed by option name (for manifests and the wire)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RenderOptions":
        """Build from plain values; unknown keys are an InputError naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"unknown render option(s): {shown(', '.join(unknown), 120, quote=False)}",
                             hint=f"known options: {', '.join(sorted(names))}")
        typed = {f.name: _typed(f.name, f.default, values[f.name]) for f in fields(cls) if f.name in values}
        return cls(**typed).validate()


def option_help(name: str) -> tuple[str, str]:
    """The (help text, unit) of a RenderOptions field."""
    for f in fields(RenderOptions):
        if f.name == name:
            return f.metadata["help"], f.metadata["unit"]
    raise KeyError(name)


@dataclass(frozen=True, kw_only=True)
class SwaySpec:
    """An oscillation in place: d(x, t) = A(x) * direction * sin(2 pi k t / N + phi(x)) (docs/engine.md).

    Convention:
        ``amplitude`` in px at the image's resolution (A tapers to 0 at the region's edge);
        ``cycles`` k whole cycles per loop of N frames, so the loop is seamless by construction;
        ``angle`` in degrees, 0 = right, 90 = up, None = along the region's arrows;
        the phase phi travels towards ``gust_angle`` (None = the way the region sways) at
        ``gust_speed`` px/frame (None = one wave across the region per cycle, 0 = the whole
        region in lockstep), plus ``noise``
        (fraction of a cycle) of smooth random phase. ``shimmer`` = water: random directions and
        phases at ``wavelength`` px instead of one direction and a travelling wave.
        ``amplitude_image`` (optional) is a grayscale image or (h, w) array of the image's aspect
        ratio (resized like a mask) that multiplies A(x): black / 0 = still, white / 1 = ``amplitude``.
    """

    amplitude: float = 2.0
    cycles: int = 1
    angle: float | None = 0.0
    gust_angle: float | None = None
    gust_speed: float | None = None
    noise: float = 0.1
    shimmer: bool = False
    wavelength: float = 12.0
    amplitude_image: str | Path | np.ndarray | None = None

    def validate(self) -> "SwaySpec":
        """Raise InputError naming the first out-of-range field; return self."""
        _check(_finite(self.amplitude) and 0 <= self.amplitude <= MAX_SWAY_PX,
               f"sway amplitude must be 0 to {MAX_SWAY_PX:g} px, got {shown(self.amplitude)}")
        _check(isinstance(self.cycles, int) and not isinstance(self.cycles, bool) and 1 <= self.cycles <= MAX_SWAY_CYCLES,
               f"sway cycles must be a whole number from 1 to {MAX_SWAY_CYCLES}, got {shown(self.cycles)}")
        _check(self.angle is None or _finite(self.angle), f"sway angle must be a finite number of degrees, got {shown(self.angle)}")
        _check(self.gust_angle is None or _finite(self.gust_angle), f"sway gust_angle must be a finite number of degrees, got {shown(self.gust_angle)}")
        _check(self.gust_speed is None or (_finite(self.gust_speed) and self.gust_speed >= 0),
               f"sway gust_speed must be >= 0 px/frame, got {shown(self.gust_speed)}")
        _check(_finite(self.noise) and 0 <= self.noise <= 1, f"sway noise must be 0 to 1 cycle, got {shown(self.noise)}")
        _check(isinstance(self.shimmer, bool), "sway shimmer must be true or false")
        _check(_finite(self.wavelength) and 2 <= self.wavelength <= 4096,
               f"sway wavelength must be 2 to 4096 px, got {shown(self.wavelength)}")
        image = self.amplitude_image
        _check(image is None or (isinstance(image, (str, Path)) and len(str(image)) > 0)
               or (isinstance(image, np.ndarray) and image.ndim in (2, 3)),
               f"sway amplitude_image must be an image file name or an (h, w) array, got {shown(image)}")
        return self

    def describe(self) -> dict[str, Any]:
        """Plain values by field name (manifests, the wire); amplitude_image only when set ("array" for one)."""
        plain = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "amplitude_image"}
        if self.amplitude_image is not None:  # only then: a backend older than it would refuse the key
            image = self.amplitude_image
            plain["amplitude_image"] = "array" if isinstance(image, np.ndarray) else str(image)
        return plain


@dataclass(frozen=True, kw_only=True)
class MotionSpec:
    """Where the motion comes from; exactly one source per job.

    Convention:
        Image pixel coordinates, x right, y down, origin at the top-left pixel centre.
        ``hints`` are arrows (x0, y0, x1, y1); their length / ARROW_PX_PER_SPEED is the
        speed in px/frame. ``drift`` is (angle in degrees, speed in px/frame) with 0 deg =
        right and 90 deg = up. ``field`` is a (2, h, w) float32 array in px/frame at width
        w, channel 0 = x, 1 = y; it is resized and rescaled to the image like a motion file.
        ``auto`` predicts the motion from the image with the learned motion generator
        (needs RenderOptions.models). ``sway`` oscillates in place (``sway`` holds how; its
        hints, if any, give the direction); any other kind with ``sway`` set oscillates on top
        of its flow (e.g. a shimmer on flowing water).
    """

    kind: Literal["none", "hints", "file", "clip", "drift", "field", "auto", "sway"] = "none"
    hints: tuple[tuple[float, float, float, float], ...] = ()
    anchors: tuple[tuple[float, float], ...] = ()
    anchor_radius: float | None = None
    path: str | None = None
    drift: tuple[float, float] | None = None
    field: np.ndarray | None = None
    sway: SwaySpec | None = None

    def validate(self) -> "MotionSpec":
        """Raise InputError when the source is incomplete or holds non-finite numbers."""
        _check(self.kind in MOTION_KINDS, f"motion kind must be one of {', '.join(MOTION_KINDS)}, got {self.kind!r}")
        if self.kind == "hints":
            _check(len(self.hints) > 0, "motion from arrows needs at least one arrow (--hint X0,Y0,X1,Y1)")
        for arrow in self.hints:
            _check(len(arrow) == 4 and all(_finite(v) for v in arrow),
                   f"an arrow needs four finite numbers X0,Y0,X1,Y1, got {arrow!r}")
        for anchor in self.anchors:
            _check(len(anchor) == 2 and all(_finite(v) for v in anchor),
                   f"an anchor needs two finite numbers X,Y, got {anchor!r}")
        if self.anchor_radius is not None:
            _check(_finite(self.anchor_radius) and self.anchor_radius > 0,
                   f"anchor_radius must be > 0 px, got {self.anchor_radius!r}")
        if self.kind in ("file", "clip"):
            _check(bool(self.path), f"motion kind {self.kind} needs a path")
        if self.kind == "drift":
            _check(self.drift is not None and len(self.drift) == 2 and all(_finite(v) for v in self.drift),
                   "drift needs ANGLE_DEG,SPEED with finite numbers")
            _check(self.drift[1] >= 0, f"drift speed must be >= 0 px/frame, got {self.drift[1]!r}")
        if self.kind == "field":
            _check(self.field is not None, "motion kind field needs an array")
        if self.kind == "sway":
            _check(self.sway is not None, "motion kind sway needs a SwaySpec (amplitude, cycles, angle)")
            _check(self.sway.angle is not None or len(self.hints) > 0,
                   "a sway along the arrows (angle None) needs at least one arrow")
        if self.sway is not None:
            _check(isinstance(self.sway, SwaySpec), f"sway must be a SwaySpec, got {type(self.sway).__name__}")
            self.sway.validate()
        return self

    @property
    def has_flow(self) -> bool:
        """True when the source makes content flow (a sway alone only oscillates)."""
        return self.kind not in ("none", "sway")

    def check_inside(self, height: int, width: int) -> "MotionSpec":
        """Raise InputError when an arrow starts outside a (height, width) image: it would move it all."""
        for arrow in self.hints:
            x0, y0 = arrow[0], arrow[1]
            # pixel centres at integer coordinates: the image covers -0.5 .. side - 0.5
            if not (-0.5 <= x0 <= width - 0.5 and -0.5 <= y0 <= height - 0.5):
                raise InputError(f"the arrow {','.join(f'{v:g}' for v in arrow)} starts at ({x0:g}, {y0:g}), "
                                 f"outside the {width}x{height} image",
                                 hint=f"arrows are in image pixels: start them inside 0..{width - 1}, 0..{height - 1}")
        return self

    def describe(self) -> dict[str, Any]:
        """Plain description for manifests (no arrays)."""
        return {
            "kind": self.kind,
            "hints": [list(h) for h in self.hints],
            "anchors": [list(a) for a in self.anchors],
            "anchor_radius": self.anchor_radius,
            "path": self.path,
            "drift": list(self.drift) if self.drift is not None else None,
            "field_shape": list(self.field.shape) if self.field is not None else None,
            "sway": self.sway.describe() if self.sway is not None else None,
        }


@dataclass(frozen=True, kw_only=True)
class Region:
    """One motion region of a still: where (its mask) and how (its motion, its speed).

    Convention:
        ``mask`` is a grayscale image or (h, w) array of any size (resized to the image), white / 1
        = this region; None = the whole image. ``speed`` multiplies this region's flow and sway
        amplitude (RenderOptions.speed multiplies every region's). A region's motion is zero
        outside its mask; arrows and anchors reach only pixels inside it.
    """

    mask: str | Path | np.ndarray | None = None
    motion: MotionSpec = MotionSpec()
    speed: float = 1.0

    def validate(self) -> "Region":
        """Raise InputError when the motion or the speed is invalid; return self."""
        _check(_finite(self.speed) and self.speed >= 0, f"region speed must be a finite number >= 0, got {shown(self.speed)}")
        _check(isinstance(self.motion, MotionSpec), f"region motion must be a MotionSpec, got {type(self.motion).__name__}")
        _check(self.motion.kind != "auto", "motion auto predicts one field for the whole still; it cannot be a region's")
        self.motion.validate()
        return self

    def describe(self) -> dict[str, Any]:
        """Plain description for manifests (no arrays)."""
        return {"mask": str(self.mask) if isinstance(self.mask, (str, Path)) else None if self.mask is None else "array",
                "motion": self.motion.describe(), "speed": self.speed}


def _typed(name: str, default: Any, value: Any) -> Any:
    """``value`` checked to have the option's exact type (bool is not int; floats accept ints)."""
    kind = type(default) if default is not None else str
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise InputError(f"option {name} must be a finite number, got {shown(value)}")
        if ok:
            value = float(value)
    else:
        ok = isinstance(value, str) or (default is None and value is None)
    if not ok:
        raise InputError(f"option {name} has the wrong type ({type(value).__name__})",
                         hint=f"expected {'a string' if kind is str else kind.__name__}")
    return value


def _finite(value: Any) -> bool:
    """True for a real finite number (bools excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(condition: bool, message: str) -> None:
    """Raise InputError(message) unless condition holds."""
    if not condition:
        raise InputError(message)
