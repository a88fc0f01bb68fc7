"""Speed peer for image sampling: generates 28x28 images from captions with the mm model in
PyTorch (float32, CPU), 50 Heun steps, classifier-free guidance with the conditional and
unconditional rows in one batch, and prints images/s. Weights are random (speed only).

Rows: conditional  BOS, 12 caption tokens, BOI, 49 patches;  unconditional  BOS, BOI, 49 patches
(caption dropped), padded at the end to the same length. At each model call
x = x_uncond + g * (x_cond - x_uncond), v = (x - z) / max(1 - t, 0.05), and the ODE dz/dt = v
runs from t = 0 (noise) to t = 1 (clean) on a uniform grid; Heun's second evaluation is skipped
on the last step (99 model calls for 50 steps).

--kv reuse (default): the prefix (BOS, caption, BOI) never attends to patches, so its keys and
values are computed once per image and each model call runs only the 49 patch positions.
--kv recompute: every call runs the whole row (what a plain implementation does).
--check compares the two paths on the first call before timing.

Last line: images_per_s=<float> s_per_image=<float> ...
"""
import argparse
import os
import sys
import time

# Some of these machines set OPENBLAS_CORETYPE=Haswell (Debian's OpenBLAS misdetects the
# processor); supply it where a shell lacks it, never override it. OpenBLAS reads it at load.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import (BOI, BOS, Config, MMModel, attention_mask, full_mask, rmsnorm,  # noqa: E402
                   rope_angles)


def rows(c, n, caption, gen):
    """The 2n rows (n conditional, then n unconditional) as batch arrays without z and t."""
    NP, T = c.npatch, caption + 2 + c.npatch
    B = 2 * n
    token = torch.full((B, T), 256, dtype=torch.long)
    doc = torch.full((B, T), -1, dtype=torch.long)
    img = torch.full((B, T), -1, dtype=torch.long)
    patch = torch.full((B, T), -1, dtype=torch.long)
    pos = torch.zeros(B, T, dtype=torch.long)
    for r in range(B):
        words = torch.randint(0, 256, (caption,), generator=gen).tolist() if r < n else []
        pre = [BOS] + words + [BOI]
        L = len(pre) + NP
        token[r, : len(pre)] = torch.tensor(pre)
        token[r, len(pre): L] = -1
        doc[r, :L] = 0
        img[r, len(pre): L] = 0
        patch[r, len(pre): L] = torch.arange(NP)
        pos[r, :L] = torch.arange(L)
    return dict(token=token, doc=doc, img=img, patch=patch, pos=pos)


class Recompute:
    """Every call embeds and runs the whole row."""

    def __init__(self, model, b):
        self.m, self.b = model, b
        self.mask = full_mask(b["doc"], b["img"])
        self.is_img = b["img"] >= 0
        self.B, self.T = b["token"].shape

    def __call__(self, z, t):
        """z (B, NP, P) at noise level t -> x_pred (B, NP, P)."""
        m, b = self.m, dict(self.b)
        P = m.cfg.pdim
        zz = z.new_zeros(self.B, self.T, P)
        zz[self.is_img] = z.reshape(-1, P)
        b["z"] = zz
        b["t"] = torch.full((self.B, self.T), t) * self.is_img
        y, _ = m.trunk(m.embed(b), b["pos"], self.mask)
        return (torch.matmul(y[self.is_img], m.ph_w.t()) + m.ph_b).view(z.shape)


