"""Scene settings (``scene.stillflow``) and the extension's preferences. Imports bpy.

Render-option properties take their default, help text and unit from ``stillflow.options``
through ``core.request.option_field``; no default is retyped here.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from .core import network, result_paths
from .core.backend import BackendConfig
from .core.install_env import BackendHome
from .core.lib import load
from .core.request import option_field, sway_default

log = logging.getLogger(__name__)

_options = load("options")
_errors = load("errors")


def _describe(name: str) -> str:
    """Tooltip for a render option: its help text and unit."""
    _, help_text, unit = option_field(name)
    return f"{help_text[0].upper()}{help_text[1:]}" + (f" ({unit})" if unit else "")


def _default(name: str) -> Any:
    """Default of a render option, as stillflow.options defines it."""
    return option_field(name)[0]


class STILLFLOW_PG_region(bpy.types.PropertyGroup):
    """One motion region of the still: its Mask and what it does (docs/regions.md)."""

    name: StringProperty(name="Name", default="Region")
    mask: PointerProperty(type=bpy.types.Mask, name="Mask",
                          description="Closed filled splines = the region; open splines = its arrows")
    motion: EnumProperty(
        name="Motion", description="What the region does",
        items=(("ARROWS", "Arrows", "Flows along the open splines of its Mask (first to last point = one arrow), "
                "measured inside the region only"),
               ("DRIFT", "Drift", "Flows uniformly in one direction"),
               ("SWAY", "Sway", "Oscillates in place, as a wave (trees, grass, a flag)"),
               ("SHIMMER", "Shimmer", "Ripples in place with short random waves (water)")),
        default="ARROWS")
    speed: FloatProperty(name="Speed", default=1.0, min=0.0, soft_max=3.0,
                         description="Multiplies this region's flow or sway amplitude (x)")
    drift_angle: FloatProperty(name="Angle", default=0.0, min=-360.0, max=360.0,
                               description="Drift direction in degrees, 0 = right, 90 = up")
    drift_speed: FloatProperty(name="Drift Speed", default=1.0, min=0.0, soft_max=10.0,
                               description="Drift speed (px/frame)")
    amplitude: FloatProperty(name="Amplitude", default=sway_default("amplitude"), min=0.0,
                             max=_options.MAX_SWAY_PX, subtype="PIXEL",
                             description="How far the region swings each way (px)")
    cycles: IntProperty(name="Cycles", default=sway_default("cycles"), min=1, max=_options.MAX_SWAY_CYCLES,
                        description="Whole back-and-forth cycles per loop (whole, so the loop is seamless)")
    sway_angle: FloatProperty(name="Sway Angle", default=sway_default("angle"), min=-360.0, max=360.0,
                              description="Direction of the swing in degrees, 0 = right, 90 = up")
    amplitude_image: PointerProperty(
        type=bpy.types.Image, name="Amplitude Image",
        description="Optional grayscale image of the still's shape that scales the swing: black = stays still, "
                    "white = the full Amplitude, grey in between (e.g. tree tips sway more than the trunk). "
                    "Empty = the whole region sways")


class STILLFLOW_PG_settings(bpy.types.PropertyGroup):
    """Stillflow inputs and the state of the running job, stored on the scene."""

    image: PointerProperty(type=bpy.types.Image, name="Image",
                           description="Still to animate; empty = the image shown in the Image Editor")
    mask_source: EnumProperty(
        name="Mask", description="What decides which pixels move",
        items=(("MASK", "Mask", "Closed filled splines of a Mask datablock (white = moves)"),
               ("IMAGE", "Image", "A grayscale image the artist painted (white = moves)"),
               ("NONE", "Everything", "The whole picture moves")),
        default="MASK")
    mask: PointerProperty(type=bpy.types.Mask, name="Mask", description="Mask datablock with the moving region")
    mask_image: PointerProperty(type=bpy.types.Image, name="Mask Image",
                                description="Grayscale image: white = moves, black = stays still")
    motion_source: EnumProperty(
        name="Motion", description="Where the motion comes from",
        items=(("HINTS", "Arrows", "Open splines on a Mask: first to last point = one arrow; "
                "single points = anchors that stay still"),
               ("FILE", "Motion File", "A motion field file (.npy, StyleCineGAN layout)"),
               ("CLIP", "Reference Clip", "Motion estimated from a video or image sequence")),
        default="HINTS")
    arrows: PointerProperty(type=bpy.types.Mask, name="Arrows",
                            description="Mask whose open splines are the motion arrows; empty = the region Mask")
    motion_path: StringProperty(name="Motion Path", subtype="FILE_PATH",
                                description="Motion file or reference clip")
    use_regions: BoolProperty(name="Motion Regions", default=False,
                              description="Several regions, each with its own Mask and motion, instead of the Mask "
                              "and Motion above")
    regions: CollectionProperty(type=STILLFLOW_PG_region, name="Regions")
    region_index: IntProperty(name="Active Region", default=0, min=0)

    frames: IntProperty(name="Frames", description=_describe("frames"), default=_default("frames"),
                        min=1, max=_options.MAX_FRAMES)
    fps: FloatProperty(name="FPS", description=_describe("fps"), default=_default("fps"), min=0.01, max=240.0)
    speed: FloatProperty(name="Speed", description=_describe("speed"), default=_default("speed"),
                         min=0.0, soft_max=3.0)
    levels: IntProperty(name="Levels", description=_describe("levels"), default=_default("levels"), min=1, max=8)
    detail: EnumProperty(name="Detail", description=_describe("detail"),
                         items=[(d, d.title(), "") for d in _options.DETAIL_MODES], default=_default("detail"))
    inflow: EnumProperty(name="Inflow", description=_describe("inflow"),
                         items=[(m, m.title(), "") for m in _options.INFLOW_MODES], default=_default("inflow"))
    feather: FloatProperty(name="Feather", description=_describe("feather"), default=_default("feather"),
                           min=0.0, max=256.0, subtype="PIXEL")
    refine_mask: BoolProperty(name="Refine Mask", description=_describe("refine_mask"),
                              default=_default("refine_mask"))
    format: EnumProperty(name="File Format", description=_describe("format"),
                         items=(("png", "PNG", "8-bit PNG"), ("png16", "PNG 16-bit", "16-bit PNG"),
                                ("exr", "OpenEXR", "Float OpenEXR (sRGB-encoded values; the loop Image is "
                                 "tagged sRGB so Blender reads them right)")),
                         default=_default("format"))
    engine: EnumProperty(name="Engine", description=_describe("engine"),
                         items=[(e, e.title(), "") for e in _options.ENGINES], default=_default("engine"))
    device: StringProperty(name="Device", description=_describe("device"), default=_default("device"))

    use_scene_fps: BoolProperty(name="Set Scene FPS", default=False,
                                description="Set the scene's frame rate to the loop's when the result is placed")
    sequencer_loops: IntProperty(name="Loops", default=0, min=0, max=10000,
                                 description="How many times a sequencer strip (Add to Sequencer, Batch) repeats "
                                 "the loop; 0 = enough to cover the scene's frame range")

    show_motion_overlay: BoolProperty(name="Motion Overlay", default=False,
                                      description="Draw the motion field over the image")
    show_loop_preview: BoolProperty(name="Loop Preview", default=False,
                                    description="Play an approximate loop in the Image Editor while editing")

    # --- issue 12 (helper C): live feedback while a job runs ---
    show_live_preview: BoolProperty(
        name="Live Preview", default=True,
        description="While rendering, show the backend's small preview frames in the Image Editors that show "
                    "the still (the 'Stillflow preview' image); the loop replaces them when it is done")
    # --- end issue 12 (helper C) ---

    is_running: BoolProperty(name="Running", default=False, options={"SKIP_SAVE"})
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})
    status: StringProperty(name="Status", default="")
    result: PointerProperty(type=bpy.types.Image, name="Result", description="The last generated loop")
    result_dir: StringProperty(name="Result Folder", subtype="DIR_PATH", default="",
                               options={"PATH_SUPPORTS_BLEND_RELATIVE"})  # "//..." once the .blend is saved
    result_frames: IntProperty(name="Result Frames", default=0, min=0)
    result_fps: FloatProperty(name="Result FPS", default=_default("fps"), min=0.01)

    def option_values(self) -> dict[str, Any]:
        """Plain values of the render options, keyed by their stillflow.options names."""
        from .core.request import SCENE_OPTIONS

        return {name: getattr(self, name) for name in SCENE_OPTIONS}


class STILLFLOW_AP_preferences(bpy.types.AddonPreferences):
    """How to reach the backend and where results go."""

    bl_idname = __package__

    backend_mode: EnumProperty(
        name="Backend", description="How the add-on reaches the Stillflow backend",
        items=(("LOCAL", "Start Locally", "Start a backend process on this computer when needed"),
               ("REMOTE", "Connect", "Connect to a backend that is already running (this or another computer)")),
        default="LOCAL")
    python_path: StringProperty(
        name="Backend Python", subtype="FILE_PATH", default="",
        description="Python interpreter of the backend's environment; empty = find one that can import stillflow")
    endpoint: StringProperty(name="Endpoint", default="tcp://127.0.0.1:5555",
                             description="ZeroMQ endpoint of a running backend, e.g. tcp://gpu-box:5555")
    server_key: StringProperty(name="Server Key", default="",
                               description="CURVE public key of a remote backend (Z85 text or its .key file, "
                               "from `stillflow keys`)")
    client_key_file: StringProperty(name="Client Key File", default="", subtype="FILE_PATH",
                                    description="This computer's .key_secret file; its public key must be "
                                    "allowed by the backend")
    timeout: FloatProperty(name="Answer Timeout", default=2.5, min=0.05, max=120.0, subtype="TIME_ABSOLUTE",
                           description="Seconds to wait for each answer of the backend before retrying")
    output_dir: StringProperty(name="Output Folder", subtype="DIR_PATH", default="",
                               description="Where loops are written (one folder per image, one take per "
                               "Generate); empty = 'stillflow' beside the saved .blend (the extension's "
                               "user folder until the file is first saved)")
    keep_results: IntProperty(name="Keep Older Results", default=2, min=0, max=100,
                              description="Older takes of an image's loop kept on disk after a new Generate "
                              "(undo can go back to them); 0 = remove them")
    backend_status: StringProperty(name="Backend Status", default="", options={"SKIP_SAVE"})
    install_source: EnumProperty(
        name="Install From", description="Where Install Backend takes torch and the other packages from",
        items=(("INDEX", "Package Index", "Download them from the package index (needs Allow Online Access)"),
               ("EXTRA_INDEX", "Extra Index URL", "The package index plus another one, e.g. a PyTorch index "
                "for a CUDA build of torch (needs Allow Online Access)"),
               ("BUNDLE", "Offline Bundle", "A stillflow-backend-<platform>.zip (or a folder of wheels): "
                "no network at all")),
        default="INDEX")
    install_bundle: StringProperty(name="Backend Bundle", subtype="FILE_PATH", default="",
                                   description="stillflow-backend-<platform>.zip or a folder of wheels")
    install_index_url: StringProperty(name="Extra Index URL", default="",
                                      description="Another package index for torch, e.g. one with a CUDA build")
    install_status: StringProperty(name="Install Status", default="", options={"SKIP_SAVE"})
    install_progress: FloatProperty(name="Install Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR",
                                    options={"SKIP_SAVE"})

    def draw(self, context: bpy.types.Context) -> None:
        """Draw the preferences."""
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        if self.backend_mode == "LOCAL":
            from .install_ui import draw_preferences

            draw_preferences(layout, self)
            layout.prop(self, "python_path", text="Or Existing Environment's Python")
        else:
            layout.prop(self, "endpoint")
            col = layout.column(heading="CURVE Keys")
            col.prop(self, "server_key")
            col.prop(self, "client_key_file")
        layout.prop(self, "timeout")
        layout.prop(self, "output_dir")
        layout.prop(self, "keep_results")
        row = layout.row()
        row.operator("stillflow.check_backend", icon="PLUGIN")
        row.operator("stillflow.cancel", text="", icon="CANCEL")
        if self.backend_status:
            for line in self.backend_status.split("; "):
                layout.label(text=line)


def user_folder(name: str) -> Path:
    """A writable folder of the extension (``extension_path_user``), else Blender's user data folder's stillflow/."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, path=name, create=True))
    except ValueError:  # registered as a plain add-on (not an extension): still a per-user folder, never temp
        return Path(bpy.utils.user_resource("DATAFILES", path=f"stillflow/{name}", create=True))


