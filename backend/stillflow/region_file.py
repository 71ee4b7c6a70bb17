"""Motion regions as plain values: the region file (JSON), the CLI's --region and the wire's "regions".

One plain form, read and written here only:

    {"mask": "sky_mask.png", "speed": 1.0,
     "motion": {"kind": "hints", "hints": [[x0, y0, x1, y1]], "anchors": [[x, y]], "anchor_radius": null,
                "sway": {"amplitude": 2.0, "cycles": 1, "angle": 0.0, "shimmer": false, ...,
                         "amplitude_image": "tree_amplitude.png"}}}

``kind`` is one of options.MOTION_KINDS except auto and field; ``drift`` is [angle_deg, px/frame];
``path`` names a motion file (kind file) or a clip (kind clip); the optional ``amplitude_image``,
a grayscale image multiplying the sway's amplitude. A region file holds a list of
these, or {"regions": [...]}; its relative paths are relative to the file's folder.
No torch, no bpy: the add-on's link and the batch driver read it too.
"""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from .errors import InputError, shown
from .options import MAX_REGIONS, MotionSpec, Region, SwaySpec

__all__ = ["REGION_KINDS", "sway_from_plain", "motion_from_plain", "motion_to_plain", "region_from_plain",
           "region_to_plain", "load_region_file", "parse_region_arg"]

REGION_KINDS = ("none", "hints", "file", "clip", "drift", "sway")
"""Motion kinds a region may name in plain form (auto predicts a whole still; field arrays travel as parts)."""

_SWAY_FIELDS = {f.name: f for f in fields(SwaySpec)}
_SWAY_OPTIONAL = ("angle", "gust_angle", "gust_speed")
"""Sway fields that may be null (along the arrows, the way it sways, one wave across the region)."""
_MOTION_KEYS = {"kind", "hints", "anchors", "anchor_radius", "path", "drift", "sway"}


