#!/usr/bin/env python3
"""An exec plugin for zftrain: filter and activation statistics.

zftrain runs it as `<command...> BUNDLE` at the hook's schedule:

    [[hooks]]
    kind = "exec"
    name = "filter_stats"
    command = ["python3", "examples/plugins/filter_stats.py"]
    layers = [1, 5]
    schedule = { every_epochs = 1 }

It reads BUNDLE/manifest.json, the weights and the requested activations
(safetensors, loaded with numpy), and writes into the manifest's `out`
folder: scalars.json (per conv layer: weight RMS; per requested layer: mean
activation and fraction of active units), weight_rms.png (a bar per conv
layer) and summary.md. zftrain logs them as plugins/filter_stats/<tag>.
Needs numpy and safetensors; Pillow for the PNG (skipped without it).
"""

import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file


def main():
    bundle = sys.argv[1]
    with open(os.path.join(bundle, "manifest.json")) as f:
        manifest = json.load(f)
    out = manifest["out"]
    scalars = {}
    rms = []
    weights_file = os.path.join(bundle, "weights.safetensors")
    if os.path.exists(weights_file):
        weights = load_file(weights_file)
        convs = [n for n, w in weights.items() if n.endswith(".weight") and w.ndim == 4]
        convs.sort(key=lambda n: [int(p) if p.isdigit() else p for p in n.split(".")])
        for i, name in enumerate(convs, 1):
            value = float(np.sqrt(np.mean(weights[name].astype(np.float64) ** 2)))
            scalars[f"conv{i}/weight_rms"] = value
            rms.append(value)
    acts = load_file(os.path.join(bundle, "activations.safetensors"))
    for layer in manifest["layers"]:
        a = acts[layer["label"]].astype(np.float64)
        scalars[f"{layer['label']}/mean_activation"] = float(a.mean())
        scalars[f"{layer['label']}/active_fraction"] = float((a > 0).mean())
    with open(os.path.join(out, "scalars.json"), "w") as f:
        json.dump(scalars, f)
    try:
        from PIL import Image, ImageDraw

        if rms:
            img = Image.new("RGB", (40 * len(rms) + 20, 120), "white")
            draw = ImageDraw.Draw(img)
            top = max(rms)
            for i, v in enumerate(rms):
                h = int(100 * v / top) if top > 0 else 0
                draw.rectangle([10 + 40 * i, 110 - h, 40 + 40 * i, 110], fill=(40, 90, 200))
            img.save(os.path.join(out, "weight_rms.png"))
    except ImportError:
        print("Pillow not installed: no weight_rms.png", file=sys.stderr)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(f"epoch {manifest['epoch']}, {manifest['probe_images']} probe images, {manifest['arch']}\n\n")
        for k, v in sorted(scalars.items()):
            f.write(f"- {k}: {v:.6g}\n")
    print(f"filter_stats: {len(scalars)} scalars", file=sys.stderr)


if __name__ == "__main__":
    main()
