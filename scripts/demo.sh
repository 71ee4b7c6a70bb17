#!/usr/bin/env bash
# The quick-start "main job": set up, render the bundled sample through the real backend
# (frames + MP4), and build the installable Blender extension zips into dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

sample=samples/picos
hints=()
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  hints+=(--hint "$line")
done < "$sample/hints.txt"

echo "[demo] rendering $sample/picos.jpg -> out/picos (60 frames) and out/picos.mp4"
.venv/bin/stillflow render "$sample/picos.jpg" --mask "$sample/picos_mask.png" "${hints[@]}" \
  --frames 60 --fps 30 --out out/picos --video out/picos.mp4

# Two motion regions in one still: the sky flows along the arrows, the meadow sways in the wind
# (1.5 px, two whole cycles per loop, to the right, as a wave crossing the field).
echo "[demo] two regions: $sample/picos.jpg -> out/picos_regions (sky flows, meadow sways) and out/picos_regions.mp4"
.venv/bin/stillflow render "$sample/picos.jpg" \
  --region "$sample/picos_mask.png:hints=$sample/hints.txt" \
  --region "$sample/picos_grass_mask.png:sway=1.5,2,0" \
  --frames 60 --fps 30 --out out/picos_regions --video out/picos_regions.mp4

echo "[demo] building the Blender extension"
.venv/bin/python scripts/build_extension.py
ls -1 dist/
