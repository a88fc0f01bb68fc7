"""The mm model in PyTorch: the test oracle for the C model and the speed peer.

It implements the specification at the top of lib/model.h, line by line. Parameter names are
the names of MM_PARAMS there ("tok_emb", "layers.0.wo", ...) and have the same shapes
([rows, cols] for matrices, [rows] for vectors), except that the model's fused wqkv and w13
are kept here as their row blocks wq, wk, wv and w1 (gate), w3 (up), the version 1 layout
(lib/model.h): the C tests read these fixtures through tests/refio.h's ref_fuse_v1, which
stacks the blocks into the model's tensors.

Runs under Debian's torch 1.13 (/usr/bin/python3), which has no scaled_dot_product_attention:
attention is written out.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# Special token ids of the byte-level tokenizer (bytes are 0..255).
PAD, BOS, EOS, BOI, EOI = 256, 257, 258, 259, 260

RMS_EPS = 1e-5
ROPE_BASE = 10000.0
NFEAT = 64  # timestep features f(t)


@dataclass
class Config:
    dim: int
    layers: int
    heads: int
    mlp: int
    vocab: int
    img_h: int = 0
    img_w: int = 0
    img_c: int = 0
    patch: int = 0
    bottleneck: int = 0
    qk_norm: int = 0
    seq_len: int = 0
    image_weight: float = 5.0

    @property
    def pdim(self):  # MM_PDIM
        return self.patch * self.patch * self.img_c if self.patch else 0

    @property
    def npatch(self):  # MM_NPATCH
        return (self.img_h // self.patch) * (self.img_w // self.patch) if self.patch else 0

    def as_ints(self):
        """The 12 integers of the fixtures' "config" tensor, in that order."""
        return [self.dim, self.layers, self.heads, self.mlp, self.vocab, self.img_h,
                self.img_w, self.img_c, self.patch, self.bottleneck, self.qk_norm,
                self.seq_len]


def param_specs(c):
    """MM_PARAMS of lib/model.h: (name, rows, cols, per_layer, kind), same order, with wqkv
    and w13 as their row blocks (see the top)."""
    P, K, D = c.pdim, c.bottleneck, c.dim
    hd = D // c.heads
    return [
        ("tok_emb", c.vocab, D, 0, "e"),
        ("pe_w1", K, P, 0, "m"),
        ("pe_w2", D if K else 0, K, 0, "m"),
        ("pe_w", 0 if K else (D if P else 0), P, 0, "m"),
        ("pe_b", D if P else 0, 1, 0, "v"),
        ("pos2d", c.npatch, D, 0, "e"),
        ("t_w", D if P else 0, NFEAT, 0, "m"),
        ("t_b", D if P else 0, 1, 0, "v"),
        ("attn_norm", D, 1, 1, "v"),
        ("wq", D, D, 1, "m"),
        ("wk", D, D, 1, "m"),
        ("wv", D, D, 1, "m"),
        ("wo", D, D, 1, "m"),
        ("q_norm", hd if c.qk_norm else 0, 1, 1, "v"),
        ("k_norm", hd if c.qk_norm else 0, 1, 1, "v"),
        ("mlp_norm", D, 1, 1, "v"),
        ("w1", c.mlp, D, 1, "m"),
        ("w3", c.mlp, D, 1, "m"),
        ("w2", D, c.mlp, 1, "m"),
        ("final_norm", D, 1, 0, "v"),
        ("lm_head", c.vocab, D, 0, "m"),
        ("ph_w", P, D, 0, "m"),
        ("ph_b", P, 1, 0, "v"),
    ]


def param_list(c):
    """Every present tensor as (full name, shape, kind), in storage order: the global ones in
    MM_PARAMS order, each per-layer one as layers.<l>.<name> for l = 0..L-1."""
    out = []
    for name, rows, cols, per_layer, kind in param_specs(c):
        if rows == 0 or cols == 0:
            continue
        shape = (rows,) if cols == 1 else (rows, cols)
        if per_layer:
            out += [(f"layers.{l}.{name}", shape, kind) for l in range(c.layers)]
        else:
            out.append((name, shape, kind))
    return out


