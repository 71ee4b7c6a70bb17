"""One batch item as a task: its resolved inputs and options, its input hash, whether its result is
already there, and rendering it (the function every executor runs).

Only ``render_task`` imports the engine (torch), inside the worker that runs it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from ..errors import Cancelled, InputError, StillflowError
from ..io.headers import check_still_file
from ..options import MotionSpec, Region, RenderOptions
from .items import BatchItem

__all__ = ["Task", "Outcome", "plan_task", "input_key", "is_done", "render_task", "one_line", "region_files"]

_HASH_CHUNK = 1 << 20
_KEY_VERSION = 2
"""Bump when the key's recipe changes (every result then renders again). 2: numbers hashed as floats."""
_AMPLITUDE_READING = "channel mean"
"""How an amplitude image file's pixels read (io.images.load_amplitude_file), in the key of a task that has one:
results from an earlier reading (channel 0) render again, the others keep their key."""
_SHIMMER_MODEL = "plane waves, detail in place"
"""How a shimmer is rendered (stages/sway.py, stages/sway_warp.py), in the key of a task that has one: results
of the earlier shimmer (noise every quarter wavelength, detail stepping) render again, the others keep their key."""


@dataclass(frozen=True)
class Task:
    """An item ready to render: merged options, its motion source and where its result goes."""

    name: str
    image: str
    mask: str | None
    importance: str | None
    motion: MotionSpec
    options: RenderOptions
    out_dir: str
    video: str | None
    key: str
    regions: tuple[Region, ...] = ()
    """Motion regions instead of ``mask`` and ``motion`` (then kind none)."""


@dataclass
class Outcome:
    """What became of one item."""

    name: str
    status: Literal["done", "skipped", "failed", "cancelled", "not run"]
    seconds: float = 0.0
    cause: str | None = None
    node: str | None = None
    """Where it rendered (Ray: the node's address), when not on the driver's machine."""
    retries: int = 0
    """Times it was started again after its worker died."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values for batch.json."""
        return {**dataclasses.asdict(self), "seconds": round(self.seconds, 3)}


def one_line(exc: BaseException) -> str:
    """A failure as one line: the StillflowError message, else the exception's type and text."""
    text = str(exc) if isinstance(exc, StillflowError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:400] or type(exc).__name__


def plan_task(item: BatchItem, out_root: Path, *, common: dict[str, Any], given: dict[str, Any],
              default_motion: MotionSpec | None, default_mask: str | None, video: str | None) -> Task:
    """The task of ``item``; options merge defaults < manifest options < command line < item options.

    Raises InputError (recorded as the item's failure) for bad options, missing files or no motion.
    """
    if item.error is not None:
        raise InputError(item.error)
    try:
        options = RenderOptions.from_dict({**common, **given, **item.options})
    except InputError as exc:
        raise InputError(f"options: {exc}") from None
    check_still_file(item.image, f"image {Path(item.image).name}")  # before "no motion": the real cause first
    motion = MotionSpec() if item.regions else item.motion or default_motion
    if motion is None:
        raise InputError("no motion source", hint=f"put {item.name}_motion.npy or {item.name}.hints.txt beside it, "
                                                  "or give the batch --drift ANGLE,SPEED or --motion auto")
    for what, path in (("image", item.image), ("mask", item.mask), ("importance", item.importance),
                       ("motion file", motion.path)):
        if path not in (None, "auto") and not Path(path).exists():
            raise InputError(f"{what} {path} does not exist")
    for role, path in region_files(item.regions or ()):
        if not Path(path).exists():
            raise InputError(f"{role.replace('_', ' ')} {path} does not exist")
    mask = item.mask if item.mask is not None or item.regions else default_mask
    out_dir = out_root / item.name
    extension = item.video or video
    task = Task(name=item.name, image=str(item.image), mask=None if mask is None else str(mask),
                importance=None if item.importance is None else str(item.importance), motion=motion,
                options=options, out_dir=str(out_dir),
                video=str(out_dir / f"{item.name}.{extension}") if extension else None, key="",
                regions=tuple(item.regions or ()))
    return dataclasses.replace(task, key=input_key(task))


