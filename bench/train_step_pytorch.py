"""PyTorch's side of the ZFNet CPU training-step benchmark (bench/train-step).

The peer a user would otherwise run: ZFNet (the same layers as zftrain's
`zfnet`), torch.optim.SGD (momentum 0.9, weight decay 5e-4), cross-entropy,
random input, timed over whole steps (forward, backward, optimizer) after
warm-up steps. Modes: fp32 eager; autocast bf16; autocast bf16 with the model
and input in channels-last. Prints one line per mode: `pytorch <mode> <img/s>`.
"""

import argparse
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


def measure(mode, batch, steps, warmup, classes):
    torch.manual_seed(0)
    model = zfnet(classes)
    x = torch.randn(batch, 3, 224, 224)
    y = torch.randint(0, classes, (batch,))
    if mode == "bf16-channels-last":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

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
    a = p.parse_args()
    for mode in a.modes.split(","):
        ips = measure(mode, a.batch, a.steps, a.warmup, a.classes)
        print(f"pytorch {mode}{a.suffix} {ips:.2f}", flush=True)


if __name__ == "__main__":
    main()
