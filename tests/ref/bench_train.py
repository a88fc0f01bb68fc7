"""Speed peer: trains the mm model in PyTorch (float32, CPU) on random batches and prints the
median training speed. Defaults are the reference configuration of mm-model(7): dim 384, 6 layers,
6 heads, SwiGLU 1024, vocab 4096, 28x28x1 images in 4x4 patches, rows of 64 positions
(BOS, 12 text, BOI, 49 patches, EOI), 32 rows, 2 threads. One step = forward, backward,
global-norm clipping at 1.0, AdamW (decay on matrices only).

    /usr/bin/python3 tests/ref/bench_train.py [--threads 2 --steps 10 --warmup 2 ...]

Last line: positions_per_s=<float> step_s_median=<float> ...; the C benchmark runs the same shapes.
"""
import argparse
import os
import statistics
import sys
import time

# Some of these machines set OPENBLAS_CORETYPE=Haswell (Debian's OpenBLAS misdetects the
# processor); supply it where a shell lacks it, never override it. OpenBLAS reads it at load.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import BOI, BOS, EOI, Config, MMModel  # noqa: E402


def layout(c, text):
    """One document per row: BOS, `text` tokens, BOI, patches, EOI. Returns the fixed arrays."""
    NP = c.npatch
    T = 1 + text + 1 + NP + 1
    img = torch.full((T,), -1, dtype=torch.long)
    patch = torch.full((T,), -1, dtype=torch.long)
    img[text + 2: text + 2 + NP] = 0
    patch[text + 2: text + 2 + NP] = torch.arange(NP)
    return T, img, patch


def random_batch(c, B, text, gen):
    T, img, patch = layout(c, text)
    is_img = img >= 0
    token = torch.randint(0, 256, (B, T), generator=gen)
    token[:, 0], token[:, text + 1], token[:, -1] = BOS, BOI, EOI
    token[:, is_img] = -1
    target = torch.full((B, T), -1, dtype=torch.long)
    target[:, : text + 1] = token[:, 1: text + 2]  # BOS..last word predict the next, up to BOI
    t = torch.sigmoid(torch.randn(B, 1, generator=gen) * 0.8 - 0.8).expand(B, T).contiguous()
    x = torch.rand(B, T, c.pdim, generator=gen) * 2 - 1
    eps = torch.randn(B, T, c.pdim, generator=gen)
    z = t.unsqueeze(-1) * x + (1 - t.unsqueeze(-1)) * eps
    m = is_img.view(1, T, 1).float()
    return dict(token=token, target=target, doc=torch.zeros(B, T, dtype=torch.long),
                img=img.expand(B, T).contiguous(), pos=torch.arange(T).expand(B, T).contiguous(),
                patch=patch.expand(B, T).contiguous(), t=t * is_img, z=z * m, x=x * m)


def flops_per_position(c, T):
    """6 x matmul parameters (lm_head and patch layers included) + attention (QK^T and AV,
    forward and backward: 3 x 2 x 2 x T x D per layer, with the full T x T computed)."""
    P, D, K = c.pdim, c.dim, c.bottleneck
    per_layer = 4 * D * D + 3 * D * c.mlp
    mm = c.layers * per_layer + c.vocab * D + P * D + (K * (P + D) if K else P * D) + 64 * D
    return 6 * mm + c.layers * 12 * T * D


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32, help="rows per step")
    ap.add_argument("--text", type=int, default=12, help="text tokens per row between BOS and BOI")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--mlp", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--img", type=int, default=28, help="image height and width")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--bottleneck", type=int, default=0)
    ap.add_argument("--qk-norm", type=int, default=0)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--dense-heads", action="store_true",
                    help="compute logits and x_pred at every position (default: only where a loss needs them)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    c = Config(dim=a.dim, layers=a.layers, heads=a.heads, mlp=a.mlp, vocab=a.vocab, img_h=a.img,
               img_w=a.img, img_c=a.channels, patch=a.patch, bottleneck=a.bottleneck,
               qk_norm=a.qk_norm, image_weight=5.0)
    T, _, _ = layout(c, a.text)
    c.seq_len = T
    gen = torch.Generator().manual_seed(a.seed)
    model = MMModel(c)
    model.init_params(gen)
    kinds = model.kinds()
    params = model.params()
    opt = torch.optim.AdamW(
        [dict(params=[p for n, p in params.items() if kinds[n] == "m"], weight_decay=0.1),
         dict(params=[p for n, p in params.items() if kinds[n] != "m"], weight_decay=0.0)],
        lr=a.lr, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    times, losses = [], []
    for step in range(a.warmup + a.steps):
        batch = random_batch(c, a.batch, a.text, gen)  # outside the timed region
        t0 = time.perf_counter()
        out = model(batch, all_logits=a.dense_heads)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(float(out["loss"]))
        if step >= a.warmup:
            times.append(dt)
    med = statistics.median(times)
    pos = a.batch * T
    gflops = flops_per_position(c, T) * pos / med / 1e9
    print(f"torch {torch.__version__} threads {a.threads}; dim {c.dim} layers {c.layers} heads {c.heads} "
          f"mlp {c.mlp} vocab {c.vocab} image {a.img}x{a.img}x{a.channels} patch {a.patch} "
          f"bottleneck {c.bottleneck} qk_norm {c.qk_norm}; rows {a.batch} x {T} positions; "
          f"{'dense' if a.dense_heads else 'sparse'} heads; loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    print(f"positions_per_s={pos / med:.1f} step_s_median={med:.4f} step_s_min={min(times):.4f} "
          f"gflop_per_s={gflops:.1f} steps={a.steps}")


if __name__ == "__main__":
    main()
