"""Operators around a placed loop's colours (``bpy.ops.stillflow.use_standard_view``). Imports bpy."""
from __future__ import annotations

import bpy

from .core.colour import DATA_FAITHFUL_VIEW


class STILLFLOW_OT_use_standard_view(bpy.types.Operator):
    """Show and render the loop with the photo's own colours: Standard view, no look, exposure 0, gamma 1"""

    bl_idname = "stillflow.use_standard_view"
    bl_label = "Use Standard View"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        view = context.scene.view_settings
        view.view_transform, view.look = DATA_FAITHFUL_VIEW, "None"
        view.exposure, view.gamma = 0.0, 1.0
        self.report({"INFO"}, f"Scene '{context.scene.name}' now uses the {DATA_FAITHFUL_VIEW} view")
        return {"FINISHED"}


CLASSES = (STILLFLOW_OT_use_standard_view,)
