"""Motion regions in the sidebar: the list, add / remove, and the active region's settings. Imports bpy.

Each region is a ``STILLFLOW_PG_region`` in ``scene.stillflow.regions`` (saved with the .blend):
its Mask's closed filled splines are the region, its open splines the arrows (docs/regions.md).
"""
from __future__ import annotations

import bpy

from .core.request import SWAY_MOTIONS
from .panels import _Sidebar


class STILLFLOW_UL_regions(bpy.types.UIList):
    """One row per motion region: name, Mask and motion."""

    def draw_item(self, context: bpy.types.Context, layout: bpy.types.UILayout, data: object, item: object,
                  icon: int, active_data: object, active_property: str, index: int = 0, flt_flag: int = 0) -> None:
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False)
        row.label(text=item.mask.name if item.mask is not None else "no Mask", icon="MOD_MASK")
        row.label(text=item.motion.title())


class STILLFLOW_OT_region_add(bpy.types.Operator):
    """Add a motion region: pick its Mask (closed splines = region, open splines = arrows) and its motion"""

    bl_idname = "stillflow.region_add"
    bl_label = "Add Region"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.stillflow
        region = settings.regions.add()
        region.name = f"Region {len(settings.regions)}"
        settings.region_index = len(settings.regions) - 1
        settings.use_regions = True
        return {"FINISHED"}


class STILLFLOW_OT_region_remove(bpy.types.Operator):
    """Remove the selected motion region"""

    bl_idname = "stillflow.region_remove"
    bl_label = "Remove Region"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        settings = context.scene.stillflow
        if not 0 <= settings.region_index < len(settings.regions):
            cls.poll_message_set("No region is selected")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.stillflow
        settings.regions.remove(settings.region_index)
        settings.region_index = max(0, min(settings.region_index, len(settings.regions) - 1))
        return {"FINISHED"}


class STILLFLOW_PT_regions(_Sidebar, bpy.types.Panel):
    """Several regions, each with its own Mask and motion (instead of the Mask and Motion above)."""

    bl_label = "Motion Regions"
    bl_parent_id = "STILLFLOW_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, context: bpy.types.Context) -> None:
        self.layout.prop(context.scene.stillflow, "use_regions", text="")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.stillflow
        layout.active = settings.use_regions
        row = layout.row()
        row.template_list("STILLFLOW_UL_regions", "", settings, "regions", settings, "region_index", rows=3)
        buttons = row.column(align=True)
        buttons.operator("stillflow.region_add", text="", icon="ADD")
        buttons.operator("stillflow.region_remove", text="", icon="REMOVE")
        if not 0 <= settings.region_index < len(settings.regions):
            return
        region = settings.regions[settings.region_index]
        layout.prop(region, "mask")
        layout.prop(region, "motion")
        col = layout.column(align=True)
        col.prop(region, "speed")
        if region.motion == "DRIFT":
            col.prop(region, "drift_angle")
            col.prop(region, "drift_speed")
        elif region.motion in SWAY_MOTIONS:
            col.prop(region, "amplitude")
            col.prop(region, "cycles")
            if region.motion == "SWAY":
                col.prop(region, "sway_angle")
            layout.template_ID(region, "amplitude_image", open="image.open", text="Amplitude Image")


CLASSES = (STILLFLOW_UL_regions, STILLFLOW_OT_region_add, STILLFLOW_OT_region_remove, STILLFLOW_PT_regions)
