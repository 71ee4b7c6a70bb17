"""Read the artist's inputs from Blender data: image pixels, the mask, arrows and anchors. Imports bpy.

The conversions themselves live in ``core.mask_sources`` (no bpy); this module only reads
Blender datablocks into flat buffers and point lists.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Callable

import bpy
import numpy as np
import numpy.typing as npt

from .core import mask_sources, still_files
from .core.snapshot_cache import LastValue
from .core.jobs import JobRequest
from .core.lib import load
from .core.request import SWAY_MOTIONS, build_motion, build_options, build_region

log = logging.getLogger(__name__)

__all__ = ["image_array", "image_input", "grayscale_array", "image_fingerprint", "rasterise_mask", "mask_fingerprint",
           "mask_array", "mask_splines", "motion_hints", "amplitude_image", "amplitude_input", "build_regions",
           "build_request"]

_errors = load("errors")
_options = load("options")

_LINEAR_SPACES = {"Linear Rec.709", "Linear", "Linear CIE-XYZ E", "Linear Rec.2020", "ACEScg", "ACES2065-1"}


def _pixels(image: bpy.types.Image) -> npt.NDArray[np.float32]:
    """Flat float32 copy of an Image's pixels (rows bottom-up)."""
    width, height = image.size
    buffer = np.empty(width * height * image.channels, np.float32)
    image.pixels.foreach_get(buffer)
    return buffer


def image_array(image: bpy.types.Image) -> npt.NDArray[np.float32] | npt.NDArray[np.uint8]:
    """The still as (H, W, C) rows top-down, after checking it can be used: uint8 for an 8-bit image,
    else float32 in [0, 1]. Read-only, and reused while a saved file is unchanged.

    Raises:
        InputError: the image was never saved, has unsaved changes or holds no pixels.
    """
    if image.source not in {"FILE", "GENERATED"}:
        raise _errors.InputError(f"image '{image.name}' is a {image.source.lower()}, not a still",
                                 hint="choose a single still image")
    _check_file(image, "image")
    if image.is_dirty or (image.packed_file is None and not os.path.isfile(bpy.path.abspath(image.filepath))):
        raise _errors.InputError(f"image '{image.name}' is not saved or packed",
                                 hint="save it (Image > Save) or pack it into the .blend first")
    width, height = image.size
    if width == 0 or height == 0:
        raise _errors.InputError(f"image '{image.name}' has no pixels", hint="check that its file can be read")
    is_linear = image.is_float and image.colorspace_settings.name in _LINEAR_SPACES

    def read() -> npt.NDArray[np.float32] | npt.NDArray[np.uint8]:
        pixels = mask_sources.image_from_pixels(_pixels(image), width, height, image.channels, is_linear=is_linear)
        # an 8-bit still travels as its own bytes: exact (k/255 * 255 = k) and 4x less to send
        return pixels if image.is_float else np.rint(pixels * 255.0).astype(np.uint8)

    key = _image_key(image)
    return read() if key is None else _image_cache.get(key, read)


def _check_file(image: bpy.types.Image, what: str) -> None:
    """Raise InputError when a file Image's file is gone (``what`` names the image in the message)."""
    if image.source == "FILE" and not image.is_dirty and image.packed_file is None and image.filepath \
            and not os.path.isfile(bpy.path.abspath(image.filepath)):
        raise _errors.InputError(f"{what} '{image.name}' is missing: no file at {bpy.path.abspath(image.filepath)}",
                                 hint="find it again (Image > Replace, or File > External Data > Find Missing Files)")


def grayscale_array(image: bpy.types.Image, what: str) -> npt.NDArray[np.float32]:
    """A grayscale Image (a painted mask, an amplitude image) as (H, W) float32 in [0, 1], rows top-down.

    Raises:
        InputError: its file is gone or it holds no pixels (``what`` names it in the message).
    """
    _check_file(image, what)
    width, height = image.size
    if width == 0 or height == 0:
        raise _errors.InputError(f"{what} '{image.name}' has no pixels", hint="paint it or load its file")
    return mask_sources.mask_from_pixels(_pixels(image), width, height, image.channels)


def image_fingerprint(image: bpy.types.Image) -> tuple:
    """What a grayscale Image's pixels depend on, cheaply (no pixel is read): painting shows as unsaved."""
    return (image.name, image.source, bpy.path.abspath(image.filepath), tuple(image.size), image.is_dirty,
            image.packed_file is not None, image.colorspace_settings.name)


