"""PyTorch's side of the ZFNet training-step benchmark (bench/train-step on the
CPU, scripts/gpu-check on a GPU).

The peer a user would otherwise run: ZFNet (the same layers as zftrain's
`zfnet`), torch.optim.SGD (momentum 0.9, weight decay 5e-4), cross-entropy,
random input, timed over whole steps (forward, backward, optimizer) after
warm-up steps. Modes: fp32 eager; autocast bf16 (or fp16 with a GradScaler on
CUDA); each optionally with the model and input in channels-last. On CUDA the
input is moved to the GPU each step from pinned memory, `cudnn.benchmark` is
on (as torchvision's reference trainer sets it), and the loss is read back
every step (as zftrain does to log it). With `--data DIR` the batches come
from JPEG files through torchvision's ImageFolder + DataLoader (`--workers`
processes, the `zf` transforms of bench/loader_torchvision.py, shuffled,
persistent workers, pinned memory on CUDA), as a user's training script
reads them. Prints one line per mode: `pytorch <mode> <img/s>`.
"""

import argparse
import os
import time

import torch
import torch.nn as nn


def zfnet(classes):
    lrn = lambda: nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)
    return nn.Sequential(
        nn.Sequential(
            nn.Conv2d(3, 96, 7, 2, 1), nn.ReLU(), nn.MaxPool2d(3, 2, 1), lrn(),
            nn.Conv2d(96, 256, 5, 2, 0), nn.ReLU(), nn.MaxPool2d(3, 2, 1), lrn(),
            nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2),
        ),
        nn.Flatten(),
        nn.Sequential(
            nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, classes),
        ),
    )


def jpeg_batches(data, batch, workers, cuda):
    """Endless (images, labels) batches of an ImageFolder, as a user loads them."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(256), transforms.RandomCrop(224),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(data, tf), batch_size=batch, shuffle=True, drop_last=True,
        num_workers=workers, persistent_workers=workers > 0, pin_memory=cuda)
    while True:
        yield from loader


def measure(mode, batch, steps, warmup, classes, device, data=None, workers=0):
    torch.manual_seed(0)
    cuda = device.startswith("cuda")
    model = zfnet(classes).to(device)
    channels_last = mode.endswith("channels-last")
    if cuda:
        torch.backends.cudnn.benchmark = True
    if data is None:
        x = torch.randn(batch, 3, 224, 224)
        y = torch.randint(0, classes, (batch,))
        if cuda:
            x, y = x.pin_memory(), y.pin_memory()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        batches = iter(lambda: (x, y), None)
    else:
        batches = jpeg_batches(data, batch, workers, cuda)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    base = mode.removesuffix("-channels-last")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[base]
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)

    def step():
        x, y = next(batches)
        xd = x.to(device, non_blocking=True)
        yd = y.to(device, non_blocking=True)
        if channels_last:
            xd = xd.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.split(":")[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(xd), yd)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        loss.item()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--modes", default="fp32,bf16,bf16-channels-last")
    p.add_argument("--suffix", default="", help="appended to each mode's name")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--data", help="an ImageFolder to train on instead of random input")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="DataLoader workers with --data")
    a = p.parse_args()
    for mode in a.modes.split(","):
        ips = measure(mode, a.batch, a.steps, a.warmup, a.classes, a.device, a.data, a.workers)
        print(f"pytorch {mode}{a.suffix} {ips:.2f}", flush=True)


if __name__ == "__main__":
    main()
