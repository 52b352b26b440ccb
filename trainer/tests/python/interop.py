"""PyTorch side of zftrain's interoperability tests.

  interop.py jpeg OUT                     write a photo-like 500x375 JPEG (quality 90)
  interop.py save-random ARCH CLASSES OUT save a PyTorch model's random state_dict as safetensors
  interop.py save-random-pth ARCH CLASSES OUT [legacy]
        the same with torch.save (a zip archive; a bare pickle with legacy),
        as a training script would, under "state_dict" with DataParallel's
        "module." prefixes
  interop.py preprocess IMAGE INPUT      compare zftrain's eval preprocessing with torchvision's
  interop.py check ARCH WEIGHTS INPUT PREDICTIONS
        load WEIGHTS into the PyTorch model with strict=True, run it on the
        input batch INPUT (safetensors, tensor "input") and compare with the
        logits in zftrain's `predict --json` output; prints the largest
        relative difference (max |ours - theirs| / max |theirs|) and exits 1
        above 1e-4, or when the same network on the mirrored input is not
        told apart (negative control).

ARCH: zfnet-seed (the seed article's class, verbatim), alexnet-tv
(torchvision.models.alexnet), zfnet and alexnet (written here with
nn.LocalResponseNorm, to check our LRN and layouts against PyTorch's).
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision
from safetensors.torch import load_file, save_file


class SeedZFNet(nn.Module):
    """The seed article's ZFNet, as printed there."""

    def __init__(self, class_num=5):
        super(SeedZFNet, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=7, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1, return_indices=True),
            nn.Conv2d(96, 256, kernel_size=5, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1, return_indices=True),
            nn.Conv2d(256, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, return_indices=True),
        )
        self.classifier = nn.Sequential(
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, class_num),
        )

    def forward(self, x):
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                x, _ = layer(x)
            else:
                x = layer(x)
        x = torch.flatten(x, start_dim=1)
        return self.classifier(x)


def lrn():
    # Krizhevsky's k=2, n=5, alpha=1e-4, beta=0.75 in PyTorch's convention.
    return nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)


def classifier(classes):
    return nn.Sequential(
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, classes),
    )


class ZFNet(nn.Module):
    """Zeiler & Fergus's ZFNet: conv, ReLU, pool, LRN in layers 1 and 2."""

    def __init__(self, classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 7, 2, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1), lrn(),
            nn.Conv2d(96, 256, 5, 2, 0), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1), lrn(),
            nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 0),
        )
        self.classifier = classifier(classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class AlexNet(nn.Module):
    """The dense AlexNet replication: conv, ReLU, LRN, pool in layers 1 and 2."""

    def __init__(self, classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, 4, 2), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, 1, 2), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )
        self.classifier = classifier(classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def make(arch, classes):
    if arch == "zfnet-seed":
        return SeedZFNet(class_num=classes)
    if arch == "alexnet-tv":
        return torchvision.models.alexnet(weights=None, num_classes=classes)
    if arch == "zfnet":
        return ZFNet(classes)
    if arch == "alexnet":
        return AlexNet(classes)
    if arch.startswith("vgg"):
        return getattr(torchvision.models, arch)(weights=None, num_classes=classes)
    raise SystemExit(f"unknown arch {arch}")


def jpeg(out):
    from PIL import Image

    h, w = 375, 500
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(7)
    img = np.stack([
        128 + 100 * np.sin(x / 37.0) * np.cos(y / 23.0),
        128 + 90 * np.cos((x + y) / 51.0),
        128 + 60 * np.sin(np.hypot(x - 250, y - 180) / 17.0),
    ], axis=-1) + rng.normal(0, 12, (h, w, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out, quality=90)


def save_random(arch, classes, out):
    torch.manual_seed(0)
    model = make(arch, int(classes))
    # Batch norms as after training (PyTorch starts them at the identity,
    # which would hide a wrong fold or a swapped mean and variance).
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(1234)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out)


def save_random_pth(arch, classes, out, legacy=None):
    torch.manual_seed(0)
    model = make(arch, int(classes))
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state}, out,
               _use_new_zipfile_serialization=legacy is None)


