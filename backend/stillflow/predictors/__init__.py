"""Learned predictors of a mask (pixel classifier on generator features) and of motion (an image-to-flow network)."""
