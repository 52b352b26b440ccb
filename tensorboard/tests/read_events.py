"""Reads a log directory with TensorBoard's own EventAccumulator and prints
what it found as JSON: scalars, images (decoded with PIL), histograms, text,
hparams, each tag's description, and the custom-scalars layout."""
import io
import json
import sys

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
acc.Reload()
tags = acc.Tags()
out = {"scalars": {}, "images": {}, "histograms": {}, "text": {}}
for tag in tags["scalars"]:
    out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
for tag in tags["images"]:
    out["images"][tag] = []
    for e in acc.Images(tag):
        pixels = np.asarray(Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB"))
        out["images"][tag].append({"step": e.step, "width": e.width, "height": e.height,
                                   "pixels": pixels.reshape(-1).tolist()})
for tag in tags["histograms"]:
    out["histograms"][tag] = [{"step": e.step, "num": e.histogram_value.num, "min": e.histogram_value.min,
                               "max": e.histogram_value.max, "bucket": list(e.histogram_value.bucket)}
                              for e in acc.Histograms(tag)]
for tag in tags["tensors"]:
    if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
        continue
    out["text"][tag] = [[e.step, e.tensor_proto.string_val[0].decode("utf-8")] for e in acc.Tensors(tag)]
out["hparams"] = {}
try:
    content = acc.PluginTagToContent("hparams")
except KeyError:
    content = {}
if content:
    from google.protobuf import json_format
    from tensorboard.plugins.hparams import plugin_data_pb2
    for tag, raw in content.items():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        out["hparams"][tag] = json_format.MessageToDict(data)
out["descriptions"] = {}
for kind in ("scalars", "images", "histograms", "tensors"):
    for tag in tags[kind]:
        try:
            out["descriptions"][tag] = acc.SummaryMetadata(tag).summary_description
        except KeyError:
            out["descriptions"][tag] = ""
out["layout"] = None
if "custom_scalars__config__" in tags["tensors"]:
    from google.protobuf import json_format
    from tensorboard.plugins.custom_scalar import layout_pb2
    raw = acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0]
    out["layout"] = json_format.MessageToDict(layout_pb2.Layout.FromString(raw))
print(json.dumps(out))
