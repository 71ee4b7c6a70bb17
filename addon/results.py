"""Put a finished loop into Blender: Image sequence, Image Editor, compositor, sequencer, material. Imports bpy.

Frame arithmetic (ImageUser mapping, strip length, fps) comes from ``core.loop_math``; names
follow Blender 5.0 (``scene.compositing_node_group``, ``sequence_editor.strips``; blender5.md §1).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable

import bpy
import numpy as np

from .core import colour, loop_math
from .core.lib import load, stillflow

log = logging.getLogger(__name__)

__all__ = [
    "load_sequence",
    "write_frames",
    "configure_image_user",
    "show_in_image_editors",
    "add_to_compositor",
    "add_to_sequencer",
    "add_to_material",
    "apply_scene_fps",
    "sequence_files",
    "tag_colorspace",
]

FIRST_FILE_NUMBER = 0
"""The backend numbers its frame files from 0 (frame_0000.png)."""


def sequence_files(image: bpy.types.Image, frames: int) -> tuple[str, list[str]]:
    """Folder and file names of a loop image's frames (frame_0000.png ...)."""
    first = Path(bpy.path.abspath(image.filepath))
    stem = first.stem.rstrip("0123456789")
    digits = len(first.stem) - len(stem)
    names = [f"{stem}{FIRST_FILE_NUMBER + i:0{digits}d}{first.suffix}" for i in range(frames)]
    return str(first.parent), names


def load_sequence(frame_paths: Iterable[str], name: str) -> bpy.types.Image:
    """Load frame files as one Image datablock with source SEQUENCE (a new datablock per job)."""
    paths = [str(p) for p in frame_paths]
    image = bpy.data.images.load(paths[0], check_existing=False)
    image.source = "SEQUENCE"
    image.name = name
    return image


def write_frames(frames: np.ndarray, out_dir: str, manifest: dict | None = None, fmt: str = "png") -> list[str]:
    """Write (N, H, W, C) frames that a remote backend sent back as frame_0000.png ... in out_dir.

    ``frames`` is uint8 or float32 in [0, 1], rows top-down, C = 3 or 4; ``fmt`` is the job's frame
    format (png, png16 or exr; float frames keep their precision). The folder appears whole or not
    at all (a full disk leaves no half loop behind), with a manifest.json like the backend's own
    results (``stillflow_version`` marks it as a Stillflow result folder that a later result may replace).
    """
    # Making the folder first reports an unusable Output Folder as the OSError it is.
    os.makedirs(out_dir, exist_ok=True)
    with load("io.frames").atomic_dir(out_dir) as staging:
        names = _save_frames(frames, str(staging), fmt)
        count, height, width, channels = frames.shape
        record = {**(manifest or {}), "stillflow_version": stillflow().__version__, "frames": count,
                  "width": width, "height": height, "channels": channels, "format": fmt, "files": names,
                  "written_by": "blender add-on (Connect mode)"}
        Path(staging, "manifest.json").write_text(json.dumps(record, indent=2, default=str))
    return [os.path.join(out_dir, name) for name in names]


_SUFFIX = {"png": ".png", "png16": ".png", "exr": ".exr"}


def _save_frames(frames: np.ndarray, folder: str, fmt: str) -> list[str]:
    """Save (N, H, W, C) frames as frame_0000.<ext> ... in ``folder`` through Blender; the file names.

    The values are written unchanged (the backend's sRGB-encoded values, as its own files hold
    them): png from a byte image, png16 (16-bit) and exr (ZIP, float) from a Non-Color float image.
    """
    count, height, width, channels = frames.shape
    is_float = fmt in ("png16", "exr")
    scratch = bpy.data.images.new("stillflow frame", width, height, alpha=True, float_buffer=is_float)
    if is_float:
        scratch.colorspace_settings.name = "Non-Color"
    writer = bpy.data.scenes.new("stillflow frame writer") if fmt == "exr" else None
    if writer is not None:
        settings = writer.render.image_settings
        settings.file_format, settings.color_mode, settings.color_depth = "OPEN_EXR", "RGBA", "32"
        settings.exr_codec = "ZIP"
    names: list[str] = []
    try:
        rgba = np.ones((height, width, 4), np.float32)
        for index in range(count):
            frame = frames[index].astype(np.float32)
            if frames.dtype == np.uint8:
                frame /= 255.0
            rgba[..., :channels] = frame[..., :4]
            scratch.pixels.foreach_set(rgba[::-1].ravel())
            names.append(f"frame_{FIRST_FILE_NUMBER + index:04d}{_SUFFIX.get(fmt, '.png')}")
            path = os.path.join(folder, names[-1])
            if writer is not None:
                scratch.save_render(path, scene=writer)
            else:
                scratch.filepath_raw, scratch.file_format = path, "PNG"
                scratch.save()
    finally:
        bpy.data.images.remove(scratch)
        if writer is not None:
            bpy.data.scenes.remove(writer)
    return names


