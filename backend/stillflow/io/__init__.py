"""Reading and writing images, frame folders (atomically) and videos."""
