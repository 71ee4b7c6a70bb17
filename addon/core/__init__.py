"""Blender-free logic of the Stillflow add-on (job tracking, loop maths, inputs, backend link).

No ``bpy`` module use anywhere in this package: it is tested under plain Python.
"""