def backend_home() -> BackendHome:
    """The private backend environments Install Backend makes, under the extension's user folder."""
    return BackendHome(user_folder("backend"))


def preferences(context: bpy.types.Context | None = None) -> STILLFLOW_AP_preferences:
    """The extension's preferences."""
    return (context or bpy.context).preferences.addons[__package__].preferences


def backend_config(context: bpy.types.Context | None = None) -> BackendConfig:
    """Plain copy of the preferences for core.backend."""
    prefs = preferences(context)
    private = backend_home().current() if prefs.backend_mode == "LOCAL" else None
    if prefs.backend_mode == "REMOTE":
        network.check_online_access(prefs.endpoint.strip(), online_access=bpy.app.online_access,
                                    forced_offline=bpy.app.online_access_override and not bpy.app.online_access)
    return BackendConfig(
        mode=prefs.backend_mode,
        python=bpy.path.abspath(prefs.python_path) if prefs.python_path else "",
        endpoint=prefs.endpoint.strip(),
        server_key=prefs.server_key.strip(),
        client_key_file=bpy.path.abspath(prefs.client_key_file) if prefs.client_key_file else "",
        log_dir=str(user_folder("logs")),
        timeout=prefs.timeout,
        results_dir=str(output_root(context)) if prefs.backend_mode == "LOCAL" else "",
        private_python=str(private.python) if private is not None else "",
    )


