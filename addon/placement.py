"""Put a finished take in place: one loop Image per still, updated in place, with its files next to the .blend. Imports bpy.

- A new Generate for a still moves its frames into the next take folder (``core.result_paths``) and
  points the *same* loop Image at it; compositor nodes, material and texture nodes, Image Editors and
  sequencer strips that showed the old take follow (their frame count too, when it changed).
- Paths are stored relative to the .blend (``//stillflow/<image>/take_0001/frame_0000.png``) once it
  is saved; results of an unsaved file live in the session folder and move beside the .blend on its
  first save (``save_pre``, so the file on disk already names the new place).
- Each placement is an undo step; older takes stay on disk (``keep_results``) so undo can show them.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterator

import bpy
from bpy.app.handlers import persistent

from . import results
from .core import result_paths
from .properties import preferences, results_root, session_results_root

log = logging.getLogger(__name__)

__all__ = ["LOOP_SOURCE", "WARNINGS", "take_warnings", "loop_warnings", "find_loop", "place_take", "image_folder", "show_take", "take_of", "blend_path", "frame_files",
           "retarget_users", "undo_step", "relocate_session_results", "register", "unregister"]

LOOP_SOURCE = "stillflow_source"
"""ID property of a loop Image: the name of the still it animates (how a regenerate finds it)."""

FRAME_SUFFIXES = (".png", ".exr")
WARNINGS = "stillflow_warnings"
"""ID property of a loop Image: the warnings of the take it shows (from its manifest.json), one per line."""


def blend_path(path: str | Path) -> str:
    """``path`` relative to the saved .blend (``//...``), or absolute while the file is unsaved."""
    if not bpy.data.filepath:
        return str(path)
    try:
        return bpy.path.relpath(str(path))
    except ValueError:  # another drive on Windows
        return str(path)


def frame_files(folder: Path) -> list[Path]:
    """The frame files of a take folder, in order (frame_0000.png ...)."""
    return sorted(p for p in folder.iterdir() if p.name.startswith("frame_") and p.suffix.lower() in FRAME_SUFFIXES)


def find_loop(image_name: str) -> bpy.types.Image | None:
    """The loop Image made earlier for the still ``image_name``, if there is one."""
    return next((image for image in bpy.data.images
                 if image.get(LOOP_SOURCE) == image_name and image.source == "SEQUENCE"), None)


def _folder_of(image: bpy.types.Image) -> Path:
    """Absolute folder of a sequence Image's frames."""
    return Path(bpy.path.abspath(image.filepath)).parent.resolve()


def place_take(scene: bpy.types.Scene, image_name: str, frames_dir: Path) -> tuple[bpy.types.Image, list[Path]]:
    """Move a finished result folder into the still's next take and show it through its loop Image.

    Returns the loop Image (the same datablock as before for a regenerate) and its frame files.
    """
    image_dir = image_folder(image_name)
    take = result_paths.move_folder(frames_dir, result_paths.next_take(image_dir))
    if frames_dir.parent.name == ".jobs":  # the backend's staging folder (properties.output_root)
        _remove_if_empty(frames_dir.parent)
    loop, paths = show_take(image_name, take)
    result_paths.prune_takes(image_dir, preferences().keep_results, take)
    return loop, paths


def image_folder(image_name: str) -> Path:
    """The folder holding a still's takes (``<results root>/<still name>``)."""
    return results_root() / result_paths.folder_name(image_name)


def show_take(image_name: str, take: Path) -> tuple[bpy.types.Image, list[Path]]:
    """Point the still's loop Image (made when missing) and everything using it at the take folder ``take``."""
    paths = frame_files(take)
    if not paths:
        raise OSError(f"no frame files in {take}")
    loop = find_loop(image_name)
    if loop is None:
        loop = results.load_sequence([str(paths[0])], f"{Path(image_name).stem} loop")
        loop[LOOP_SOURCE] = image_name
        old_dir, old_count = None, 0
    else:
        old_dir, old_count = _folder_of(loop), int(loop.get("stillflow_frames", 0))
    loop.filepath = blend_path(paths[0])
    loop["stillflow_frames"] = len(paths)
    loop[WARNINGS] = "\n".join(take_warnings(take))
    results.tag_colorspace(loop, paths[0].suffix)
    loop.reload()
    if old_dir is not None and old_dir != take.resolve():
        retarget_users(loop, old_dir, old_count, take.resolve(), len(paths))
    return loop, paths


def take_warnings(take: Path) -> list[str]:
    """The backend's warnings about a take ('content travels up to ...'), from its manifest.json."""
    try:
        manifest = json.loads((take / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    found = manifest.get("warnings") if isinstance(manifest, dict) else None
    return [str(line) for line in found] if isinstance(found, list) else []


def loop_warnings(loop: bpy.types.Image | None) -> list[str]:
    """The warnings of the take a loop Image shows."""
    text = str(loop.get(WARNINGS, "")) if loop is not None else ""
    return text.splitlines()


def take_of(loop: bpy.types.Image) -> Path:
    """The take folder a loop Image plays."""
    return _folder_of(loop)


def _remove_if_empty(folder: Path) -> None:
    """Remove a folder the add-on made once its last result has moved out (a folder with files stays)."""
    try:
        folder.rmdir()
    except OSError:
        pass


def _image_users(image: bpy.types.Image) -> Iterator[bpy.types.bpy_struct]:
    """Every ImageUser-like struct showing ``image``: compositor nodes, texture nodes, textures, editors."""
    for tree in [*bpy.data.node_groups, *(m.node_tree for m in bpy.data.materials if m.node_tree),
                 *(w.node_tree for w in bpy.data.worlds if w.node_tree)]:
        for node in tree.nodes:
            user = getattr(node, "image_user", node)  # a CompositorNodeImage holds the fields itself
            if getattr(node, "image", None) == image and hasattr(user, "frame_duration"):
                yield user
    for texture in bpy.data.textures:
        if texture.type == "IMAGE" and texture.image == image:
            yield texture.image_user
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            space = area.spaces.active
            if area.type == "IMAGE_EDITOR" and space.image == image:
                yield space.image_user
                area.tag_redraw()


def retarget_users(image: bpy.types.Image, old_dir: Path, old_count: int, new_dir: Path, new_count: int) -> None:
    """Make everything that played the old take play the new one (lengths follow when they were the loop's)."""
    if old_count != new_count:
        for user in _image_users(image):
            if user.frame_duration == old_count:
                user.frame_duration = new_count
    names = [p.name for p in frame_files(new_dir)]
    for scene in bpy.data.scenes:
        editor = scene.sequence_editor
        for strip in editor.strips_all if editor is not None else ():
            if strip.type == "IMAGE" and Path(bpy.path.abspath(strip.directory)).resolve() == old_dir:
                _retarget_strip(strip, new_dir, names, old_count)


def _retarget_strip(strip: bpy.types.Strip, new_dir: Path, names: list[str], old_count: int) -> None:
    """Point an image strip at a new take, keeping its number of loops."""
    loops = max(1, round(len(strip.elements) / old_count)) if old_count else 1
    wanted = names * loops
    strip.directory = blend_path(str(new_dir) + os.sep)
    while len(strip.elements) > len(wanted):
        strip.elements.pop(len(strip.elements) - 1)
    for element, name in zip(strip.elements, wanted):
        element.filename = name
    for name in wanted[len(strip.elements):]:
        strip.elements.append(name)
    results.tag_colorspace(strip, Path(names[0]).suffix)


def undo_step(message: str) -> None:
    """Record the current state as an undo step (so Ctrl+Z goes back to the previous take)."""
    try:
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError as error:  # no undo stack in this context (e.g. during file load)
        log.info("no undo step for %s: %s", message, error)


def relocate_session_results(new_root: Path) -> dict[Path, Path]:
    """Move every take of this file's loops from the session folder to ``new_root``; old -> new folder."""
    session = session_results_root()
    moved: dict[Path, Path] = {}
    image_dirs = {_folder_of(img).parent for img in bpy.data.images
                  if img.get(LOOP_SOURCE) and result_paths.is_inside(_folder_of(img), session)}
    for image_dir in sorted(image_dirs):
        for take in result_paths.takes(image_dir):
            target = result_paths.next_take(new_root / image_dir.name)
            moved[take.resolve()] = result_paths.move_folder(take, target)
        _remove_if_empty(image_dir)
    for image in bpy.data.images:
        if image.get(LOOP_SOURCE) and _folder_of(image) in moved:
            image.filepath = str(moved[_folder_of(image)] / Path(image.filepath).name)
    for scene in bpy.data.scenes:
        for strip in scene.sequence_editor.strips_all if scene.sequence_editor is not None else ():
            folder = Path(bpy.path.abspath(strip.directory)).resolve() if strip.type == "IMAGE" else None
            if folder in moved:
                strip.directory = str(moved[folder]) + os.sep
        settings = scene.stillflow
        shown = Path(bpy.path.abspath(settings.result_dir)) if settings.result_dir else None
        if shown is not None and shown.resolve() in moved:
            settings.result_dir = str(moved[shown.resolve()])
            # the panel's "Done: ... in <folder>" names where the take is now, not the session folder
            settings.status = settings.status.replace(str(shown), settings.result_dir)
    if moved:
        log.info("moved %d result folders beside the .blend into %s", len(moved), new_root)
    return moved


@persistent
def _save_pre(filepath: str, *_args: object) -> None:
    """First save of a file: move its results from the session folder beside the new .blend."""
    if bpy.data.filepath or not filepath:
        return
    try:
        relocate_session_results(results_root(blend_path=filepath))
    except OSError as error:
        log.error("results could not be moved beside %s: %s", filepath, error)


@persistent
def _save_post(filepath: str, *_args: object) -> None:
    """After a save: store every loop's paths relative to the .blend (Blender may have left them absolute)."""
    for image in bpy.data.images:
        if image.get(LOOP_SOURCE) and not image.filepath.startswith("//"):
            image.filepath = blend_path(image.filepath)
    for scene in bpy.data.scenes:
        settings = scene.stillflow
        if settings.result_dir and not settings.result_dir.startswith("//"):
            settings.result_dir = blend_path(settings.result_dir)


def register() -> None:
    """Install the save handlers."""
    bpy.app.handlers.save_pre.append(_save_pre)
    bpy.app.handlers.save_post.append(_save_post)


def unregister() -> None:
    """Remove the save handlers."""
    for handlers, handler in ((bpy.app.handlers.save_pre, _save_pre), (bpy.app.handlers.save_post, _save_post)):
        if handler in handlers:
            handlers.remove(handler)