def input_key(task: Task) -> str:
    """sha256 over the contents of every input file and the options (the device excluded)."""
    digest = hashlib.sha256()
    options = _plain_numbers({k: v for k, v in task.options.to_dict().items() if k != "device"})
    motion = _plain_numbers({k: v for k, v in task.motion.describe().items() if k != "path"})
    recipe = {"v": _KEY_VERSION, "options": options, "motion": motion, "mask_auto": task.mask == "auto",
              "video": Path(task.video).suffix if task.video else None}
    if task.regions:  # only then: results made before regions existed keep their key
        recipe["regions"] = _plain_numbers([{"motion": _recipe_of(r.motion), "speed": r.speed} for r in task.regions])
    region_inputs = region_files(task.regions)
    if any(role.endswith("_amplitude_image") for role, _ in region_inputs):
        recipe["amplitude_reading"] = _AMPLITUDE_READING
    if any(motion.sway is not None and motion.sway.shimmer
           for motion in (task.motion, *(region.motion for region in task.regions))):
        recipe["shimmer_model"] = _SHIMMER_MODEL
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    for role, path in (("image", task.image), ("mask", task.mask), ("importance", task.importance),
                       ("motion", task.motion.path), *region_inputs):
        if path in (None, "auto"):
            continue
        files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
        for file in files:
            digest.update(f"\0{role}\0{file.name}\0".encode())
            with file.open("rb") as stream:
                for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def _recipe_of(motion: MotionSpec) -> dict[str, Any]:
    """A region's motion without its file paths (their contents are hashed by role instead)."""
    plain = {k: v for k, v in motion.describe().items() if k != "path"}
    if plain.get("sway") is not None:
        plain["sway"] = {k: v for k, v in plain["sway"].items() if k != "amplitude_image"}
    return plain


def region_files(regions: tuple[Region, ...]) -> list[tuple[str, str]]:
    """(role, path) of every region's mask, motion file and amplitude image: region_1_mask, region_1_motion, ..."""
    files = []
    for index, region in enumerate(regions, start=1):
        if isinstance(region.mask, (str, Path)):
            files.append((f"region_{index}_mask", str(region.mask)))
        if region.motion.path is not None:
            files.append((f"region_{index}_motion", region.motion.path))
        sway = region.motion.sway
        if sway is not None and isinstance(sway.amplitude_image, (str, Path)):
            files.append((f"region_{index}_amplitude_image", str(sway.amplitude_image)))
    return files


def _plain_numbers(value: Any) -> Any:
    """``value`` with every number as a float and tuples as lists: 10 (JSON) and 10.0 (CSV) hash alike."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, dict, list, tuple)):
        return value
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return {key: _plain_numbers(item) for key, item in value.items()}
    return [_plain_numbers(item) for item in value]


def is_done(task: Task) -> bool:
    """True when ``task.out_dir`` holds a complete result made from the same inputs and options."""
    manifest_path = Path(task.out_dir) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("batch", {}).get("key") != task.key:
        return False
    files = manifest.get("files", [])
    if not all((manifest_path.parent / name).is_file() for name in files):
        return False
    return task.video is None or Path(task.video).is_file()


def render_task(task: Task, *, device: str | None = None, out_dir: str | None = None,
                should_cancel: Callable[[], bool] | None = None) -> Outcome:
    """Render one task into its folder (or ``out_dir``); every failure becomes the Outcome's cause."""
    started = time.perf_counter()
    try:
        from ..pipeline import render

        options = task.options
        if device is not None and options.device == "auto":
            options = dataclasses.replace(options, device=device)
        target = Path(out_dir or task.out_dir)
        video = target / Path(task.video).name if task.video else None
        render(task.image, target, mask=task.mask, motion=task.motion, options=options, video=video,
               importance=task.importance, should_cancel=should_cancel, regions=task.regions or None,
               manifest_extra={"batch": {"key": task.key, "name": task.name, "image": task.image}})
    except Cancelled:
        return Outcome(task.name, "cancelled", time.perf_counter() - started)
    except Exception as exc:  # one bad item must not stop the batch: its cause is recorded
        return Outcome(task.name, "failed", time.perf_counter() - started, one_line(exc))
    return Outcome(task.name, "done", time.perf_counter() - started)
