"""Stillflow panels in the Image Editor sidebar (draw only). Imports bpy."""
from __future__ import annotations

import textwrap

import bpy

from . import placement, runner
from .install_ui import draw_offer
from .operators import source_image


class _Sidebar:
    """Where every Stillflow panel lives."""

    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Stillflow"


class STILLFLOW_PT_main(_Sidebar, bpy.types.Panel):
    """Inputs, Generate / Cancel and the job's progress."""

    bl_label = "Stillflow"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.stillflow
        image = source_image(context)
        layout.prop(settings, "image")
        if settings.image is None:
            layout.label(text=f"Active: {image.name}" if image else "No image open", icon="IMAGE_DATA")
        layout.prop(settings, "mask_source")
        if settings.mask_source == "MASK":
            layout.prop(settings, "mask")
        elif settings.mask_source == "IMAGE":
            layout.prop(settings, "mask_image")
        layout.prop(settings, "motion_source")
        if settings.motion_source == "HINTS":
            layout.prop(settings, "arrows")
        else:
            layout.prop(settings, "motion_path")
        col = layout.column(align=True)
        col.prop(settings, "frames")
        col.prop(settings, "fps")
        col.prop(settings, "speed")
        layout.prop(settings, "show_live_preview")
        row = layout.row(align=True)
        if runner.active_tracker() is not None:
            row.progress(factor=settings.progress, type="BAR", text=settings.status or "Running")
            row.operator("stillflow.cancel", text="", icon="CANCEL")
        else:
            row.operator("stillflow.generate", icon="PLAY")
            draw_offer(layout, context)
            if settings.status:
                layout.label(text=settings.status, icon="ERROR" if settings.status.startswith("Error") else "INFO")


class STILLFLOW_PT_advanced(_Sidebar, bpy.types.Panel):
    """Less common render options."""

    bl_label = "Advanced"
    bl_parent_id = "STILLFLOW_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.stillflow
        col = self.layout.column()
        for name in ("levels", "detail", "inflow", "feather", "refine_mask", "engine", "device", "format"):
            col.prop(settings, name)


class STILLFLOW_PT_result(_Sidebar, bpy.types.Panel):
    """Use the generated loop in the compositor, the sequencer or a material."""

    bl_label = "Result"
    bl_parent_id = "STILLFLOW_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.stillflow
        if settings.result is None:
            layout.label(text="No loop generated yet")
            return
        layout.label(text=f"{settings.result.name}: {settings.result_frames} frames at {settings.result_fps:g} fps")
        _draw_warnings(layout, placement.loop_warnings(settings.result), context.region)
        layout.prop(settings, "use_scene_fps")
        _draw_view_hint(layout, context.scene)
        col = layout.column(align=True)
        col.operator("stillflow.add_to_compositor", icon="NODE_COMPOSITING")
        row = col.row(align=True)
        row.operator("stillflow.add_to_sequencer", icon="SEQUENCE")
        row.prop(settings, "sequencer_loops", text="Loops")
        col.operator("stillflow.add_to_material", icon="MATERIAL")


def _draw_warnings(layout: bpy.types.UILayout, warnings: list[str], region: bpy.types.Region | None) -> None:
    """The backend's warnings about the loop, wrapped to the sidebar's width."""
    if not warnings:
        return
    width = max(20, int((region.width if region is not None else 300) / 7))
    box = layout.box()
    for warning in warnings:
        for index, line in enumerate(textwrap.wrap(warning[0].upper() + warning[1:], width)):
            box.label(text=line, icon="ERROR" if index == 0 else "BLANK1")


def _draw_view_hint(layout: bpy.types.UILayout, scene: bpy.types.Scene) -> None:
    """Issue 12: say when colour management changes the loop's colours, with a one-click fix."""
    from .core.colour import view_advice

    view = scene.view_settings
    advice = view_advice(view.view_transform, view.look, view.exposure, view.gamma)
    if advice is not None:
        box = layout.box()
        box.label(text=advice[0].upper() + advice[1:], icon="COLOR")
        box.operator("stillflow.use_standard_view", icon="CHECKMARK")


class STILLFLOW_PT_preview(_Sidebar, bpy.types.Panel):
    """Live motion overlay and loop preview while editing arrows and speed."""

    bl_label = "Preview"
    bl_parent_id = "STILLFLOW_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        from . import preview

        preview.draw_controls(self.layout, context.scene.stillflow)


CLASSES = (STILLFLOW_PT_main, STILLFLOW_PT_advanced, STILLFLOW_PT_result, STILLFLOW_PT_preview)
