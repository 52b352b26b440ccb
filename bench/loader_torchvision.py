"""torchvision's side of the data-loader benchmark (bench/loader).

What a PyTorch user writes: ImageFolder + DataLoader with the same
transforms as zftrain's (`zf`: Resize(256), CenterCrop(256), RandomCrop(224),
RandomHorizontalFlip; `rrc`: RandomResizedCrop(224), RandomHorizontalFlip;
then ToTensor and Normalize with ImageNet's mean and std), shuffled, the
same batch size and number of worker processes. `--epochs` epochs, timed
from the first batch (worker start-up left out, as for zftrain; with more
than one epoch the workers persist, as zftrain's threads cost nothing to
restart). Prints
`torchvision loader <augment> <workers> <img/s> <peak RSS MiB of this process and its workers>`.
"""

import argparse
import resource
import time

import torch
from torchvision import datasets, transforms


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--augment", default="zf", choices=["zf", "rrc"])
    p.add_argument("--epochs", type=int, default=1)
    a = p.parse_args()
    norm = [transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    if a.augment == "zf":
        tf = [transforms.Resize(256), transforms.CenterCrop(256), transforms.RandomCrop(224),
              transforms.RandomHorizontalFlip()]
    else:
        tf = [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip()]
    ds = datasets.ImageFolder(a.data, transforms.Compose(tf + norm))
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                                         persistent_workers=a.epochs > 1 and a.workers > 0)
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    n = 0
    for images, _ in it:
        n += images.shape[0]
    for _ in range(1, a.epochs):
        for images, _ in loader:
            n += images.shape[0]
    ips = n / (time.perf_counter() - start)
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
           + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(f"torchvision loader {a.augment} {a.workers} {ips:.1f} {rss:.0f}", flush=True)


if __name__ == "__main__":
    main()
