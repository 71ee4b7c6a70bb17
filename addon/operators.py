"""Stillflow operators (``bpy.ops.stillflow.*``): thin wrappers that read context, call core/runner, report. Imports bpy."""
from __future__ import annotations

import logging
from pathlib import Path

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from . import checking, placement, results, runner
from .core.lib import load

log = logging.getLogger(__name__)

_errors = load("errors")


def source_image(context: bpy.types.Context) -> bpy.types.Image | None:
    """The still to animate: the panel's choice, else the Image Editor's image (a loop's own still for a loop)."""
    settings = context.scene.stillflow
    if settings.image is not None:
        return settings.image
    space = context.space_data
    if space is None or space.type != "IMAGE_EDITOR" or space.image is None:
        return None
    still_name = space.image.get(placement.LOOP_SOURCE)
    if still_name:  # Generate on a loop regenerates the still it animates
        return bpy.data.images.get(still_name)
    return space.image if space.image != settings.result else None


class STILLFLOW_OT_generate(bpy.types.Operator):
    """Animate the still: send it with its mask and motion to the Stillflow backend and load the loop"""

    bl_idname = "stillflow.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if runner.active_tracker() is not None:
            cls.poll_message_set("A Stillflow job is already running")
            return False
        if checking.is_checking():
            cls.poll_message_set("Check Backend is still connecting (Cancel stops it)")
            return False
        if source_image(context) is None:
            space = context.space_data
            still = space.image.get(placement.LOOP_SOURCE) if getattr(space, "image", None) is not None else None
            cls.poll_message_set(f"The still '{still}' this loop animates is no longer in this file" if still
                                 else "Open an image in the Image Editor (or pick one in the panel)")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        image = source_image(context)
        try:
            tracker = runner.start(context, image)
        except _errors.StillflowError as error:
            context.scene.stillflow.is_running = False
            context.scene.stillflow.status = f"Error: {error}"
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if tracker.is_finished and tracker.state == "failed":
            self.report({"ERROR"}, context.scene.stillflow.status)
            return {"CANCELLED"}
        if tracker.is_finished:
            self.report({"INFO"}, context.scene.stillflow.status)
        return {"FINISHED"}


class STILLFLOW_OT_cancel(bpy.types.Operator):
    """Stop the running Stillflow job or Check Backend, also while the backend is starting (nothing is written)"""

    bl_idname = "stillflow.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if runner.active_tracker() is None and not checking.is_checking():
            cls.poll_message_set("No Stillflow job is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        tracker = runner.active_tracker()
        runner.cancel()
        if tracker is not None and not tracker.is_finished:
            context.scene.stillflow.status = "Cancelling..."
        return {"FINISHED"}


class STILLFLOW_OT_check_backend(bpy.types.Operator):
    """Connect to the Stillflow backend and show its version, device and engines"""

    bl_idname = "stillflow.check_backend"
    bl_label = "Check Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        line = checking.start(context, runner.CONNECTION, busy=runner.active_tracker() is not None,
                              wait=bpy.app.background and runner.WAIT_IN_BACKGROUND)
        if line.startswith("Cannot connect"):
            self.report({"ERROR"}, line)
            return {"CANCELLED"}
        if not checking.is_checking():
            self.report({"INFO"}, line)
        else:
            runner.ensure_timer()
        return {"FINISHED"}


class _ResultOperator:
    """Shared poll: these operators need a generated loop."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        settings = context.scene.stillflow
        if settings.result is None or settings.result_frames < 1:
            cls.poll_message_set("Generate a loop first")
            return False
        return True

    def _apply_fps(self, context: bpy.types.Context) -> None:
        """Match the scene's fps to the loop's when the panel asks for it."""
        settings = context.scene.stillflow
        if settings.use_scene_fps:
            results.apply_scene_fps(context.scene, settings.result_fps)


class STILLFLOW_OT_add_to_compositor(_ResultOperator, bpy.types.Operator):
    """Add an Image node playing the loop to the scene's compositor"""

    bl_idname = "stillflow.add_to_compositor"
    bl_label = "Add to Compositor"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.stillflow
        node = results.add_to_compositor(context.scene, settings.result, settings.result_frames)
        self._apply_fps(context)
        self.report({"INFO"}, f"Added compositor node '{node.name}'")
        return {"FINISHED"}


class STILLFLOW_OT_add_to_sequencer(_ResultOperator, bpy.types.Operator):
    """Add an image strip that repeats the loop over the scene's frame range (or the chosen number of loops)"""

    bl_idname = "stillflow.add_to_sequencer"
    bl_label = "Add to Sequencer"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.stillflow
        scene = getattr(context, "sequencer_scene", None) or context.scene
        strip = results.add_to_sequencer(scene, settings.result, settings.result_frames, settings.sequencer_loops)
        self._apply_fps(context)
        self.report({"INFO"}, f"Added strip '{strip.name}' ({strip.frame_final_duration} frames)")
        return {"FINISHED"}


class STILLFLOW_OT_add_to_material(_ResultOperator, bpy.types.Operator):
    """Add an Image Texture node playing the loop to the active object's material (a new one if it has none)"""

    bl_idname = "stillflow.add_to_material"
    bl_label = "Add to Material"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.stillflow
        obj = context.active_object
        material = obj.active_material if obj is not None else None
        if material is None:
            material = bpy.data.materials.new(settings.result.name)
            if obj is not None and hasattr(obj.data, "materials"):
                obj.data.materials.append(material)
        node = results.add_to_material(material, settings.result, settings.result_frames, context.scene)
        self._apply_fps(context)
        self.report({"INFO"}, f"Added '{node.name}' to material '{material.name}'")
        return {"FINISHED"}


class STILLFLOW_OT_batch_generate(bpy.types.Operator):
    """Generate loops for every still in a folder, waiting for each (works in blender -b), and place them"""

    bl_idname = "stillflow.batch_generate"
    bl_label = "Batch Generate"

    directory: StringProperty(name="Folder", subtype="DIR_PATH", description="Folder of stills")
    pattern: StringProperty(name="Files", default="*.png;*.jpg;*.jpeg;*.tif;*.tiff;*.exr",
                            description="File patterns separated by ';'")
    timeout: FloatProperty(name="Timeout", default=600.0, min=1.0, subtype="TIME_ABSOLUTE",
                           description="Seconds to wait for each still before giving up")
    add_to_sequencer: BoolProperty(name="Add to Sequencer", default=True,
                                   description="Place the loops one after another in the sequencer")
    loops: IntProperty(name="Loops", default=1, min=1, description="Loops per strip in the sequencer")

    def execute(self, context: bpy.types.Context) -> set[str]:
        from . import batch

        folder = Path(bpy.path.abspath(self.directory))
        paths = batch.find_stills(folder, self.pattern.split(";"))
        if not paths:
            self.report({"ERROR"}, f"no stills matching {self.pattern} in {folder}")
            return {"CANCELLED"}
        try:
            report = batch.generate_loops(paths, context=context, timeout=self.timeout,
                                          place_in_sequencer=self.add_to_sequencer, loops=self.loops)
        except _errors.StillflowError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"} if report.ok else {"WARNING"}, report.summary().replace("\n", "; "))
        return {"FINISHED"} if report.images else {"CANCELLED"}


CLASSES = (
    STILLFLOW_OT_generate,
    STILLFLOW_OT_cancel,
    STILLFLOW_OT_check_backend,
    STILLFLOW_OT_add_to_compositor,
    STILLFLOW_OT_add_to_sequencer,
    STILLFLOW_OT_add_to_material,
    STILLFLOW_OT_batch_generate,
)
