"""The items of a batch: found in a folder of stills (with sidecar files) or read from a manifest.

Folder convention, for a still ``NAME.png`` (any image suffix):
  ``NAME_mask.png`` (any image suffix) the mask, ``NAME_motion.npy`` a motion file,
  ``NAME.hints.txt`` arrows and anchors (see ``parse_hints``), or ``NAME.regions.json`` motion regions
  (a region file, docs/regions.md) instead of the mask and motion sidecars. Files ending ``_mask``,
  ``_importance`` or ``_amplitude`` (a region's sway amplitude image) are sidecars, not stills.
Manifest: JSON (a list of items or ``{"options": {...}, "items": [...]}``) or CSV (a header row;
columns image, name, mask, motion, hints, drift, motion_from_clip, importance, video, and any
render option name). Relative paths are relative to the manifest's folder.
No torch: the driver reads items before any engine starts.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..options import MotionSpec, Region, RenderOptions
from ..region_file import load_region_file

__all__ = ["BatchItem", "STILL_SUFFIXES", "VIDEO_FORMATS", "load_items", "parse_hints", "items_from_folder",
           "items_from_manifest"]

STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr")
VIDEO_FORMATS = ("mp4", "webm", "gif")
_SIDECAR_ENDINGS = ("_mask", "_importance", "_amplitude")
_ITEM_KEYS = {"name", "image", "mask", "motion", "regions", "hints", "anchors", "anchor_radius", "drift", "motion_from_clip",
              "importance", "video", "options"}


@dataclass(frozen=True)
class BatchItem:
    """One still to render: its inputs, its motion source (None = the batch default) and its own options."""

    name: str
    image: Path
    mask: Path | str | None = None
    importance: Path | None = None
    motion: MotionSpec | None = None
    options: dict[str, Any] = field(default_factory=dict)
    video: str | None = None
    regions: tuple[Region, ...] | None = None
    """Motion regions (a region file), instead of ``mask`` and ``motion``."""
    error: str | None = None
    """Why the item cannot render (a bad sidecar file): recorded as its failure, the batch goes on."""


def parse_hints(text: str, source: str) -> MotionSpec:
    """Arrows and anchors from a hints file: one per line, ``hint X0,Y0,X1,Y1`` / ``anchor X,Y`` /
    ``anchor_radius PX``, or bare ``X0,Y0,X1,Y1`` / ``X,Y`` as the add-on writes them (image pixels,
    commas or spaces; ``#`` starts a comment)."""
    hints: list[tuple[float, ...]] = []
    anchors: list[tuple[float, ...]] = []
    radius = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].replace(",", " ").split()
        if not line:
            continue
        word, values = line[0].lower(), line[1:]
        if word.lstrip("+-").replace(".", "", 1).isdigit():  # the add-on's form: bare x0,y0,x1,y1 / x,y
            word, values = {4: "hint", 2: "anchor"}.get(len(line), "?"), line
        try:
            numbers = tuple(float(v) for v in values)
        except ValueError:
            numbers = ()
        wanted = {"hint": 4, "arrow": 4, "anchor": 2, "anchor_radius": 1}.get(word)
        if wanted is None or len(numbers) != wanted:
            raise InputError(f"{source} line {number}: expected 'hint X0,Y0,X1,Y1', 'anchor X,Y', "
                             f"'anchor_radius PX' or bare 'X0,Y0,X1,Y1' / 'X,Y', got {raw.strip()!r}"[:300])
        if word == "anchor_radius":
            radius = numbers[0]
        else:
            (anchors if word == "anchor" else hints).append(numbers)
    if not hints:
        raise InputError(f"{source} has no 'hint X0,Y0,X1,Y1' line", hint="add at least one arrow")
    return MotionSpec(kind="hints", hints=tuple(hints), anchors=tuple(anchors), anchor_radius=radius).validate()


def items_from_folder(folder: Path) -> list[BatchItem]:
    """Every still in ``folder`` (sorted by name) with the sidecar files beside it."""
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    items = []
    for path in sorted(files.values(), key=lambda p: p.name):
        if path.suffix.lower() not in STILL_SUFFIXES or path.stem.endswith(_SIDECAR_ENDINGS):
            continue
        name = path.stem
        mask = _sidecar(files, f"{name}_mask")
        importance = _sidecar(files, f"{name}_importance")
        motion, error = None, None
        motion_file = files.get(f"{name}_motion.npy".lower())
        hints_file = files.get(f"{name}.hints.txt".lower())
        regions_file = files.get(f"{name}.regions.json".lower())
        regions = None
        try:
            if regions_file is not None:
                others = [p.name for p in (mask, motion_file, hints_file) if p is not None]
                if others:
                    raise InputError(f"both {regions_file.name} and {', '.join(others)}",
                                     hint="a region file holds every region's mask and motion; keep it alone")
                regions = load_region_file(regions_file)
            if motion_file is not None and hints_file is not None:
                raise InputError(f"both {motion_file.name} and {hints_file.name}", hint="keep one motion source")
            if motion_file is not None:
                motion = MotionSpec(kind="file", path=str(motion_file))
            elif hints_file is not None:
                motion = parse_hints(hints_file.read_text(encoding="utf-8", errors="replace"), hints_file.name)
        except InputError as exc:
            error = str(exc)
        items.append(BatchItem(name=name, image=path, mask=mask, importance=importance, motion=motion,
                               regions=regions, error=error))
    return items


def _sidecar(files: dict[str, Path], stem: str) -> Path | None:
    """The image file called ``stem`` with any still suffix, if present."""
    return next((files[stem.lower() + s] for s in STILL_SUFFIXES if stem.lower() + s in files), None)