def _numbers(value: Any, count: int, what: str) -> tuple[float, ...]:
    """A list of ``count`` numbers, or InputError naming ``what``."""
    if (not isinstance(value, (list, tuple)) or len(value) != count
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise InputError(f"{what} must be a list of {count} numbers, got {shown(value)}")
    return tuple(float(v) for v in value)


def sway_from_plain(values: Any, where: str, base: Path | None = None) -> SwaySpec:
    """A SwaySpec from its plain dict (missing keys keep their defaults; ``base`` resolves an amplitude_image)."""
    if not isinstance(values, dict):
        raise InputError(f"{where}: sway must be an object of {', '.join(_SWAY_FIELDS)}, got {shown(values)}")
    unknown = sorted(set(values) - set(_SWAY_FIELDS))
    if unknown:
        raise InputError(f"{where}: unknown sway key(s) {', '.join(unknown)}", hint=f"known: {', '.join(_SWAY_FIELDS)}")
    typed: dict[str, Any] = {}
    for name, value in values.items():
        if name == "amplitude_image":
            ok = isinstance(value, str) and len(value) > 0
            value = str(base / value) if ok and base is not None and not Path(value).is_absolute() else value
        elif name == "shimmer":
            ok = isinstance(value, bool)
        elif name == "cycles":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif value is None:
            ok = name in _SWAY_OPTIONAL
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        if not ok:
            raise InputError(f"{where}: sway {name} has the wrong type ({type(value).__name__})")
        typed[name] = value
    try:
        return SwaySpec(**typed).validate()
    except InputError as error:
        raise InputError(f"{where}: {error}") from None


def motion_from_plain(values: Any, where: str, base: Path | None = None) -> MotionSpec:
    """A validated MotionSpec from its plain dict; ``base`` resolves a relative ``path``."""
    if not isinstance(values, dict):
        raise InputError(f"{where}: motion must be an object with a kind, got {shown(values)}")
    unknown = sorted(set(values) - _MOTION_KEYS)
    if unknown:
        raise InputError(f"{where}: unknown motion key(s) {', '.join(unknown)}",
                         hint=f"known: {', '.join(sorted(_MOTION_KEYS))}")
    kind = values.get("kind", "none")
    if kind not in REGION_KINDS:
        raise InputError(f"{where}: motion kind must be one of {', '.join(REGION_KINDS)}, got {shown(kind)}")
    hints = values.get("hints") or []
    anchors = values.get("anchors") or []
    if not isinstance(hints, list) or not isinstance(anchors, list):
        raise InputError(f"{where}: hints and anchors must be lists")
    path = values.get("path")
    if path is not None:
        if not isinstance(path, str) or not path:
            raise InputError(f"{where}: path must be a file name, got {shown(path)}")
        path = str(base / path) if base is not None and not Path(path).is_absolute() else path
    radius = values.get("anchor_radius")
    if radius is not None and (not isinstance(radius, (int, float)) or isinstance(radius, bool)):
        raise InputError(f"{where}: anchor_radius must be a number of px, got {shown(radius)}")
    spec = MotionSpec(kind=kind, hints=tuple(_numbers(h, 4, f"{where}: an arrow") for h in hints),
                      anchors=tuple(_numbers(a, 2, f"{where}: an anchor") for a in anchors),
                      anchor_radius=None if radius is None else float(radius), path=path,
                      drift=(_numbers(values["drift"], 2, f"{where}: drift") if values.get("drift") is not None
                             else None),
                      sway=sway_from_plain(values["sway"], where, base) if values.get("sway") is not None else None)
    try:
        return spec.validate()
    except InputError as error:
        raise InputError(f"{where}: {error}") from None


def motion_to_plain(spec: MotionSpec) -> dict[str, Any]:
    """The plain dict of a MotionSpec (no arrays: kind field and auto have no plain form)."""
    if spec.kind not in REGION_KINDS:
        raise InputError(f"a region's motion kind {spec.kind} has no plain form",
                         hint=f"use one of {', '.join(REGION_KINDS)}")
    plain: dict[str, Any] = {"kind": spec.kind}
    if spec.hints:
        plain["hints"] = [list(h) for h in spec.hints]
    if spec.anchors:
        plain["anchors"] = [list(a) for a in spec.anchors]
    if spec.anchor_radius is not None:
        plain["anchor_radius"] = spec.anchor_radius
    if spec.path is not None:
        plain["path"] = spec.path
    if spec.drift is not None:
        plain["drift"] = list(spec.drift)
    if spec.sway is not None:
        plain["sway"] = spec.sway.describe()
    return plain


def region_from_plain(values: Any, where: str, base: Path | None = None, *, mask: Any = None) -> Region:
    """A validated Region from its plain dict; ``mask`` (an array from the wire) replaces a mask path."""
    if not isinstance(values, dict):
        raise InputError(f"{where} must be an object with mask, motion and speed, got {shown(values)}")
    unknown = sorted(set(values) - {"mask", "motion", "speed"})
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}", hint="known: mask, motion, speed")
    if mask is None and values.get("mask") is not None:
        if not isinstance(values["mask"], str) or not values["mask"]:
            raise InputError(f"{where}: mask must be an image file name, got {shown(values['mask'])}")
        mask = values["mask"] if base is None or Path(values["mask"]).is_absolute() else str(base / values["mask"])
    speed = values.get("speed", 1.0)
    if not isinstance(speed, (int, float)) or isinstance(speed, bool):
        raise InputError(f"{where}: speed must be a number, got {shown(speed)}")
    try:
        return Region(mask=mask, motion=motion_from_plain(values.get("motion", {}), where, base),
                      speed=float(speed)).validate()
    except InputError as error:
        raise InputError(str(error) if str(error).startswith(where) else f"{where}: {error}") from None


def region_to_plain(region: Region) -> dict[str, Any]:
    """The plain dict of a Region; an array mask is left out (it travels as a part)."""
    plain: dict[str, Any] = {"motion": motion_to_plain(region.motion), "speed": region.speed}
    if isinstance(region.mask, (str, Path)):
        plain["mask"] = str(region.mask)
    return plain