def check(arch, weights, input_path, predictions):
    state = load_file(weights)
    # classes = rows of the last classifier layer's weight
    last = max((k for k in state if k.startswith("classifier.") and k.endswith(".weight")),
               key=lambda k: int(k.split(".")[1]))
    classes = state[last].shape[0]
    model = make(arch, classes)
    model.load_state_dict(state, strict=True)
    model.eval()
    x = load_file(input_path)["input"]
    with torch.no_grad():
        ours = model(x).double().numpy()
        # Negative control: the same network on the mirrored input must be
        # told apart at this tolerance, or the comparison proves nothing.
        mirrored = model(torch.flip(x, dims=[3])).double().numpy()
    theirs = np.array([p["logits"] for p in json.load(open(predictions))], dtype=np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = float(np.abs(ours).max())
    rel = float(np.abs(ours - theirs).max() / scale)
    control = float(np.abs(mirrored - theirs).max() / scale)
    probs = torch.softmax(torch.from_numpy(ours), 1)
    prob_diff = float((probs - torch.softmax(torch.from_numpy(theirs), 1)).abs().max())
    print(f"{arch}: {ours.shape[0]} images x {ours.shape[1]} classes, max |logit| {scale:.4g}, "
          f"max relative difference {rel:.3g} (mirrored-input control {control:.3g}), "
          f"max probability difference {prob_diff:.3g}")
    if not rel <= 1e-4 or not control > 1e-4 or not prob_diff <= 1e-5:
        sys.exit(1)


def check_script(module_path, input_path, predictions):
    """A TorchScript module from `zftrain export --format torchscript`,
    loaded with torch.jit.load alone (no Python class of the network),
    gives zftrain's logits on the same input within 1e-5 relative; the
    mirrored input is the negative control."""
    model = torch.jit.load(module_path)
    model.eval()
    x = load_file(input_path)["input"]
    with torch.no_grad():
        ours = model(x).double().numpy()
        single = model(x[:1]).double().numpy()
        mirrored = model(torch.flip(x, dims=[3])).double().numpy()
    theirs = np.array([p["logits"] for p in json.load(open(predictions))], dtype=np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = float(np.abs(theirs).max())
    rel = float(np.abs(ours - theirs).max() / scale)
    batch_rel = float(np.abs(single - ours[:1]).max() / scale)
    control = float(np.abs(mirrored - theirs).max() / scale)
    print(f"torchscript {module_path}: {ours.shape[0]} images x {ours.shape[1]} classes, "
          f"max relative difference {rel:.3g}, batch of one {batch_rel:.3g} "
          f"(mirrored-input control {control:.3g})")
    if not (rel <= 1e-5 and batch_rel <= 1e-5 and control > 1e-5):
        sys.exit(1)


def preprocess(image, input_path):
    """zftrain's eval preprocessing against torchvision's (PIL decode,
    Resize(256), CenterCrop(224), ToTensor, Normalize with ImageNet's
    mean/std). Both decode with libjpeg-turbo; the resize kernels round
    differently, so the bound is on the mean difference (measured 0.0038; a
    one-pixel shift or a channel swap is far above it)."""
    from PIL import Image
    from torchvision import transforms as T

    ours = load_file(input_path)["input"][0]
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    theirs = tf(Image.open(image).convert("RGB"))
    diff = (ours - theirs).abs()
    shifted = (ours[:, :, 1:] - theirs[:, :, :-1]).abs().mean().item()
    print(f"preprocess: mean |difference| {diff.mean().item():.4f}, max {diff.max().item():.4f} "
          f"(normalized units; one-pixel-shift control {shifted:.4f})")
    if not (diff.mean().item() < 0.01 and shifted > 0.02):
        sys.exit(1)


def tv_params(name):
    """torchvision's model `name` (built on the meta device: shapes only,
    nothing allocated or downloaded): its learnable parameter count per
    module path and in all, as JSON."""
    import json
    import torchvision
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(weights=None)
    per = {}
    for key, p in model.named_parameters():
        module = key.rsplit(".", 1)[0]
        per[module] = per.get(module, 0) + p.numel()
    print(json.dumps({"modules": per, "total": sum(per.values())}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"jpeg": jpeg, "save-random": save_random, "save-random-pth": save_random_pth,
     "check": check, "check-script": check_script, "preprocess": preprocess,
     "tv-params": tv_params}[cmd](*args)