def image_input(image: bpy.types.Image) -> tuple[npt.NDArray[np.float32] | npt.NDArray[np.uint8] | str, int, int]:
    """What a job sends as its still, with its width and height: the file itself when the backend
    decodes it to the bytes Blender shows (``core.still_files``), else ``image_array``'s pixels.

    The file route never touches the Image's pixels (not even its size, which would decode it), so
    Generate does not hold Blender's main thread while 8 megapixels are read (issue 24, point 10).
    """
    plain = _plain_file(image) if image.colorspace_settings.name == "sRGB" else None
    if plain is not None:
        path, (width, height) = plain
        return path, width, height
    pixels = image_array(image)
    return pixels, pixels.shape[1], pixels.shape[0]


def _plain_file(image: bpy.types.Image) -> tuple[str, tuple[int, int]] | None:
    """The path and (width, height) of an Image that shows its saved 8-bit grey or RGB PNG/JPEG file
    unchanged (``core.still_files``), from the file's header alone; else None."""
    if image.source == "FILE" and not image.is_dirty and image.packed_file is None and image.filepath:
        path = bpy.path.abspath(image.filepath)
        size = still_files.plain_8bit_size(path)
        if size is not None:
            return path, size
    return None


def amplitude_input(image: bpy.types.Image, what: str) -> tuple[npt.NDArray[np.float32] | str, tuple[int, int] | None]:
    """What a job sends as an amplitude image: its file with its (height, width) when it is plain
    (``_plain_file``; the backend decodes it to the bits ``grayscale_array`` reads, ``link.wire_amplitude``),
    else ``grayscale_array``'s pixels and None. The file route reads no pixel on Blender's main thread.

    An 8-bit file's pixels are its levels / 255 in every colour space (checked in bpy 5.0.1), so any
    colour space may go as its file.
    """
    _check_file(image, what)
    plain = _plain_file(image)
    if plain is not None:
        path, (width, height) = plain
        return path, (height, width)
    return grayscale_array(image, what), None


def _image_key(image: bpy.types.Image) -> tuple | None:
    """What a saved still's pixels depend on (None: not a plain saved file, never cached)."""
    if image.source != "FILE" or image.is_dirty or image.packed_file is not None:
        return None
    try:
        stat = os.stat(bpy.path.abspath(image.filepath))
    except OSError:
        return None
    return (image.name, bpy.path.abspath(image.filepath), stat.st_mtime_ns, stat.st_size, tuple(image.size),
            image.channels, image.is_float, image.colorspace_settings.name, image.alpha_mode)


