"""Writes the reference fixtures tests/ref/tiny_a.bin and tiny_b.bin (format: tests/ref/README.md).

For each configuration: a random valid batch, parameters drawn in float32 and then computed on
in float64, the forward outputs, the gradients of the total loss, and 10 AdamW steps on the
same batch. Everything is stored as float32 (integers as int32).

Run through tests/ref/make.sh (`make ref`) with Debian's /usr/bin/python3 (torch 1.13).
"""
import argparse
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, MMModel, clip_and_adamw, make_batch, param_list  # noqa: E402

MAGIC = b"MMREF\0\0\1"
ADAM = dict(lr=1e-3, b1=0.9, b2=0.95, eps=1e-8, wd=0.1, clip=1.0)
ADAM_STEPS = 10

# name: (config, rows B, forced noise levels {image number in the batch: t}). tiny_b forces one
# image near clean so that s = max(1 - t, 0.05) hits its floor; that image then dominates
# L_image (errors divided by 0.05), so tiny_a keeps natural noise levels only.
CONFIGS = {
    "tiny_a": (Config(dim=32, layers=2, heads=4, mlp=64, vocab=300, img_h=8, img_w=8, img_c=1,
                      patch=4, bottleneck=8, qk_norm=1, seq_len=24, image_weight=5.0), 2, None),
    "tiny_b": (Config(dim=24, layers=1, heads=2, mlp=40, vocab=280, img_h=8, img_w=8, img_c=3,
                      patch=4, bottleneck=0, qk_norm=0, seq_len=20, image_weight=5.0), 3,
               {1: 0.97}),
}


class Writer:
    def __init__(self):
        self.items = []

    def add(self, name, a, dtype=None):
        a = np.asarray(a.detach().cpu().numpy() if torch.is_tensor(a) else a)
        if dtype is None:
            dtype = np.int32 if np.issubdtype(a.dtype, np.integer) else np.float32
        b = a.astype(dtype)
        if dtype == np.int32:
            assert np.array_equal(b.astype(np.int64), a.astype(np.int64)), name
        else:
            assert np.all(np.isfinite(b)), name
        assert name not in [n for n, _ in self.items], name
        self.items.append((name, b))

    def save(self, path):
        out = [MAGIC, struct.pack("<I", len(self.items))]
        for name, a in self.items:
            nb = name.encode("ascii")
            code = 0 if a.dtype == np.float32 else 1
            out.append(struct.pack("<I", len(nb)) + nb)
            out.append(struct.pack("<II", code, a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape))
            out.append(a.astype("<f4" if code == 0 else "<i4").tobytes())
        data = b"".join(out)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return len(data)


def coverage_ok(batch, layout):
    """The batch exercises what the C test must see: every row has several documents and ends
    in padding; caption-first and image-first documents both occur; targets exist."""
    kinds = {k for row in layout for k in row}
    rows_ok = all(len(row) >= 2 for row in layout)
    pad_ok = bool((batch["doc"][:, -1] < 0).all())
    return rows_ok and pad_ok and {"caption", "image"} <= kinds and int((batch["target"] >= 0).sum()) > 0


def build(c, B, seed, t_override):
    for sub in range(1000):
        rnd = np.random.default_rng([seed, sub])
        batch, layout = make_batch(c, B, rnd, t_override=t_override)
        if coverage_ok(batch, layout):
            return batch, layout
    raise SystemExit("gen: no batch with full coverage found")


def run_adam(model, batch, use_torch_optim=False):
    """ADAM_STEPS AdamW steps on one batch from the model's current parameters; returns the
    losses and gradient norms per step and the final parameters."""
    params = model.params()
    kinds = model.kinds()
    losses, norms, state = [], [], {}
    opt = None
    if use_torch_optim:
        decay = [p for n, p in params.items() if kinds[n] == "m"]
        other = [p for n, p in params.items() if kinds[n] != "m"]
        opt = torch.optim.AdamW([dict(params=decay, weight_decay=ADAM["wd"]),
                                 dict(params=other, weight_decay=0.0)],
                                lr=ADAM["lr"], betas=(ADAM["b1"], ADAM["b2"]), eps=ADAM["eps"])
    for step in range(1, ADAM_STEPS + 1):
        model.zero_grad(set_to_none=True)
        out = model(batch, all_logits=False)
        out["loss"].backward()
        losses.append(float(out["loss"]))
        grads = {n: p.grad.detach() for n, p in params.items()}
        if opt is None:
            with torch.no_grad():
                norms.append(clip_and_adamw({n: p.data for n, p in params.items()}, grads, state,
                                            kinds, step, ADAM["lr"], ADAM["b1"], ADAM["b2"],
                                            ADAM["eps"], ADAM["wd"], ADAM["clip"]))
        else:
            norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads.values()))
            norms.append(norm)
            if norm > ADAM["clip"]:
                for g in grads.values():
                    g.mul_(ADAM["clip"] / norm)
            opt.step()
    return losses, norms, {n: p.detach().clone() for n, p in params.items()}