def items_from_manifest(path: Path) -> tuple[list[BatchItem], dict[str, Any]]:
    """Items and batch-wide options from a JSON or CSV manifest."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as stream:
            rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k and (v or "").strip()}
                    for row in csv.DictReader(stream)]
        entries, common = [_csv_entry(row, path.name, i) for i, row in enumerate(rows, 2)], {}
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"manifest {path.name} is not valid JSON: {exc}") from None
        entries, common = (data, {}) if isinstance(data, list) else (data.get("items"), data.get("options", {}))
        if not isinstance(entries, list) or not isinstance(common, dict):
            raise InputError(f"manifest {path.name} needs a list of items or {{\"items\": [...], \"options\": {{}}}}")
    return [_manifest_item(entry, path.parent, f"{path.name} item {i}") for i, entry in enumerate(entries, 1)], common


def _csv_entry(row: dict[str, str], source: str, line: int) -> dict[str, Any]:
    """A CSV row as a manifest entry: options typed by their field, hints as 'x0,y0,x1,y1;...'."""
    names = {f.name: f for f in fields(RenderOptions)}
    entry: dict[str, Any] = {"options": {}}
    for key, text in row.items():
        if key in names:
            entry["options"][key] = _typed(names[key].default, text, f"{source} line {line} column {key}")
        elif key in ("hints", "anchors", "drift"):
            groups = [[_number(v, f"{source} line {line} column {key}") for v in g.split(",")]
                      for g in text.split(";") if g.strip()]
            entry[key] = groups[0] if key == "drift" and groups else groups
        elif key == "anchor_radius":
            entry[key] = _number(text, f"{source} line {line} column {key}")
        else:
            entry[key] = text
    return entry


def _typed(default: Any, text: str, where: str) -> Any:
    """``text`` converted to the type of an option's default."""
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise InputError(f"{where}: expected true or false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise InputError(f"{where}: expected an integer, got {text!r}") from None
    return _number(text, where) if isinstance(default, float) else text


def _number(text: str, where: str) -> float:
    """A float or an InputError naming ``where``."""
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{where}: expected a number, got {text!r}") from None


def _manifest_item(entry: Any, base: Path, where: str) -> BatchItem:
    """One manifest entry as a BatchItem (paths resolved against ``base``)."""
    if isinstance(entry, str):
        entry = {"image": entry}
    if not isinstance(entry, dict) or not entry.get("image"):
        raise InputError(f"{where} needs an image")
    unknown = sorted(set(entry) - _ITEM_KEYS)
    if unknown:
        raise InputError(f"{where} has unknown key(s) {', '.join(unknown)}", hint=f"known: {', '.join(sorted(_ITEM_KEYS))}")

    def resolve(value: Any) -> Path | None:
        return None if value in (None, "") else (base / str(value)).resolve()

    image = resolve(entry["image"])
    sources = [k for k in ("motion", "hints", "drift", "motion_from_clip") if entry.get(k) not in (None, "", [])]
    if len(sources) > 1:
        raise InputError(f"{where} has more than one motion source ({', '.join(sources)})")
    motion = None
    if entry.get("motion") == "auto":
        motion = MotionSpec(kind="auto")
    elif entry.get("motion"):
        motion = MotionSpec(kind="file", path=str(resolve(entry["motion"])))
    elif entry.get("hints"):
        motion = MotionSpec(kind="hints", hints=tuple(tuple(h) for h in entry["hints"]),
                            anchors=tuple(tuple(a) for a in entry.get("anchors") or ()),
                            anchor_radius=entry.get("anchor_radius"))
    elif entry.get("drift"):
        motion = MotionSpec(kind="drift", drift=tuple(entry["drift"]))
    elif entry.get("motion_from_clip"):
        motion = MotionSpec(kind="clip", path=str(resolve(entry["motion_from_clip"])))
    try:
        motion = motion.validate() if motion is not None else None
    except (InputError, TypeError) as exc:
        raise InputError(f"{where}: {exc}") from None
    mask = "auto" if entry.get("mask") == "auto" else resolve(entry.get("mask"))
    regions = None
    if entry.get("regions"):
        if sources or mask is not None:
            raise InputError(f"{where} has regions and {', '.join(sources + ['mask'] * (mask is not None))}",
                             hint="a region file holds every region's mask and motion")
        regions = load_region_file(resolve(entry["regions"]))
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise InputError(f"{where}: options must be a mapping of render options")
    return BatchItem(name=str(entry.get("name") or image.stem), image=image, mask=mask,
                     importance=resolve(entry.get("importance")), motion=motion, regions=regions,
                     options=dict(options),
                     video=entry.get("video") or None)


def load_items(source: str | Path) -> tuple[list[BatchItem], dict[str, Any]]:
    """Items (unique, plain names) and manifest-wide options from a folder or a manifest file."""
    source = Path(source).resolve()
    if source.is_dir():
        items, common = items_from_folder(source), {}
    elif source.is_file() and source.suffix.lower() in (".json", ".csv"):
        items, common = items_from_manifest(source)
    else:
        raise InputError(f"batch source {source} is neither a folder of stills nor a .json/.csv manifest")
    if not items:
        raise InputError(f"no stills in {source}", hint=f"stills end in {', '.join(STILL_SUFFIXES)}")
    seen: set[str] = set()
    for item in items:
        if Path(item.name).name != item.name or item.name.startswith(".") or item.name == "batch.json":
            raise InputError(f"item name {item.name!r} is not a plain folder name")
        if item.name in seen:
            raise InputError(f"two items are named {item.name!r}", hint="give them distinct names in the manifest")
        if item.video is not None and item.video not in VIDEO_FORMATS:
            raise InputError(f"item {item.name}: video must be one of {', '.join(VIDEO_FORMATS)}, got {item.video!r}")
        seen.add(item.name)
    return items, common