def _raster_tree(mask: bpy.types.Mask) -> bpy.types.NodeTree:
    """A compositor node group: Mask node -> Group Output (blender5.md §1.3)."""
    tree = bpy.data.node_groups.new("stillflow mask raster", "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    node = tree.nodes.new("CompositorNodeMask")
    node.mask = mask
    output = tree.nodes.new("NodeGroupOutput")
    tree.links.new(node.outputs[0], output.inputs[0])
    return tree


def rasterise_mask(mask: bpy.types.Mask, width: int, height: int) -> npt.NDArray[np.float32]:
    """Render a Mask datablock at width x height through the compositor; (H, W) float32 in [0, 1], rows top-down.

    Layers that hold no closed spline (arrows, anchors) are hidden while rendering, because open
    splines would otherwise rasterise as thin lines (blender5.md §1.3).
    """
    hidden = [layer for layer in mask.layers
              if not layer.hide_render and not any(s.use_cyclic for s in layer.splines)]
    scene = bpy.data.scenes.new("stillflow mask raster")
    tree = _raster_tree(mask)
    folder = tempfile.mkdtemp(prefix="stillflow_mask_")
    path = os.path.join(folder, "mask.png")
    try:
        for layer in hidden:
            layer.hide_render = True
        scene.compositing_node_group = tree
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.use_compositing, render.use_sequencer = True, False
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "BW"
        render.image_settings.color_depth = "16"
        render.image_settings.compression = 0  # a scratch file read back at once: zlib would be most of the time
        scene.view_settings.view_transform = "Raw"
        render.filepath = path
        bpy.ops.render.render(write_still=True, scene=scene.name)
        loaded = bpy.data.images.load(path, check_existing=False)
        try:
            loaded.colorspace_settings.name = "Non-Color"
            result = mask_sources.mask_from_pixels(_pixels(loaded), *loaded.size, loaded.channels)
        finally:
            bpy.data.images.remove(loaded)
    finally:
        for layer in hidden:
            layer.hide_render = False
        bpy.data.scenes.remove(scene)
        bpy.data.node_groups.remove(tree)
        Path(path).unlink(missing_ok=True)
        os.rmdir(folder)
    return result


_raster_cache: LastValue[npt.NDArray[np.float32]] = LastValue()
"""A Generate with an unchanged Mask skips the compositor render."""
_image_cache: LastValue[npt.NDArray[np.float32]] = LastValue()
"""A Generate of an unchanged, saved still skips reading its pixels."""


def mask_fingerprint(mask: bpy.types.Mask, width: int, height: int) -> tuple:
    """Everything the raster depends on: size, layer settings and every point's geometry and feather."""
    layers = []
    for layer in mask.layers:
        splines = tuple(
            (spline.use_cyclic, spline.use_fill, spline.use_self_intersection_check, spline.offset_mode,
             spline.weight_interpolation,
             tuple((tuple(p.co), tuple(p.handle_left), tuple(p.handle_right), p.handle_left_type,
                    p.handle_right_type, p.weight, tuple((f.u, f.weight) for f in p.feather_points))
                   for p in spline.points))
            for spline in layer.splines)
        layers.append((layer.name, layer.hide_render, layer.blend, layer.invert, layer.alpha, layer.falloff,
                       layer.use_fill_holes, layer.use_fill_overlap, splines))
    return width, height, tuple(layers)


def cached_mask_raster(mask: bpy.types.Mask, width: int, height: int) -> npt.NDArray[np.float32]:
    """``rasterise_mask``, reused while the Mask and size are unchanged (the render costs ~0.1-1 s)."""
    return _raster_cache.get((mask.name, mask_fingerprint(mask, width, height)),
                             lambda: rasterise_mask(mask, width, height))


MASK_RASTER_SIDE = 1024
"""Longest side a Mask is rendered at when the backend refines it: refinement works at about 512 px
(``stillflow.stages.mask.refine_mask``) and the backend resizes any mask to the image, so a larger
render only costs time on Blender's main thread (1.5 s at 1920 x 1440)."""


def mask_raster_size(width: int, height: int, *, refined: bool) -> tuple[int, int]:
    """Size to render a Mask at for a width x height still: full size unless the backend refines it."""
    scale = 1.0 if not refined else min(1.0, MASK_RASTER_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def mask_array(settings: bpy.types.PropertyGroup, width: int, height: int) -> npt.NDArray[np.float32] | None:
    """The chosen mask as (H, W) float32 in [0, 1] (None = everything moves).

    Raises:
        InputError: no mask chosen, or it marks nothing to animate.
    """
    if settings.mask_source == "NONE":
        return None
    if settings.mask_source == "MASK":
        if settings.mask is None:
            raise _errors.InputError("no Mask datablock chosen", hint="pick one in the Stillflow panel or choose 'Everything'")
        raster_w, raster_h = mask_raster_size(width, height, refined=settings.refine_mask)
        return mask_sources.check_mask(cached_mask_raster(settings.mask, raster_w, raster_h), f"'{settings.mask.name}'")
    image = settings.mask_image
    if image is None:
        raise _errors.InputError("no mask image chosen", hint="pick a painted grayscale image in the Stillflow panel")
    return mask_sources.check_mask(grayscale_array(image, "mask image"), f"image '{image.name}'")


def mask_splines(mask: bpy.types.Mask) -> list[mask_sources.Spline]:
    """Every spline of a Mask as plain points (normalised, origin bottom-left)."""
    return [mask_sources.Spline(points=tuple((p.co[0], p.co[1]) for p in spline.points),
                                is_cyclic=spline.use_cyclic)
            for layer in mask.layers for spline in layer.splines]


def motion_hints(settings: bpy.types.PropertyGroup, width: int, height: int
                 ) -> tuple[tuple[tuple[float, float, float, float], ...], tuple[tuple[float, float], ...]]:
    """Arrows (x0, y0, x1, y1) and anchors (x, y) in pixels of a width x height image, from the arrows Mask."""
    source = settings.arrows or settings.mask
    if source is None:
        return (), ()
    return mask_sources.hints_from_splines(mask_splines(source), width, height)


def amplitude_image(item: bpy.types.PropertyGroup) -> bpy.types.Image | None:
    """The region's amplitude image when it sways or shimmers (the panel hides it otherwise), else None."""
    return item.amplitude_image if item.motion in SWAY_MOTIONS else None


def build_regions(settings: bpy.types.PropertyGroup, width: int, height: int, *,
                  rasterise: Callable[[bpy.types.Mask], npt.NDArray[np.float32]] | None = None,
                  grayscale: Callable[[bpy.types.Image, str], npt.NDArray[np.float32]] | None = None
                  ) -> tuple[object, ...]:
    """The panel's motion regions as Regions, each Mask rendered to an array (InputError names a bad one).

    ``rasterise(mask)`` renders a region's Mask and ``grayscale(image, what)`` reads an amplitude
    image (the live preview keeps one of each per datablock); None: at ``mask_raster_size`` through
    the job's cache, and ``amplitude_input`` (a plain saved file goes as its path).
    """
    if not settings.regions:
        raise _errors.InputError("Motion Regions is on but there is no region", hint="add one with + in the panel")
    regions = []
    for item in settings.regions:
        if item.mask is None:
            raise _errors.InputError(f"region '{item.name}' has no Mask", hint="pick its Mask in the Regions panel")
        raster_w, raster_h = mask_raster_size(width, height, refined=settings.refine_mask)
        raster = cached_mask_raster(item.mask, raster_w, raster_h) if rasterise is None else rasterise(item.mask)
        mask = mask_sources.check_mask(raster, f"'{item.mask.name}'")
        hints, anchors = mask_sources.hints_from_splines(mask_splines(item.mask), width, height)
        scale, what = amplitude_image(item), f"region '{item.name}': amplitude image"
        amplitude, shape = (None, None) if scale is None else (
            (grayscale(scale, what), None) if grayscale is not None else amplitude_input(scale, what))
        regions.append(build_region(item.motion, mask, name=item.name, speed=item.speed, hints=hints,
                                    anchors=anchors, drift=(item.drift_angle, item.drift_speed),
                                    amplitude=item.amplitude, cycles=item.cycles, angle=item.sway_angle,
                                    amplitude_image=amplitude, amplitude_shape=shape, still_size=(width, height)))
    return tuple(regions)


def build_request(settings: bpy.types.PropertyGroup, image: bpy.types.Image, out_dir: str, *,
                  share_files: bool = True) -> JobRequest:
    """Snapshot everything a job needs from the scene settings (InputError on anything missing)."""
    pixels, width, height = image_input(image)
    options = build_options(settings.option_values())
    if settings.use_regions:
        regions = build_regions(settings, width, height)
        return JobRequest(image=pixels, mask=None, motion=_options.MotionSpec(), options=options, out_dir=out_dir,
                          label=image.name, share_files=share_files, regions=regions,
                          read_amplitude=_amplitude_reader(settings, regions))
    # arrows taken from the region Mask: check that Mask first, so a missing Mask is not read as missing arrows
    arrows_from_region = settings.motion_source == "HINTS" and settings.arrows is None
    mask = mask_array(settings, width, height) if arrows_from_region else None
    hints, anchors = motion_hints(settings, width, height)
    source = settings.arrows or settings.mask
    motion = build_motion(settings.motion_source, hints=hints, anchors=anchors,
                          path=bpy.path.abspath(settings.motion_path) if settings.motion_path else "",
                          arrows_from=source.name if source is not None else "")
    if not arrows_from_region:
        mask = mask_array(settings, width, height)
    return JobRequest(image=pixels, mask=mask, motion=motion, options=options, out_dir=out_dir,
                      label=image.name, share_files=share_files)


def _amplitude_reader(settings: bpy.types.PropertyGroup, regions: tuple[object, ...]
                      ) -> Callable[[int], npt.NDArray[np.float32]] | None:
    """``JobRequest.read_amplitude``: region i's amplitude image read by ``grayscale_array`` after all, for a
    backend that cannot decode the file ``build_regions`` chose to send (None when no file was chosen)."""
    files = {index: (amplitude_image(item).name, f"region '{item.name}': amplitude image")
             for index, (item, region) in enumerate(zip(settings.regions, regions))
             if isinstance(getattr(region.motion.sway, "amplitude_image", None), str)}

    def read(index: int) -> npt.NDArray[np.float32]:
        """The pixels of region ``index``'s amplitude image, found again by name."""
        name, what = files[index]
        image = bpy.data.images.get(name)
        if image is None:
            raise _errors.InputError(f"{what} '{name}' was removed before the job was sent",
                                     hint="pick the amplitude image again and press Generate")
        return grayscale_array(image, what)

    return read if files else None
