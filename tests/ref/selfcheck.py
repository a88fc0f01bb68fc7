"""Checks the PyTorch reference itself (not run by `make test`; run with /usr/bin/python3):
1. MMModel's vectorised forward equals a naive per-position implementation written straight
   from the comment in lib/model.h (loops over positions, pairs and keys; no shared helpers);
2. torch.autograd.gradcheck of the total loss against every parameter, tiny configs, float64;
3. the mask rule on hand-made rows; the batch builder's invariants;
4. the sampler benchmark's prefix key/value reuse equals recomputing the whole row;
5. the committed fixtures read back, and the model run on their stored batch and parameters
   reproduces their stored outputs and gradients.
"""
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import (BOI, BOS, EOI, EOS, PAD, Config, MMModel, full_mask,  # noqa: E402
                   make_batch, param_list)

HERE = os.path.dirname(os.path.abspath(__file__))


def naive_forward(m, bt):
    """Loss terms and per-position outputs from the specification, one position at a time."""
    c = m.cfg
    P = {n: p.detach() for n, p in m.named_parameters()}
    B, T = bt["token"].shape
    D, H = c.dim, c.heads
    hd = D // H

    def rms(v, w):
        return v / math.sqrt(float((v * v).mean()) + 1e-5) * w

    def rot(v, pos):  # v (hd,)
        out = v.clone()
        for i in range(hd // 2):
            a = pos * 10000.0 ** (-2.0 * i / hd)
            x0, x1 = float(v[2 * i]), float(v[2 * i + 1])
            out[2 * i] = x0 * math.cos(a) - x1 * math.sin(a)
            out[2 * i + 1] = x0 * math.sin(a) + x1 * math.cos(a)
        return out

    def allowed(b, i, j):
        d, im = bt["doc"][b], bt["img"][b]
        return j == i or (d[i] >= 0 and d[j] == d[i] and (j < i or (im[i] >= 0 and im[j] == im[i])))

    logits = torch.zeros(B, T, c.vocab, dtype=torch.float64)
    xpred = torch.zeros(B, T, c.pdim, dtype=torch.float64)
    ce, nce, se, nse = 0.0, 0, 0.0, 0
    for b in range(B):
        xs = []
        for i in range(T):
            if bt["img"][b, i] < 0:
                xs.append(P["tok_emb"][int(bt["token"][b, i])].clone())
                continue
            z = bt["z"][b, i]
            if c.bottleneck:
                pe = P["pe_w2"] @ (P["pe_w1"] @ z)
            else:
                pe = P["pe_w"] @ z
            t = float(bt["t"][b, i])
            f = torch.zeros(64, dtype=torch.float64)
            for k in range(32):
                wk = 10000.0 ** (-k / 32)
                f[k], f[32 + k] = math.sin(1000 * t * wk), math.cos(1000 * t * wk)
            xs.append(pe + P["pe_b"] + P["pos2d"][int(bt["patch"][b, i])] + P["t_w"] @ f + P["t_b"])
        x = torch.stack(xs)
        for l in range(c.layers):
            g = lambda n: P[f"layers.{l}.{n}"]  # noqa: E731
            h = torch.stack([rms(x[i], g("attn_norm")) for i in range(T)])
            q, k, v = h @ g("wq").t(), h @ g("wk").t(), h @ g("wv").t()
            att = torch.zeros(T, D, dtype=torch.float64)
            for hh in range(H):
                sl = slice(hh * hd, (hh + 1) * hd)
                qs, ks = [], []
                for i in range(T):
                    qi, ki = q[i, sl], k[i, sl]
                    if c.qk_norm:
                        qi, ki = rms(qi, g("q_norm")), rms(ki, g("k_norm"))
                    pos = float(bt["pos"][b, i])
                    qs.append(rot(qi, pos))
                    ks.append(rot(ki, pos))
                for i in range(T):
                    js = [j for j in range(T) if allowed(b, i, j)]
                    sc = torch.tensor([float(qs[i] @ ks[j]) / math.sqrt(hd) for j in js], dtype=torch.float64)
                    w = torch.softmax(sc, 0)
                    att[i, sl] = sum(w[n] * v[j, sl] for n, j in enumerate(js))
            x = x + att @ g("wo").t()
            h = torch.stack([rms(x[i], g("mlp_norm")) for i in range(T)])
            a1 = h @ g("w1").t()
            x = x + ((a1 * torch.sigmoid(a1)) * (h @ g("w3").t())) @ g("w2").t()
        for i in range(T):
            y = rms(x[i], P["final_norm"])
            logits[b, i] = P["lm_head"] @ y
            tg = int(bt["target"][b, i])
            if tg >= 0:
                ce += float(torch.logsumexp(logits[b, i], 0) - logits[b, i, tg])
                nce += 1
            if c.pdim:
                xpred[b, i] = P["ph_w"] @ y + P["ph_b"]
                if bt["img"][b, i] >= 0:
                    s = max(1 - float(bt["t"][b, i]), 0.05)
                    z, xx = bt["z"][b, i], bt["x"][b, i]
                    se += float((((xpred[b, i] - z) / s - (xx - z) / s) ** 2).sum())
                    nse += c.pdim
    lt = ce / nce if nce else 0.0
    li = se / nse if nse else 0.0
    return dict(logits=logits, x_pred=xpred, loss_text=lt, loss_image=li,
                loss=lt + c.image_weight * li)


def make_model(c, seed):
    m = MMModel(c)
    m.init_params(torch.Generator().manual_seed(seed), std=0.3, norm_noise=0.1, bias_std=0.1)
    return m.double()


def check_naive(c, B, seed):
    m = make_model(c, seed)
    bt, _ = make_batch(c, B, np.random.default_rng(seed), t_override={0: 0.99})
    a, n = m(bt), naive_forward(m, bt)
    for k in ("loss_text", "loss_image", "loss"):
        assert abs(float(a[k]) - n[k]) < 1e-10 * max(1, abs(n[k])), (k, float(a[k]), n[k])
    assert (a["logits"] - n["logits"]).abs().max() < 1e-10
    if c.pdim:
        img = bt["img"] >= 0
        assert (a["x_pred"][img] - n["x_pred"][img]).abs().max() < 1e-10
    return float(a["loss"])


def check_gradcheck(c, B, seed):
    m = make_model(c, seed)
    bt, _ = make_batch(c, B, np.random.default_rng(seed))
    names = [n for n, _, _ in param_list(c)]
    params = m.params()
    base = {n: p.detach().clone() for n, p in params.items()}

    def loss_of(*vals):
        # Functional call: swap each parameter for an input tensor.
        for n, v in zip(names, vals):
            setattr_path(m, n, v)
        out = m(bt)
        return out["loss"], out["logits"][bt["target"] >= 0].sum()

    inputs = tuple(base[n].clone().requires_grad_(True) for n in names)
    loss_of(*inputs)[0].backward()  # every input really is used (else gradcheck passes on zeros)
    for n, v in zip(names, inputs):
        assert v.grad is not None and v.grad.abs().max() > 0, n
        v.grad = None
    ok = torch.autograd.gradcheck(loss_of, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
    for n in names:
        setattr_path(m, n, torch.nn.Parameter(base[n]))
    return ok


def setattr_path(m, name, v):
    *path, last = name.split(".")
    for p in path:
        m = m[int(p)] if p.isdigit() else getattr(m, p)
    if isinstance(v, torch.nn.Parameter):
        setattr(m, last, v)
    else:
        delattr(m, last)
        setattr(m, last, v)
        m._parameters.pop(last, None)


def check_mask():
    # Row: doc 0 = BOS a BOI p p EOI ; doc 1 = BOS b ; padding.
    doc = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, -1, -1]])
    img = torch.tensor([[-1, -1, -1, 0, 0, -1, -1, -1, -1, -1]])
    mk = full_mask(doc, img)[0]
    T = doc.shape[1]
    want = torch.zeros(T, T, dtype=torch.bool)
    for i in range(6):
        want[i, : i + 1] = True
    want[3, 4] = True  # patch 0 sees patch 1 of its image
    want[6, 6] = want[7, 6] = want[7, 7] = True
    want[8, 8] = want[9, 9] = True
    assert torch.equal(mk, want), mk.int()