class Reuse:
    """The prefix's keys and values are computed once; each call runs the patches only."""

    def __init__(self, model, b):
        self.m = model
        c = model.cfg
        is_img = b["img"] >= 0
        B, T = b["token"].shape
        NP = c.npatch
        Tp = T - NP  # longest prefix (the conditional rows')
        # Prefix rows: the positions before the first patch; shorter ones padded (doc -1).
        first = is_img.float().argmax(1)
        idx = torch.arange(Tp).expand(B, Tp)
        valid = idx < first.unsqueeze(1)
        pre = {k: torch.where(valid, b[k][:, :Tp], torch.full_like(idx, fill)) for k, fill in
               (("token", 256), ("doc", -1), ("img", -1), ("pos", 0), ("patch", -1))}
        self.pdoc = pre["doc"]
        _, self.kv = model.trunk(model.embed(pre), pre["pos"], full_mask(pre["doc"], pre["img"]))
        sel = lambda k: b[k][is_img].view(B, NP)  # noqa: E731
        self.pat = dict(token=sel("token"), doc=sel("doc"), img=sel("img"), pos=sel("pos"),
                        patch=sel("patch"))
        before = torch.cat([torch.ones(NP, Tp, dtype=torch.bool), torch.zeros(NP, NP, dtype=torch.bool)], 1)
        kdoc = torch.cat([self.pdoc, self.pat["doc"]], 1)
        kimg = torch.cat([pre["img"], self.pat["img"]], 1)
        self.mask = attention_mask(self.pat["doc"], self.pat["img"], kdoc, kimg, before)
        self.B, self.NP = B, NP

    def __call__(self, z, t):
        m = self.m
        b = dict(self.pat, z=z, t=torch.full((self.B, self.NP), t))
        x = m.embed(b)
        cos, sin = rope_angles(b["pos"], m.cfg.dim // m.cfg.heads, x.dtype)
        for l, blk in enumerate(m.layers):
            x, _ = blk(x, cos, sin, self.mask, self.kv[l])
        y = rmsnorm(x, m.final_norm)
        return torch.matmul(y, m.ph_w.t()) + m.ph_b


def sample(f, n, c, steps, g, gen):
    """Heun from t = 0 to 1 with CFG; f maps (2n, NP, P) noised patches -> x_pred."""
    z = torch.randn(n, c.npatch, c.pdim, generator=gen)
    ts = torch.linspace(0, 1, steps + 1).tolist()

    def vel(z, t):
        xp = f(torch.cat([z, z]), t)
        x = xp[n:] + g * (xp[:n] - xp[n:])
        return (x - z) / max(1 - t, 0.05)

    calls = 0
    for i in range(steps):
        dt = ts[i + 1] - ts[i]
        v1 = vel(z, ts[i])
        calls += 1
        ze = z + dt * v1
        if i + 1 < steps:
            z = z + dt * 0.5 * (v1 + vel(ze, ts[i + 1]))
            calls += 1
        else:
            z = ze
    return z, calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=8, help="images per batch (2x rows with CFG)")
    ap.add_argument("--steps", type=int, default=50, help="Heun steps")
    ap.add_argument("--cfg", type=float, default=2.0, help="guidance scale g")
    ap.add_argument("--kv", choices=("reuse", "recompute"), default="reuse")
    ap.add_argument("--check", action="store_true", help="compare both paths on one call first")
    ap.add_argument("--caption", type=int, default=12)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--mlp", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--img", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--bottleneck", type=int, default=0)
    ap.add_argument("--qk-norm", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    c = Config(dim=a.dim, layers=a.layers, heads=a.heads, mlp=a.mlp, vocab=a.vocab, img_h=a.img,
               img_w=a.img, img_c=a.channels, patch=a.patch, bottleneck=a.bottleneck,
               qk_norm=a.qk_norm, image_weight=5.0)
    c.seq_len = a.caption + 2 + c.npatch
    gen = torch.Generator().manual_seed(a.seed)
    model = MMModel(c)
    model.init_params(gen)
    b = rows(c, a.images, a.caption, gen)
    with torch.no_grad():
        if a.check:
            z = torch.randn(2 * a.images, c.npatch, c.pdim, generator=gen)
            x1, x2 = Recompute(model, b)(z, 0.3), Reuse(model, b)(z, 0.3)
            d = float((x1 - x2).abs().max())
            print(f"check: reuse vs recompute max |diff| {d:.3g}")
            assert d < 1e-4
        t0 = time.perf_counter()
        f = Reuse(model, b) if a.kv == "reuse" else Recompute(model, b)
        out, calls = sample(f, a.images, c, a.steps, a.cfg, gen)
        dt = time.perf_counter() - t0
    assert torch.isfinite(out).all()
    print(f"torch {torch.__version__} threads {a.threads}; dim {c.dim} layers {c.layers} heads {c.heads} "
          f"mlp {c.mlp}; {a.images} images x 2 rows (CFG {a.cfg}), {a.steps} Heun steps, {calls} model "
          f"calls, kv {a.kv}")
    print(f"images_per_s={a.images / dt:.3f} s_per_image={dt / a.images:.3f} total_s={dt:.2f}")


if __name__ == "__main__":
    main()