_SESSION_FOLDER = result_paths.session_folder_name()
"""Results of files not saved yet go here (under the user folder) until their first save."""


def session_results_root() -> Path:
    """This Blender session's folder for the results of unsaved files."""
    return user_folder("results") / _SESSION_FOLDER


def results_root(context: bpy.types.Context | None = None, blend_path: str | None = None) -> Path:
    """Folder holding ``<image>/take_NNNN`` result folders for the current (or the given) .blend file.

    The Output Folder preference when set (``//`` = beside the .blend); else ``stillflow/`` beside a
    saved .blend; else the session folder under the user folder (moved beside the .blend on first save).
    """
    prefs = preferences(context)
    blend_path = bpy.data.filepath if blend_path is None else blend_path
    chosen = prefs.output_dir.strip()
    if chosen and not (chosen.startswith("//") and not blend_path):
        start = str(Path(blend_path).parent) if blend_path else None
        return Path(bpy.path.abspath(chosen, start=start) if chosen.startswith("//") else bpy.path.abspath(chosen))
    return result_paths.blend_results_root(blend_path) or session_results_root()


def output_root(context: bpy.types.Context | None = None) -> Path:
    """Folder where the backend writes each job before it becomes a take; InputError when it cannot be created."""
    root = results_root(context)
    try:
        (root / ".jobs").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _errors.InputError(f"the Output Folder {root} cannot be created ({error.strerror or error})",
                                 hint="choose another one in the Stillflow preferences") from None
    return root / ".jobs"


CLASSES = (STILLFLOW_PG_region, STILLFLOW_PG_settings, STILLFLOW_AP_preferences)
