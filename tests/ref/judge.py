"""An independent judge of generated Fashion-MNIST images: a small CNN trained only on the real
training images (never on mm's outputs), fixed seed, then used two ways:

  accuracy   the share of generated images of class c that the judge classifies as c;
  Frechet    the Frechet distance between two sets of images in the judge's penultimate
             features (128 values after the ReLU): |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)),
             Tr (S1 S2)^(1/2) as the sum of the square roots of the eigenvalues of
             S1^(1/2) S2 S1^(1/2) (symmetric, so no general matrix square root is needed).

The floor is the same distance from real training images (as many per class as there are
generated ones, the first ones in file order) to the real images judged against: what a
generator that matched the data would score at that sample size. --against test (default):
the 10,000 test images; --against val: the last 10,000 training images, for sweeps (the floor's
images are then the first of the other 50,000).

  judge.py train --data DIR --out judge.pt            (DIR: the four IDX files, gzip'd)
  judge.py eval --model judge.pt --data DIR (--gen LABEL=PNGDIR | --grid LABEL=GRID.png [--per-grid N]) ...
                [--against test|val] [--json FILE]

--gen takes the class index (0-9, the order of the IDX labels) and a folder of 28x28 grey PNGs
generated for that class; --grid takes the class index and a grid PNG of mm-eval --samples
holding --per-grid images (ceil(sqrt(N)) columns of 28x28 cells, 2 pixels apart). Prints one line per figure and, with --json, writes them.
Recipe: conv 32 (3x3) - ReLU - max-pool 2 - conv 64 (3x3) - ReLU - max-pool 2 - linear 128 -
ReLU - linear 10; Adam lr 1e-3, batch 128, 4 epochs, seed 0, 2 threads.
"""
import argparse
import glob
import gzip
import json
import os
import struct
import sys
import zlib

os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    magic, = struct.unpack(">I", b[:4])
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, b[4:4 + 4 * nd])
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


def read_png_grey(path):
    """8-bit greyscale (or RGB/RGBA, averaged), non-interlaced PNG: enough for mm-sample's output."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    at, idat, w = 8, b"", 0
    while at < len(b):
        n, kind = struct.unpack(">I4s", b[at:at + 8])
        data = b[at + 8:at + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data)
            if depth != 8 or interlace:
                raise ValueError(f"{path}: only 8-bit non-interlaced PNGs")
            ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
        elif kind == b"IDAT":
            idat += data
        at += 12 + n
    raw = zlib.decompress(idat)
    stride = w * ch
    out = np.zeros((h, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, np.int32)
        for x in range(stride):
            a = cur[x - ch] if x >= ch else 0
            c = prev[x - ch] if x >= ch else 0
            up = prev[x]
            if ft == 0:
                p = 0
            elif ft == 1:
                p = a
            elif ft == 2:
                p = up
            elif ft == 3:
                p = (a + up) // 2
            else:
                pa, pb, pc = abs(up - c), abs(a - c), abs(a + up - 2 * c)
                p = a if pa <= pb and pa <= pc else up if pb <= pc else c
            cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    img = out.reshape(h, w, ch)[:, :, :min(ch, 3)].mean(axis=2)
    return img.astype(np.uint8)


class Judge(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        f = self.features(x)
        return self.head(f), f


def to_tensor(images):
    return torch.tensor(np.asarray(images), dtype=torch.float32).unsqueeze(1) / 255.0


def train(args):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x = to_tensor(read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz")))
    y = torch.tensor(read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    m = Judge()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for epoch in range(4):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            loss = nn.functional.cross_entropy(m(x[idx])[0], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}", file=sys.stderr)
    tmp = args.out + ".tmp"
    torch.save(m.state_dict(), tmp)
    os.replace(tmp, args.out)


def run(m, x):
    with torch.no_grad():
        out = [m(x[i:i + 1000]) for i in range(0, len(x), 1000)]
    return torch.cat([o[0] for o in out]).argmax(1), torch.cat([o[1] for o in out]).double()


def frechet(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = torch.cov(f1.T), torch.cov(f2.T)
    e, v = torch.linalg.eigh(s1)
    r1 = v @ torch.diag(e.clamp(min=0).sqrt()) @ v.T
    lam = torch.linalg.eigvalsh(r1 @ s2 @ r1).clamp(min=0)
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * lam.sqrt().sum())


def evaluate(args):
    torch.set_num_threads(2)
    m = Judge()
    m.load_state_dict(torch.load(args.model))
    m.eval()
    if args.against == "test":
        xt = to_tensor(read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")))
        yt = torch.tensor(read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    else:  # the validation split: the last 10,000 training images (for sweeps, never the test set)
        xt = to_tensor(read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))[50000:])
        yt = torch.tensor(read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))[50000:].astype(np.int64))
    pred_t, feat_t = run(m, xt)
    fig = {"against": args.against, "judge_accuracy_real": float((pred_t == yt).double().mean())}
    if args.gen or args.grid:
        imgs, labels = [], []
        for spec in args.gen:
            lab, d = spec.split("=", 1)
            files = sorted(glob.glob(os.path.join(d, "*.png")))
            if not files:
                sys.exit(f"judge.py: {d}: no PNG files")
            imgs += [read_png_grey(f) for f in files]
            labels += [int(lab)] * len(files)
        for spec in args.grid:
            lab, f = spec.split("=", 1)
            g, n = read_png_grey(f), args.per_grid
            cols = 1
            while cols * cols < n:
                cols += 1
            rows = (n + cols - 1) // cols
            if g.shape != (rows * 30 - 2, cols * 30 - 2):
                sys.exit(f"judge.py: {f}: {g.shape[1]}x{g.shape[0]} is not a grid of {n} images of 28x28")
            imgs += [g[(i // cols) * 30:(i // cols) * 30 + 28, (i % cols) * 30:(i % cols) * 30 + 28] for i in range(n)]
            labels += [int(lab)] * n
        xg, yg = to_tensor(imgs), torch.tensor(labels)
        pred_g, feat_g = run(m, xg)
        fig["judge_accuracy_generated"] = float((pred_g == yg).double().mean())
        fig["generated"] = len(labels)
        fig["mean_intensity_generated"] = float(xg.mean())
        fig["mean_intensity_real"] = float(xt.mean())
        # the floor: as many real training images per class as generated, the first ones
        xr = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
        yr = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
        pick = []
        for c in sorted(set(labels)):
            pick += list(np.nonzero(yr == c)[0][:labels.count(c)])
        _, feat_r = run(m, to_tensor(xr[pick]))
        fig["frechet_generated"] = frechet(feat_g, feat_t)
        fig["frechet_floor"] = frechet(feat_r, feat_t)
        fig["frechet_over_floor"] = fig["frechet_generated"] / fig["frechet_floor"]
    for k, v in fig.items():
        print(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(fig, f, indent=1)
        os.replace(tmp, args.json)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--gen", action="append", default=[])
    e.add_argument("--grid", action="append", default=[])
    e.add_argument("--per-grid", type=int, default=100)
    e.add_argument("--json")
    e.add_argument("--against", choices=["test", "val"], default="test")
    args = p.parse_args()
    train(args) if args.cmd == "train" else evaluate(args)


if __name__ == "__main__":
    main()