def load_region_file(path: str | Path) -> tuple[Region, ...]:
    """The regions of a JSON region file (a list, or {"regions": [...]}); paths relative to its folder."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read the region file {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"the region file {path.name} is not valid JSON: {error}",
                         hint='write a list of {"mask": ..., "motion": {"kind": ...}} objects') from None
    items = data.get("regions") if isinstance(data, dict) else data
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_REGIONS:
        raise InputError(f"the region file {path.name} must hold a list of 1 to {MAX_REGIONS} regions")
    return tuple(region_from_plain(item, f"{path.name} region {index + 1}", path.parent)
                 for index, item in enumerate(items))


def parse_region_arg(text: str) -> Region:
    """A Region from the CLI's ``MASK:SOURCE[:speed=S]``.

    SOURCE is ``hints=FILE`` (arrows and anchors, one per line), ``drift=ANGLE,SPEED``,
    ``sway=AMP,CYCLES,ANGLE``, ``shimmer=AMP,CYCLES``, ``motion=FILE.npy`` or ``clip=PATH``;
    a region may also add a ``sway=``/``shimmer=`` on top of another source (water that flows and ripples),
    and ``amplitude_image=FILE`` to a sway or shimmer (a grayscale image multiplying its amplitude).
    """
    parts = text.split(":")
    keyed = []
    while parts and "=" in parts[-1]:
        keyed.insert(0, parts.pop())
    mask = ":".join(parts)
    if not mask or not keyed:
        raise InputError(f"--region needs MASK:SOURCE, e.g. sky.png:drift=0,1 or trees.png:sway=2,1,0; got {text!r}")
    motion: dict[str, Any] = {"kind": "none"}
    speed = 1.0
    amplitude_image = None
    for item in keyed:
        key, _, value = item.partition("=")
        try:
            numbers = [float(v) for v in value.split(",")] if key in ("drift", "sway", "shimmer", "speed") else []
        except ValueError:
            raise InputError(f"--region {key}= needs comma-separated numbers, got {value!r}") from None
        if key == "speed" and len(numbers) == 1:
            speed = numbers[0]
        elif key == "drift" and len(numbers) == 2:
            motion.update(kind="drift", drift=numbers)
        elif key in ("sway", "shimmer") and len(numbers) == (3 if key == "sway" else 2):
            sway: dict[str, Any] = {"amplitude": numbers[0], "cycles": int(numbers[1])}
            if numbers[1] != int(numbers[1]):
                raise InputError(f"--region {key}= cycles must be a whole number, got {numbers[1]:g}")
            sway.update(angle=numbers[2]) if key == "sway" else sway.update(shimmer=True)
            motion["sway"] = sway
            if motion["kind"] == "none":
                motion["kind"] = "sway"
        elif key == "hints" and value:
            from .batch.items import parse_hints

            try:
                text_of_hints = Path(value).read_text(encoding="utf-8", errors="replace")
            except OSError as error:
                raise InputError(f"cannot read the hints file {value}: {error.strerror or error}") from None
            spec = parse_hints(text_of_hints, Path(value).name)
            motion.update(kind="hints", hints=[list(h) for h in spec.hints], anchors=[list(a) for a in spec.anchors])
        elif key in ("motion", "clip") and value:
            motion.update(kind="file" if key == "motion" else "clip", path=value)
        elif key == "amplitude_image" and value:
            amplitude_image = value
        else:
            raise InputError(f"--region: {item!r} is not hints=FILE, drift=ANGLE,SPEED, sway=AMP,CYCLES,ANGLE, "
                             "shimmer=AMP,CYCLES, amplitude_image=FILE, motion=FILE.npy, clip=PATH or speed=S")
    if motion["kind"] == "none":
        raise InputError(f"--region {text!r} has no motion", hint="add e.g. :drift=0,1 or :sway=2,1,0")
    if amplitude_image is not None:
        if "sway" not in motion:
            raise InputError(f"--region {mask}: amplitude_image= scales a sway; this region has none",
                             hint="add :sway=AMP,CYCLES,ANGLE or :shimmer=AMP,CYCLES")
        motion["sway"]["amplitude_image"] = amplitude_image
    return region_from_plain({"mask": mask, "motion": motion, "speed": speed}, f"--region {mask}")