def check_batches(c, B):
    for seed in range(50):
        bt, layout = make_batch(c, B, np.random.default_rng(seed))
        tok, tgt, doc, img = bt["token"], bt["target"], bt["doc"], bt["img"]
        for b in range(B):
            for i in range(c.seq_len):
                isimg = img[b, i] >= 0
                assert (tok[b, i] == -1) == bool(isimg)
                assert (bt["patch"][b, i] >= 0) == bool(isimg)
                if doc[b, i] < 0:
                    assert tok[b, i] == PAD and tgt[b, i] == -1
                    assert (doc[b, i:] < 0).all()  # padding only at the end
                nxt_text = i + 1 < c.seq_len and doc[b, i + 1] == doc[b, i] >= 0 and img[b, i + 1] < 0
                want = int(tok[b, i + 1]) if nxt_text and not isimg else -1
                assert int(tgt[b, i]) == want
                if tok[b, i] == BOI:
                    assert img[b, i + 1] >= 0 and bt["patch"][b, i + 1] == 0
                if isimg and bt["patch"][b, i] == c.npatch - 1:
                    assert tok[b, i + 1] == EOI
                if tok[b, i] == BOS:
                    assert bt["pos"][b, i] == 0
            z, x, t = bt["z"][b], bt["x"][b], bt["t"][b]
            assert (x.abs() <= 1).all() and ((t >= 0) & (t <= 1)).all()