def reference(c, B, seed, t_override, dtype=torch.float64):
    """Batch, initial parameters, outputs, gradients and the AdamW run, computed in dtype."""
    batch, layout = build(c, B, seed, t_override)
    gen = torch.Generator().manual_seed(seed)
    model = MMModel(c)
    model.init_params(gen, std=0.02, norm_noise=0.1, bias_std=0.02)
    init = {n: p.detach().clone() for n, p in model.params().items()}  # float32 values
    model = model.to(dtype)
    b = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in batch.items()}
    out = model(b)
    out["loss"].backward()
    grads = {n: p.grad.detach().clone() for n, p in model.params().items()}
    losses, norms, final = run_adam(model, b)
    return dict(batch=batch, layout=layout, init=init, out=out, grads=grads, losses=losses,
                norms=norms, final=final, b=b)


def cross_check_torch_optim(c, r):
    """The hand-written AdamW equals torch.optim.AdamW (clipping done by hand in both, since
    torch's clip_grad_norm_ divides by norm + 1e-6)."""
    model = MMModel(c)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(r["init"][n])
    model = model.double()
    losses, norms, final = run_adam(model, r["b"], use_torch_optim=True)
    for n in final:
        d = float((final[n] - r["final"][n]).abs().max())
        assert d < 1e-12, (n, d)
    assert max(abs(a - b) for a, b in zip(losses, r["losses"])) < 1e-12


def rel_err(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def float32_gap(c, B, seed, t_override, r):
    """How far the same computation in float32 lands from the float64 reference: a guide for
    the C test's tolerances (printed, not stored). Errors are max |diff| / max |ref| per tensor."""
    r32 = reference(c, B, seed, t_override, torch.float32)
    return {"logits": rel_err(r32["out"]["logits"], r["out"]["logits"]),
            "x_pred": rel_err(r32["out"]["x_pred"], r["out"]["x_pred"]),
            "loss": abs(float(r32["out"]["loss"]) - float(r["out"]["loss"])),
            "grad(worst tensor)": max(rel_err(r32["grads"][n], r["grads"][n]) for n in r["grads"]),
            "adam.final(max abs)": max(float((r32["final"][n].double() - r["final"][n]).abs().max())
                                       for n in r["final"]),
            "adam.loss(max abs)": max(abs(a - b) for a, b in zip(r32["losses"], r["losses"]))}


def write_fixture(path, c, B, r):
    w = Writer()
    w.add("config", np.array(c.as_ints(), np.int64))
    w.add("image_weight", np.array([c.image_weight]), np.float32)
    w.add("batch_size", np.array([B], np.int64))
    bt = r["batch"]
    for k in ("token", "target", "doc", "img", "pos", "patch"):
        w.add("batch." + k, bt[k])
    for k in ("t", "z", "x"):
        w.add("batch." + k, bt[k], np.float32)
    names = [n for n, _, _ in param_list(c)]
    for n in names:
        assert r["init"][n].dtype == torch.float32
        w.add(n, r["init"][n])
    o = r["out"]
    w.add("out.logits", o["logits"])
    w.add("out.x_pred", o["x_pred"])
    for k in ("loss_text", "loss_image", "loss"):
        w.add("out." + k, o[k].reshape(1))
    for n in names:
        w.add("grad." + n, r["grads"][n])
    w.add("adam.hparams", np.array([ADAM[k] for k in ("lr", "b1", "b2", "eps", "wd", "clip")]),
          np.float32)
    w.add("adam.loss", np.array(r["losses"]), np.float32)
    w.add("adam.grad_norm", np.array(r["norms"]), np.float32)
    for n in names:
        w.add("adam.final." + n, r["final"][n])
    return w.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--gap", action="store_true", help="also print the float32-vs-float64 gap")
    args = ap.parse_args()
    torch.set_num_threads(1)
    total = 0
    for i, (name, (c, B, tov)) in enumerate(CONFIGS.items()):
        r = reference(c, B, args.seed + i, tov)
        cross_check_torch_optim(c, r)
        o = r["out"]
        n = write_fixture(os.path.join(args.out, name + ".bin"), c, B, r)
        total += n
        bt = r["batch"]
        print(f"{name}: {n} bytes; documents per row {r['layout']}; text targets "
              f"{int((bt['target'] >= 0).sum())}, image positions {int((bt['img'] >= 0).sum())}; "
              f"loss_text {float(o['loss_text']):.6f} loss_image {float(o['loss_image']):.6f} "
              f"loss {float(o['loss']):.6f}; adam loss {r['losses'][0]:.5f} -> {r['losses'][-1]:.5f}")
        if args.gap:
            print(f"{name}: float32 gap {float32_gap(c, B, args.seed + i, tov, r)}")
    assert total < 1 << 20, total
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
