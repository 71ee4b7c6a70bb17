"""Engine stages, one per module: motion, integration, splatting, pyramid, holes, compositing."""