def rmsnorm(x, w):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS) * w


# f(t) and the rotary angles are computed in float64 whatever the model's dtype, then rounded:
# in float32, 1000 t alone carries an error near 6e-5 (radians) into sin/cos, which showed up as
# 1e-5 relative errors in the gradients of t_w and everything upstream; in float64 the float32
# model's gradients land within 1e-6 of the float64 reference. The C model should do the same.


def time_features(t):
    """f(t): (...,) -> (..., 64); sin(1000 t w_k) then cos, w_k = 10000^(-k/32), k = 0..31."""
    td = t.to(torch.float64)
    k = torch.arange(NFEAT // 2, dtype=torch.float64, device=t.device)
    w = torch.pow(torch.tensor(10000.0, dtype=torch.float64), -k / (NFEAT // 2))
    a = 1000.0 * td.unsqueeze(-1) * w
    return torch.cat([torch.sin(a), torch.cos(a)], -1).to(t.dtype)


def rope_angles(pos, hd, dtype):
    """(B, T) positions -> cos, sin of shape (B, 1, T, hd/2); pair i turns by pos*10000^(-2i/hd)."""
    i = torch.arange(hd // 2, dtype=torch.float64, device=pos.device)
    freq = torch.pow(torch.tensor(ROPE_BASE, dtype=torch.float64), -2.0 * i / hd)
    ang = pos.to(torch.float64).unsqueeze(-1) * freq  # (B, T, hd/2)
    return torch.cos(ang).unsqueeze(1).to(dtype), torch.sin(ang).unsqueeze(1).to(dtype)


def rope(x, cos, sin):
    """x (B, H, T, hd): rotates each pair (2i, 2i+1) as (a, b) -> (a cos - b sin, a sin + b cos)."""
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)


def attention_mask(doc_q, img_q, doc_k, img_k, before):
    """Boolean (B, Tq, Tk), the mask rule without its "j == i" term (callers add it):
    same document >= 0, and key j before query i or both in the same image.
    before (Tq, Tk): key j precedes query i in the row."""
    dq, iq = doc_q.unsqueeze(2), img_q.unsqueeze(2)
    dk, ik = doc_k.unsqueeze(1), img_k.unsqueeze(1)
    same_img = (iq >= 0) & (ik == iq)
    return (dq >= 0) & (dk == dq) & (before.unsqueeze(0) | same_img)


def full_mask(doc, img):
    """The mask of lib/model.h over one batch: (B, T, T), True where i may attend to j."""
    T = doc.shape[1]
    idx = torch.arange(T, device=doc.device)
    before = idx.unsqueeze(1) > idx.unsqueeze(0)  # [i, j]: j < i
    eye = torch.eye(T, dtype=torch.bool, device=doc.device).unsqueeze(0)
    return attention_mask(doc, img, doc, img, before) | eye


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, F_, hd = c.dim, c.mlp, c.dim // c.heads
        self.heads, self.hd = c.heads, hd
        self.attn_norm = nn.Parameter(torch.ones(D))
        self.wq = nn.Parameter(torch.zeros(D, D))
        self.wk = nn.Parameter(torch.zeros(D, D))
        self.wv = nn.Parameter(torch.zeros(D, D))
        self.wo = nn.Parameter(torch.zeros(D, D))
        if c.qk_norm:
            self.q_norm = nn.Parameter(torch.ones(hd))
            self.k_norm = nn.Parameter(torch.ones(hd))
        else:
            self.q_norm = self.k_norm = None
        self.mlp_norm = nn.Parameter(torch.ones(D))
        self.w1 = nn.Parameter(torch.zeros(F_, D))
        self.w3 = nn.Parameter(torch.zeros(F_, D))
        self.w2 = nn.Parameter(torch.zeros(D, F_))

    def qkv(self, x, cos, sin):
        """x (B, T, D) -> q, k, v each (B, H, T, hd), q and k normed (qk_norm) and rotated."""
        B, T, _ = x.shape
        h = rmsnorm(x, self.attn_norm)
        q, k, v = (torch.matmul(h, w.t()).view(B, T, self.heads, self.hd).transpose(1, 2)
                   for w in (self.wq, self.wk, self.wv))
        if self.q_norm is not None:
            q = rmsnorm(q, self.q_norm)
            k = rmsnorm(k, self.k_norm)
        return rope(q, cos, sin), rope(k, cos, sin), v

    def forward(self, x, cos, sin, mask, past=None):
        """x (B, T, D), mask (B, T, Tk) boolean over [past keys, own keys]. past: (k, v) of
        earlier positions (B, H, Tp, hd), reused as is. Returns the new x and this call's (k, v)."""
        B, T, D = x.shape
        q, k, v = self.qkv(x, cos, sin)
        kk, vv = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
        s = torch.matmul(q, kk.transpose(-1, -2)) / math.sqrt(self.hd)
        s = s.masked_fill(~mask.unsqueeze(1), float("-inf"))
        a = torch.matmul(torch.softmax(s, -1), vv)
        x = x + torch.matmul(a.transpose(1, 2).reshape(B, T, D), self.wo.t())
        h = rmsnorm(x, self.mlp_norm)
        u = F.silu(torch.matmul(h, self.w1.t())) * torch.matmul(h, self.w3.t())
        return x + torch.matmul(u, self.w2.t()), (k, v)


class MMModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cfg = c
        D, P, K, V = c.dim, c.pdim, c.bottleneck, c.vocab
        assert D % c.heads == 0 and (D // c.heads) % 2 == 0
        self.tok_emb = nn.Parameter(torch.zeros(V, D))
        self.pe_w1 = self.pe_w2 = self.pe_w = self.pe_b = None
        self.pos2d = self.t_w = self.t_b = self.ph_w = self.ph_b = None
        if P:
            if K:
                self.pe_w1 = nn.Parameter(torch.zeros(K, P))
                self.pe_w2 = nn.Parameter(torch.zeros(D, K))
            else:
                self.pe_w = nn.Parameter(torch.zeros(D, P))
            self.pe_b = nn.Parameter(torch.zeros(D))
            self.pos2d = nn.Parameter(torch.zeros(c.npatch, D))
            self.t_w = nn.Parameter(torch.zeros(D, NFEAT))
            self.t_b = nn.Parameter(torch.zeros(D))
        self.layers = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.final_norm = nn.Parameter(torch.ones(D))
        self.lm_head = nn.Parameter(torch.zeros(V, D))
        if P:
            self.ph_w = nn.Parameter(torch.zeros(P, D))
            self.ph_b = nn.Parameter(torch.zeros(P))
        names = sorted(n for n, _ in self.named_parameters())
        assert names == sorted(n for n, _, _ in param_list(c)), names

    def params(self):
        """{name: parameter} in storage order (param_list), not nn.Module's order."""
        d = dict(self.named_parameters())
        return {n: d[n] for n, _, _ in param_list(self.cfg)}

    def init_params(self, gen, std=0.02, norm_noise=0.0, bias_std=0.0):
        """Matrices and tables ~ N(0, std); norm weights 1 + norm_noise * N(0, 1); biases
        bias_std * N(0, 1). Values are drawn in float32 so that a float32 copy is exact."""
        with torch.no_grad():
            for name, p in self.params().items():
                base = name.split(".")[-1]
                r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
                if base.endswith("norm"):
                    v = 1.0 + norm_noise * r
                elif base in ("pe_b", "t_b", "ph_b"):
                    v = bias_std * r
                else:
                    v = std * r
                p.copy_(v.to(torch.float32).to(p.dtype))

    def kinds(self):
        return {n: k for n, _, k in param_list(self.cfg)}

    def embed(self, batch):
        """(B, T, D) input vectors: tok_emb at text positions, patch + pos2d + temb at images."""
        is_img = batch["img"] >= 0
        e = self.tok_emb[batch["token"].clamp(min=0)]
        if self.cfg.pdim and "z" in batch:  # a text-only batch may leave z and t out
            z = batch["z"].to(e.dtype)
            if self.pe_w1 is not None:
                pe = torch.matmul(torch.matmul(z, self.pe_w1.t()), self.pe_w2.t())
            else:
                pe = torch.matmul(z, self.pe_w.t())
            tt = batch["t"].to(e.dtype)
            temb = torch.matmul(time_features(tt), self.t_w.t()) + self.t_b
            ie = pe + self.pe_b + self.pos2d[batch["patch"].clamp(min=0)] + temb
            e = torch.where(is_img.unsqueeze(-1), ie, e)
        return e

    def trunk(self, x, pos, mask, past=None):
        """Runs the blocks and the final norm. past: per-layer (k, v) of a reused prefix.
        Returns y (B, T, D) and the per-layer (k, v) of these positions."""
        cos, sin = rope_angles(pos, self.cfg.dim // self.cfg.heads, x.dtype)
        kvs = []
        for l, blk in enumerate(self.layers):
            x, kv = blk(x, cos, sin, mask, None if past is None else past[l])
            kvs.append(kv)
        return rmsnorm(x, self.final_norm), kvs

    def forward(self, batch, all_logits=True):
        """batch: dict of (B, T) tensors token, target, doc, img, pos, patch (integers), t, and
        z, x (B, T, P). Returns logits (B, T, V), x_pred (B, T, P) and the three losses.
        all_logits=False computes the heads only where a loss needs them (training speed);
        logits and x_pred are then None."""
        c = self.cfg
        y, _ = self.trunk(self.embed(batch), batch["pos"], full_mask(batch["doc"], batch["img"]))
        tgt, is_img = batch["target"], batch["img"] >= 0
        zero = y.new_zeros(())
        out = {}
        if all_logits:
            logits = torch.matmul(y, self.lm_head.t())
            out["logits"] = logits
            tl = logits[tgt >= 0]
        else:
            tl = torch.matmul(y[tgt >= 0], self.lm_head.t())
        lt = F.cross_entropy(tl, tgt[tgt >= 0]) if tl.shape[0] else zero
        li = zero
        if c.pdim:
            if all_logits:
                xp = torch.matmul(y, self.ph_w.t()) + self.ph_b
                out["x_pred"] = xp
                xp_i = xp[is_img]
            else:
                xp_i = torch.matmul(y[is_img], self.ph_w.t()) + self.ph_b
            if xp_i.shape[0]:
                z, x = batch["z"][is_img].to(y.dtype), batch["x"][is_img].to(y.dtype)
                s = torch.clamp(1.0 - batch["t"][is_img].to(y.dtype), min=0.05).unsqueeze(-1)
                li = ((xp_i - z) / s - (x - z) / s).pow(2).mean()
        out.update(loss_text=lt, loss_image=li, loss=lt + c.image_weight * li)
        return out


def clip_and_adamw(params, grads, state, kinds, step, lr, b1, b2, eps, wd, clip):
    """One AdamW step as in the fixtures' spec, in place on float tensors (no autograd).
    Global-norm clipping first (scale clip/norm when norm > clip); decoupled decay
    p -= lr*wd*p on kind 'm' only, before the Adam term; bias correction, step from 1.
    Returns the gradient norm before clipping."""
    norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads.values()))
    scale = clip / norm if clip > 0 and norm > clip else 1.0
    for n, p in params.items():
        g = grads[n] * scale
        m, v = state.setdefault(n, (torch.zeros_like(p), torch.zeros_like(p)))
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        if kinds[n] == "m":
            p.sub_(lr * wd * p)
        mh = m / (1 - b1 ** step)
        vh = v / (1 - b2 ** step)
        p.sub_(lr * (mh / (vh.sqrt() + eps)))
    return norm


# ---------------------------------------------------------------------------------------------
# Random but valid batches.
#
# A row packs whole documents and ends with padding (PAD, doc -1). Documents:
#   text:           BOS t.. EOS
#   caption-first:  BOS t.. BOI p1..pn EOI [t..] EOS
#   image-first:    BOS BOI p1..pn EOI t.. EOS
#   interleaved:    BOS t.. BOI p.. EOI t.. BOI p.. EOI t.. EOS
# Position i has a text target iff position i+1 is a text token (BOI and EOI included) of the
# same document and position i is not an image patch: BOI predicts nothing (a patch follows),
# the last patch predicts nothing, EOI predicts what follows it.
# Each image gets t = sigmoid(0.8 * normal - 0.8), pixels x uniform in [-1, 1], z = t x + (1-t) eps.


def _doc_tokens(kind, rnd):
    """A document as a list of items: int token ids or ("img",) placeholders."""
    def words(lo, hi):
        return [int(rnd.integers(0, 256)) for _ in range(int(rnd.integers(lo, hi + 1)))]
    img = [BOI, ("img",), EOI]
    if kind == "text":
        return [BOS] + words(1, 6) + [EOS]
    if kind == "caption":
        return [BOS] + words(1, 4) + img + words(0, 2) + [EOS]
    if kind == "image":
        return [BOS] + img + words(1, 4) + [EOS]
    return [BOS] + words(1, 2) + img + words(1, 2) + img + words(0, 1) + [EOS]


def _doc_len(doc, npatch):
    return sum(npatch if isinstance(it, tuple) else 1 for it in doc)


def make_batch(c, B, rnd, kinds=("text", "caption", "image", "interleaved"), min_pad=1,
               t_override=None):
    """A random valid batch as float64/int64 numpy-free torch tensors (float values are float32
    representable). rnd: numpy Generator. t_override: {image number in the batch: t} to force
    noise levels (e.g. near 1 to reach the s = 0.05 floor). Returns (batch dict, layout) where
    layout lists per row the document kinds packed."""
    import numpy as np
    T, P, NP = c.seq_len, c.pdim, c.npatch
    token = np.full((B, T), PAD, np.int64)
    target = np.full((B, T), -1, np.int64)
    doc = np.full((B, T), -1, np.int64)
    img = np.full((B, T), -1, np.int64)
    pos = np.zeros((B, T), np.int64)
    patch = np.full((B, T), -1, np.int64)
    tt = np.zeros((B, T), np.float32)
    z = np.zeros((B, T, max(P, 1)), np.float32)[..., :P]
    x = np.zeros((B, T, max(P, 1)), np.float32)[..., :P]
    layout, nimg_total = [], 0
    for b in range(B):
        at, d, ni, kinds_b = 0, 0, 0, []
        for _ in range(100):
            kind = kinds[int(rnd.integers(0, len(kinds)))] if P else "text"
            dd = _doc_tokens(kind, rnd)
            n = _doc_len(dd, NP)
            if at + n > T - min_pad:
                continue
            kinds_b.append(kind)
            start = at
            for it in dd:
                if isinstance(it, tuple):
                    tv = float(1 / (1 + np.exp(-(0.8 * rnd.standard_normal() - 0.8))))
                    if t_override and nimg_total in t_override:
                        tv = t_override[nimg_total]
                    tv = float(np.float32(tv))
                    for p_ in range(NP):
                        xv = rnd.uniform(-1, 1, P).astype(np.float32)
                        ev = rnd.standard_normal(P).astype(np.float32)
                        x[b, at] = xv
                        z[b, at] = (tv * xv.astype(np.float64) + (1 - tv) * ev).astype(np.float32)
                        token[b, at], img[b, at], patch[b, at], tt[b, at] = -1, ni, p_, tv
                        doc[b, at], pos[b, at] = d, at - start
                        at += 1
                    ni += 1
                    nimg_total += 1
                else:
                    token[b, at], doc[b, at], pos[b, at] = it, d, at - start
                    at += 1
            d += 1
            if at >= T - min_pad - 3:
                break
        layout.append(kinds_b)
    for b in range(B):
        for i in range(T - 1):
            if doc[b, i] >= 0 and doc[b, i + 1] == doc[b, i] and img[b, i] < 0 and img[b, i + 1] < 0:
                target[b, i] = token[b, i + 1]
    t = torch.from_numpy
    batch = dict(token=t(token), target=t(target), doc=t(doc), img=t(img), pos=t(pos),
                 patch=t(patch), t=t(tt).double(), z=t(np.ascontiguousarray(z)).double(),
                 x=t(np.ascontiguousarray(x)).double())
    return batch, layout
