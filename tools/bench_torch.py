#!/usr/bin/env python3
"""The hypergraph convolution of hipl in PyTorch's dense paths, timed, for bench_compare.py.

Same maths as hipl (DESIGN.md §1, src/dense.rs): per image, S = F̂ F̂ᵀ with
f̂ = f / max(‖f‖, 1e-12); hyperedge j is column j of H; the paper's rule
H_ij = [σ(alpha (S_ij − tau)) > 0.5] = [S_ij > tau] with the centre forced, alpha = 100,
tau = -1e-4; kNN: the centre and the k − 1 most similar other vertices; top-k cap: the
centre and the k − 1 most similar among the others above the threshold. Soft mode:
H = M ⊙ σ(alpha (S − tau)) with M the selection mask (all ones for the paper's rule),
differentiable. Hyperedge weights w = 1; d_v = H w, d_e = column sums; symmetric
normalisation Y = Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2 X Θ with X = F.

Two orderings of the convolution:

* naive: as HGNN-style code writes it: S, I, H and the diagonal matrices materialised,
  G = DV2 @ H @ W @ invDE @ H.T @ DV2 multiplied out (O(N³)), then Y = G @ (X @ Θ);
* best: right to left, G never formed: Z = d_v^-1/2 ⊙ XΘ, E = (w / d_e) ⊙ (Hᵀ Z),
  Y = d_v^-1/2 ⊙ (H E).

In hard mode the structure is built without autograd (the best case for PyTorch); in soft
mode everything goes through autograd. The forward pass runs under torch.no_grad(); the
train pass is forward + backward of sum(Y ⊙ dY) for F and Θ.

Peak memory on CPU is the allocator's own peak: torch.profiler with profile_memory=True
records every allocation and free of PyTorch's CPU allocator; the running sum of those
events over one run gives the peak live bytes above what was live before it. (It does not
see scratch that MKL/oneDNN take with malloc outside PyTorch's allocator.) On CUDA it is
torch.cuda.max_memory_allocated. In both, the bytes of the returned result are subtracted,
as on the Rust side.

Usage: one case per call,
    bench_torch.py --inputs DIR --rule paper --mode hard --pass forward --path best \
        --repeats 5 --out y.npy
or `--serve`: one JSON request per stdin line (the same keys), one JSON line back each.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

ALPHA = 100.0
TAU = -1e-4
NORM_EPS = 1e-12
DEFAULT_K = {"knn": 9, "topk": 64, "paper": None}


def normalise(f):
    """f / max(‖f‖, eps) over the last axis."""
    return f / f.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)


def selection_mask(s, rule, k):
    """[B, N, N] mask, row vertex, column hyperedge; None for the paper's rule. Hyperedge e's
    candidates are row e of S (S is symmetric); the centre is placed first with +inf."""
    if rule == "paper":
        return None
    n = s.shape[-1]
    k = min(k, n)
    if rule == "knn":
        scores = s.clone()
    else:
        scores = s.masked_fill(~(s > TAU), float("-inf"))
    scores.diagonal(dim1=-2, dim2=-1).fill_(float("inf"))
    vals, idx = scores.topk(k, dim=-1)
    keep = (vals > float("-inf")).to(s.dtype)
    # mask_t[e, i] = 1 when vertex i is in hyperedge e; H = mask_tᵀ.
    mask_t = torch.zeros_like(s).scatter_(-1, idx, keep)
    return mask_t.transpose(-1, -2)


def incidence(f, rule, k, mode, literal, mask=None):
    """H [B, N, N]. `literal` writes the paper's rule as the papers do (σ, then > 0.5);
    otherwise the equivalent S > tau. `mask` replaces the kNN / top-k selection (a hard H
    from elsewhere: the agreement check's same-selection rerun)."""
    soft = mode == "soft"
    with torch.set_grad_enabled(soft and torch.is_grad_enabled()):
        fh = normalise(f)
        s = fh @ fh.transpose(-1, -2)
        i = torch.sigmoid(ALPHA * (s - TAU)) if (soft or literal) else None
    with torch.no_grad():
        if mask is None or rule == "paper":
            mask = selection_mask(s.detach(), rule, k)
    if soft:
        return i if mask is None else i * mask
    with torch.no_grad():
        if mask is not None:
            return mask
        h = (i > 0.5) if literal else (s > TAU)
        h = h.to(f.dtype)
        h.diagonal(dim1=-2, dim2=-1).fill_(1.0)
        return h


def inv_pow(v, p):
    """v^-p where v > 0, else 0 (the zero-row policy), safe for autograd."""
    pos = v > 0
    return torch.where(pos, torch.where(pos, v, torch.ones_like(v)).pow(-p), torch.zeros_like(v))


def conv_naive(f, theta, rule, k, mode, mask=None):
    h = incidence(f, rule, k, mode, literal=True, mask=mask)
    w = torch.ones(h.shape[:-1], dtype=f.dtype, device=f.device)
    d_v = (h * w.unsqueeze(-2)).sum(-1)
    d_e = h.sum(-2)
    dv2 = torch.diag_embed(inv_pow(d_v, 0.5))
    wm = torch.diag_embed(w)
    inv_de = torch.diag_embed(inv_pow(d_e, 1.0))
    g = dv2 @ h @ wm @ inv_de @ h.transpose(-1, -2) @ dv2
    return g @ (f @ theta)


def conv_best(f, theta, rule, k, mode, mask=None):
    h = incidence(f, rule, k, mode, literal=False, mask=mask)
    w = torch.ones(h.shape[:-1], dtype=f.dtype, device=f.device)
    d_v = h @ w.unsqueeze(-1)
    d_e = h.sum(-2)
    dvh = inv_pow(d_v, 0.5)
    z = dvh * (f @ theta)
    e = (w * inv_pow(d_e, 1.0)).unsqueeze(-1) * (h.transpose(-1, -2) @ z)
    return dvh * (h @ e)


PATHS = {"naive": conv_naive, "best": conv_best}


def make_run(x, spec):
    """A function of no arguments doing one run; returns Y (forward) or dF (train)."""
    conv = PATHS[spec["path"]]
    rule, mode = spec["rule"], spec["mode"]
    k = spec.get("k") or DEFAULT_K[rule]
    f, theta, dy = x["f"], x["theta"], x["dy"]
    mask = None
    if spec.get("mask_from"):
        mask = torch.from_numpy(np.load(spec["mask_from"])).to(f.device, f.dtype)
    if spec["pass"] == "forward":
        def run():
            with torch.no_grad():
                return conv(f, theta, rule, k, mode, mask)
    else:
        def run():
            fl = f.detach().requires_grad_(True)
            tl = theta.detach().requires_grad_(True)
            y = conv(fl, tl, rule, k, mode, mask)
            y.backward(dy)
            return fl.grad
    return run


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_peak_extra(run):
    """Peak live bytes of PyTorch's CPU allocator during one run (above those live before
    it), and the run's result."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = run()
    events = [
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    ]
    events.sort(key=lambda t: t[0])
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak, out


def cuda_peak_extra(run, device):
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    out = run()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - base, out


def run_case(x, spec):
    """Warm-up, one run for memory, `repeats` timed runs; writes the result if asked."""
    device = x["f"].device
    if spec.get("only_incidence"):
        save_incidence(x, spec)
        return {"side": "torch", "incidence_out": spec["incidence_out"]}
    run = make_run(x, spec)
    t0 = time.perf_counter()
    out = run()
    sync(device)
    warmup = time.perf_counter() - t0
    del out

    if device.type == "cuda":
        peak, out = cuda_peak_extra(run, device)
        method = "torch.cuda.max_memory_allocated above memory_allocated before the run"
    else:
        peak, out = cpu_peak_extra(run)
        method = "torch.profiler(profile_memory=True): peak of the CPU allocator's live bytes"
    keep = out.numel() * out.element_size()
    if spec.get("out"):
        np.save(spec["out"], out.detach().cpu().numpy())
    del out

    times = []
    for _ in range(spec.get("repeats", 5)):
        sync(device)
        t = time.perf_counter()
        r = run()
        sync(device)
        times.append(time.perf_counter() - t)
        del r
    if spec.get("incidence_out"):
        save_incidence(x, spec)
    b, n, d = x["f"].shape
    return {
        "side": "torch",
        "path": spec["path"],
        "b": b, "n": n, "d": d,
        "rule": spec["rule"],
        "k": spec.get("k") or DEFAULT_K[spec["rule"]],
        "mode": spec["mode"],
        "pass": spec["pass"],
        "device": device.type,
        "threads": torch.get_num_threads(),
        "warmup_s": warmup,
        "times_s": times,
        "median_s": statistics.median(times) if times else warmup,
        "peak_extra_bytes": max(0, peak - keep),
        "memory_method": method,
    }


def save_incidence(x, spec):
    """Writes the hard incidence H [B, N, N] this side selects (agreement diagnostics)."""
    with torch.no_grad():
        h = incidence(x["f"], spec["rule"], spec.get("k") or DEFAULT_K[spec["rule"]], "hard",
                      literal=False)
    np.save(spec["incidence_out"], h.cpu().numpy())


_cache = {}


def load_inputs(path, device):
    key = (os.path.abspath(path), device)
    if key not in _cache:
        for old in [k for k in _cache if k[0] != key[0]]:
            del _cache[old]
        dev = torch.device(device)
        _cache[key] = {
            name: torch.from_numpy(np.load(os.path.join(path, f"{name}.npy"))).to(dev)
            for name in ("f", "theta", "dy")
        }
    return _cache[key]


def info():
    """Versions and threads, as the report prints them."""
    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if cuda else None,
    }


def serve():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if req.get("info"):
                res = info()
            else:
                x = load_inputs(req["inputs"], req.get("device", "cpu"))
                res = run_case(x, req)
        except Exception as e:  # reported to the runner, which records the case as failed
            res = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(res), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", action="store_true", help="JSON requests on stdin")
    ap.add_argument("--inputs", help="folder with f.npy, theta.npy, dy.npy")
    ap.add_argument("--rule", choices=["paper", "knn", "topk"], default="paper")
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--mode", choices=["hard", "soft"], default="hard")
    ap.add_argument("--pass", dest="pass_", choices=["forward", "train"], default="forward")
    ap.add_argument("--path", choices=list(PATHS), default="best")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out")
    ap.add_argument("--incidence-out")
    ap.add_argument("--mask-from", help="a hard H [B, N, N] .npy replacing the selection")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.serve:
        serve()
        return
    if not a.inputs:
        ap.error("--inputs is required without --serve")
    spec = {"rule": a.rule, "k": a.k, "mode": a.mode, "pass": a.pass_, "path": a.path,
            "repeats": a.repeats, "out": a.out, "incidence_out": a.incidence_out,
            "mask_from": a.mask_from}
    print(json.dumps(run_case(load_inputs(a.inputs, a.device), spec)))


if __name__ == "__main__":
    main()