def read_fixture(path):
    data = open(path, "rb").read()
    assert data[:8] == b"MMREF\0\0\1"
    (count,) = struct.unpack_from("<I", data, 8)
    off, out = 12, {}
    for _ in range(count):
        (nl,) = struct.unpack_from("<I", data, off)
        name = data[off + 4: off + 4 + nl].decode("ascii")
        off += 4 + nl
        dt, nd = struct.unpack_from("<II", data, off)
        dims = struct.unpack_from(f"<{nd}I", data, off + 8)
        off += 8 + 4 * nd
        n = int(np.prod(dims)) if nd else 1
        a = np.frombuffer(data, "<f4" if dt == 0 else "<i4", n, off).reshape(dims)
        off += 4 * n
        out[name] = a
    assert off == len(data)
    return out


def check_fixture(path):
    f = read_fixture(path)
    ci = [int(v) for v in f["config"]]
    c = Config(*ci, image_weight=float(f["image_weight"][0]))
    m = MMModel(c).double()
    with torch.no_grad():
        for n, p in m.params().items():
            p.copy_(torch.from_numpy(f[n].astype(np.float64)))
    bt = {k: torch.from_numpy(f["batch." + k].astype(np.int64))
          for k in ("token", "target", "doc", "img", "pos", "patch")}
    bt.update({k: torch.from_numpy(f["batch." + k].astype(np.float64)) for k in ("t", "z", "x")})
    out = m(bt)
    out["loss"].backward()
    assert abs(float(out["loss"]) - float(f["out.loss"][0])) < 1e-5 * float(f["out.loss"][0])
    d = (out["logits"] - torch.from_numpy(f["out.logits"].astype(np.float64))).abs().max()
    assert d < 1e-5, d
    for n, p in m.params().items():
        g = torch.from_numpy(f["grad." + n].astype(np.float64))
        assert (p.grad - g).abs().max() <= 1e-6 * max(1e-30, float(g.abs().max())), n
    return len(f)


def check_kv_reuse():
    import bench_sample as bs
    c = Config(dim=16, layers=2, heads=2, mlp=24, vocab=300, img_h=8, img_w=8, img_c=1, patch=4,
               bottleneck=4, qk_norm=1, seq_len=0)
    c.seq_len = 5 + 2 + c.npatch
    m = make_model(c, 7)
    gen = torch.Generator().manual_seed(7)
    b = bs.rows(c, 3, 5, gen)
    z = torch.randn(6, c.npatch, c.pdim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        x1, x2 = bs.Recompute(m, b)(z, 0.4), bs.Reuse(m, b)(z, 0.4)
    assert (x1 - x2).abs().max() < 1e-10
    # The conditional and unconditional rows really differ (the caption is seen).
    assert (x1[:3] - x1[3:]).abs().max() > 1e-3


def main():
    torch.set_num_threads(1)
    A = Config(dim=32, layers=2, heads=4, mlp=64, vocab=300, img_h=8, img_w=8, img_c=1, patch=4,
               bottleneck=8, qk_norm=1, seq_len=24)
    Bc = Config(dim=24, layers=1, heads=2, mlp=40, vocab=280, img_h=8, img_w=8, img_c=3, patch=4,
                bottleneck=0, qk_norm=0, seq_len=20)
    text_only = Config(dim=16, layers=1, heads=2, mlp=24, vocab=270, seq_len=16)
    check_mask()
    print("mask rule: ok")
    for c, B in ((A, 2), (Bc, 3)):
        check_batches(c, B)
    print("batch builder invariants (100 batches): ok")
    for i, (c, B) in enumerate(((A, 2), (Bc, 3), (text_only, 2))):
        for s in range(2):
            loss = check_naive(c, B, 10 * i + s)
            print(f"naive forward == MMModel, config {i} seed {s}: ok (loss {loss:.4f})")
    tiny1 = Config(dim=8, layers=1, heads=2, mlp=12, vocab=261, img_h=4, img_w=4, img_c=1,
                   patch=2, bottleneck=3, qk_norm=1, seq_len=16, image_weight=5.0)
    tiny2 = Config(dim=8, layers=2, heads=2, mlp=6, vocab=261, img_h=4, img_w=4, img_c=2,
                   patch=2, bottleneck=0, qk_norm=0, seq_len=16, image_weight=5.0)
    for i, c in enumerate((tiny1, tiny2)):
        assert check_gradcheck(c, 2, 100 + i)
        print(f"gradcheck (loss and logits vs {sum(1 for _ in param_list(c))} parameter "
              f"tensors), tiny config {i}: ok")
    check_kv_reuse()
    print("sampler: prefix key/value reuse == full recompute: ok")
    for name in ("tiny_a", "tiny_b"):
        n = check_fixture(os.path.join(HERE, name + ".bin"))
        print(f"{name}.bin: {n} tensors read back, forward and gradients reproduced: ok")


if __name__ == "__main__":
    main()