def configure_image_user(user: bpy.types.bpy_struct, frames: int, scene: bpy.types.Scene) -> None:
    """Make an ImageUser (or a CompositorNodeImage, which has the same fields) play the loop from the scene start."""
    mapping = loop_math.image_user_mapping(frames, scene_start=scene.frame_start,
                                           first_file_number=FIRST_FILE_NUMBER)
    user.frame_duration = mapping.frame_duration
    user.frame_start = mapping.frame_start
    user.frame_offset = mapping.frame_offset
    user.use_cyclic = mapping.use_cyclic
    user.use_auto_refresh = True


def show_in_image_editors(image: bpy.types.Image, frames: int, scene: bpy.types.Scene,
                          replace: bpy.types.Image | None = None) -> int:
    """Show the loop in every Image Editor that shows ``replace`` (or in all of them when None); the count."""
    shown = 0
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type != "IMAGE_EDITOR":
                continue
            space = area.spaces.active
            if replace is not None and space.image is not None and space.image != replace:
                continue
            space.image = image
            configure_image_user(space.image_user, frames, scene)
            area.tag_redraw()
            shown += 1
    return shown


def add_to_compositor(scene: bpy.types.Scene, image: bpy.types.Image, frames: int) -> bpy.types.Node:
    """An Image node playing the loop in the scene's compositor node group (created when missing)."""
    tree = scene.compositing_node_group
    if tree is None:
        tree = bpy.data.node_groups.new(f"{scene.name} Stillflow", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        tree.nodes.new("NodeGroupOutput")
        scene.compositing_node_group = tree
    node = tree.nodes.new("CompositorNodeImage")
    node.image = image
    node.label = image.name
    configure_image_user(node, frames, scene)
    outputs = [n for n in tree.nodes if n.type == "GROUP_OUTPUT"]
    if outputs and outputs[0].inputs and not outputs[0].inputs[0].is_linked:
        tree.links.new(node.outputs["Image"], outputs[0].inputs[0])
        node.location = (outputs[0].location.x - 300, outputs[0].location.y)
    return node


def add_to_sequencer(scene: bpy.types.Scene, image: bpy.types.Image, frames: int,
                     loops: int = 0, *, frame_start: int | None = None,
                     channel: int | None = None) -> bpy.types.Strip:
    """An image strip that repeats the loop ``loops`` times (0 = enough to cover the scene's range).

    The strip starts at ``frame_start`` (default: the scene start) on ``channel`` (default: the
    lowest free one). Its colour space is the frames' own (``core.colour``).
    """
    if loops <= 0:
        loops = loop_math.loops_to_cover(frames, scene.frame_start, scene.frame_end)
    folder, names = sequence_files(image, frames)
    elements = loop_math.strip_elements(names, loops)
    editor = scene.sequence_editor or scene.sequence_editor_create()
    used = {s.channel for s in editor.strips}
    if channel is None:
        channel = next(c for c in range(1, 129) if c not in used) if len(used) < 128 else 128
    strip = editor.strips.new_image(name=image.name, filepath=os.path.join(folder, elements[0]),
                                    channel=channel, fit_method="FIT",
                                    frame_start=scene.frame_start if frame_start is None else frame_start)
    for element in elements[1:]:
        strip.elements.append(element)
    tag_colorspace(strip, Path(elements[0]).suffix)
    return strip


def tag_colorspace(target: bpy.types.bpy_struct, suffix: str) -> None:
    """Tag an Image or image strip with the colour space of Stillflow frame files (``core.colour``)."""
    name = colour.frame_colorspace(suffix)
    if target.colorspace_settings.name == name:
        return  # setting it again drops every decoded frame: a regenerated take would be decoded twice
    try:
        target.colorspace_settings.name = name
    except TypeError:  # a custom OCIO configuration without that name: keep Blender's choice, say so
        log.warning("colour space %r is not in this OCIO configuration; %s keeps %r", name,
                    getattr(target, "name", target), target.colorspace_settings.name)


def add_to_material(material: bpy.types.Material, image: bpy.types.Image, frames: int,
                    scene: bpy.types.Scene) -> bpy.types.Node:
    """An Image Texture node playing the loop (cyclic) in ``material``; linked to Base Color when that is free."""
    tree = material.node_tree
    node = tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    node.label = image.name
    configure_image_user(node.image_user, frames, scene)
    principled = next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if principled is not None and not principled.inputs["Base Color"].is_linked:
        tree.links.new(node.outputs["Color"], principled.inputs["Base Color"])
        node.location = (principled.location.x - 350, principled.location.y)
    return node


def apply_scene_fps(scene: bpy.types.Scene, fps: float) -> None:
    """Set the scene's frame rate to the loop's (fps and fps_base, e.g. 29.97 = 30 / 1.001)."""
    scene.render.fps, scene.render.fps_base = loop_math.scene_fps(fps)
