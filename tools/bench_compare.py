#!/usr/bin/env python3
"""hipl's fused path against PyTorch's dense paths, side by side in one run, with a report.

Builds `examples/bench_case.rs` in release, writes the CLIP-like inputs of the criterion
bench (`benches/common.rs`, seeds 1, 2, 3) as .npy once per shape, and for every case
(shape, rule, mode, pass) runs, one after another: Rust fused, Rust dense, torch naive,
torch best (and both torch paths on CUDA when a GPU is present). All paths read the same
inputs; every path's output (Y, or dF for the train pass) is checked against torch best:

    max |out − ref| ≤ TOL · max |ref|,   TOL = 1e-3   (f32 everywhere)

Writes bench/results.json, bench/RESULTS.md and bench/results.png (tools/bench_report.py).

    python3 tools/bench_compare.py            # the full run (about 20 minutes on 2 cores)
    python3 tools/bench_compare.py --quick    # small shapes only, to validate the pipeline
    python3 tools/bench_compare.py --shapes 4x1369x1024 --rules paper --modes hard
"""

import argparse
import datetime
import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bench_report  # noqa: E402

TOL = 1e-3
# A swapped pair of candidates is a near tie when their float64 similarities to the centre
# differ by at most this many times the measured f32 rounding error of a similarity.
NEAR_TIE_FACTOR = 4.0
HEADLINE = (4, 1369, 1024)
# The O(N³) paths run only up to these N by default (torch naive: the baseline of a
# target, so at least the headline N; hipl dense: the literal oracle, slower still).
MAX_NAIVE_N = 1369
MAX_DENSE_N = 1369

QUICK = {
    "blocks": [
        {"shapes": [(2, 196, 768), (2, 576, 768)], "rules": ["paper", "knn", "topk"],
         "modes": ["hard", "soft"], "passes": ["forward", "train"]},
    ],
}
FULL = {
    "blocks": [
        # The headline: every rule, mode and pass.
        {"shapes": [HEADLINE], "rules": ["paper", "knn", "topk"], "modes": ["hard", "soft"],
         "passes": ["forward", "train"]},
        # Scaling in N at B = 1 and 8, D = 1024 (the plot), hard incidence.
        {"shapes": [(b, n, 1024) for b in (1, 8) for n in (196, 576, 1369, 4096)],
         "rules": ["paper", "knn"], "modes": ["hard"], "passes": ["forward", "train"]},
        # D = 768 (ViT-B) at B = 8, forward.
        {"shapes": [(8, n, 768) for n in (196, 576, 1369)], "rules": ["paper"],
         "modes": ["hard"], "passes": ["forward"]},
    ],
}


def parse_shape(s):
    b, n, d = (int(v) for v in s.lower().split("x"))
    return (b, n, d)


def est_seconds(b, n, d, pass_, path):
    """A rough time for one run on this 2-core machine (~100 GFLOP/s), to pick repeats."""
    best = b * (3 * 2 * n * n * d + 2 * n * d * d)
    flops = best + (b * 5 * 2 * n ** 3 if path in ("naive", "dense") else 0)
    if pass_ == "train":
        flops *= 3
    return flops / 100e9


def repeats_for(b, n, d, pass_, path, forced, quick):
    if forced:
        return forced
    if quick:
        return 3
    t = est_seconds(b, n, d, pass_, path)
    return 7 if t < 0.2 else 5 if t < 1.5 else 3


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / 2 ** 20
    except (OSError, ValueError, IndexError):
        pass

    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return ""

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "avx512": " avx512f" in flags,
        "mem_gib": mem_gib,
        "os": platform.platform(),
        "rustc": out(["rustc", "--version"]),
        "commit": out(["git", "rev-parse", "--short", "HEAD"]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": os.getloadavg(),
    }


class TorchWorker:
    """tools/bench_torch.py --serve in a subprocess, restarted after a timeout."""

    def __init__(self, threads, log):
        self.threads, self.log, self.proc = threads, log, None

    def start(self):
        cmd = [sys.executable, os.path.join(ROOT, "tools", "bench_torch.py"), "--serve",
               "--threads", str(self.threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1)

    def request(self, req, timeout):
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return {"error": f"timeout after {timeout} s"}
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            return {"error": "the torch worker exited (out of memory?)"}
        return json.loads(line)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def run_rust(exe, inputs, case, path, repeats, out, timeout, incidence_out=None):
    """One case of examples/bench_case; with `incidence_out` (and no `out`) it only writes
    the path's hard incidence."""
    cmd = [exe, "run", "--inputs", inputs, "--rule", case["rule"], "--mode", case["mode"],
           "--pass", case["pass"], "--path", path, "--repeats", str(repeats)]
    if out:
        cmd += ["--out", out]
    if incidence_out:
        cmd += ["--incidence-out", incidence_out] + ([] if out else ["--only-incidence"])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    if p.returncode != 0:
        return {"error": (p.stderr.strip() or f"exit {p.returncode}")[-500:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def rel_err(out_path, ref_path):
    a, r = np.load(out_path), np.load(ref_path)
    if a.shape != r.shape:
        return float("inf")
    scale = float(np.abs(r).max()) or 1.0
    return float(np.abs(a.astype(np.float64) - r).max() / scale)


def diagnose_selection(inputs, rust_h, torch_h, k):
    """Where Rust's and torch's hard incidence differ: how many memberships, and how close,
    in float64, the swapped members' similarities to the centre are. A near tie is a gap
    below NEAR_TIE_FACTOR times the f32 rounding error of those similarities (measured here
    as max |S_f32 − S_f64| over the rows involved, numpy's f32 product standing in for
    either side's)."""
    f = np.load(os.path.join(inputs, "f.npy"))
    hr, ht = np.load(rust_h) > 0.5, np.load(torch_h) > 0.5
    diff = hr != ht
    if not diff.any():
        return {"memberships_differ": 0}
    edges = sorted({(int(b), int(e)) for b, _, e in zip(*np.nonzero(diff))})
    gaps, rounding = [], 0.0
    for b, e in edges:
        f64 = f[b].astype(np.float64)
        fh64 = f64 / np.linalg.norm(f64, axis=1, keepdims=True)
        fh32 = (f[b] / np.linalg.norm(f[b], axis=1, keepdims=True)).astype(np.float32)
        s64, s32 = fh64 @ fh64[e], fh32 @ fh32[e]
        rounding = max(rounding, float(np.abs(s32 - s64).max()))
        only_r = np.nonzero(hr[b, :, e] & ~ht[b, :, e])[0]
        only_t = np.nonzero(ht[b, :, e] & ~hr[b, :, e])[0]
        gaps += [float(abs(s64[i] - s64[j])) for i in only_r for j in only_t]
    gap = max(gaps) if gaps else None
    return {
        "memberships_differ": int(diff.sum()),
        "hyperedges_differ": len(edges),
        "hyperedges": int(diff.shape[0] * diff.shape[2]),
        "max_f64_similarity_gap_of_swaps": gap,
        "f32_rounding_of_similarity": rounding,
        "near_tie": gap is not None and gap <= NEAR_TIE_FACTOR * rounding,
        "k": k,
    }


def plan(args):
    if args.shapes or args.rules or args.modes or args.passes:
        base = QUICK if args.quick else FULL
        shapes = ([parse_shape(s) for s in args.shapes.split(",")] if args.shapes
                  else sorted({s for bl in base["blocks"] for s in bl["shapes"]}))
        blocks = [{"shapes": shapes,
                   "rules": (args.rules or "paper,knn,topk").split(","),
                   "modes": (args.modes or "hard,soft").split(","),
                   "passes": (args.passes or "forward,train").split(",")}]
    else:
        blocks = (QUICK if args.quick else FULL)["blocks"]
    cases = {}
    for bl in blocks:
        for shape in bl["shapes"]:
            for rule in bl["rules"]:
                for mode in bl["modes"]:
                    for pass_ in bl["passes"]:
                        cases.setdefault(shape, []).append(
                            {"rule": rule, "mode": mode, "pass": pass_})
    # Drop repeats of the same case across blocks, keep the order.
    out = []
    for shape, cs in cases.items():
        seen, uniq = set(), []
        for c in cs:
            key = (c["rule"], c["mode"], c["pass"])
            if key not in seen:
                seen.add(key)
                uniq.append(c)
        out.append((shape, uniq))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes only (validation)")
    ap.add_argument("--shapes", help="comma-separated BxNxD, e.g. 4x1369x1024,1x576x768")
    ap.add_argument("--rules", help="comma-separated from paper,knn,topk")
    ap.add_argument("--modes", help="comma-separated from hard,soft")
    ap.add_argument("--passes", help="comma-separated from forward,train")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per path and case")
    ap.add_argument("--repeats", type=int, default=0, help="timed runs (default by cost)")
    ap.add_argument("--max-naive-n", type=int, default=MAX_NAIVE_N,
                    help="largest N for torch naive (O(N^3))")
    ap.add_argument("--max-dense-n", type=int, default=MAX_DENSE_N,
                    help="largest N for hipl dense (O(N^3), the literal oracle)")
    ap.add_argument("--no-cuda", action="store_true", help="skip torch on CUDA")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench"), help="report folder")
    ap.add_argument("--workdir", help="inputs and outputs (default: a temporary folder)")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()

    threads = os.cpu_count()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--example", "bench_case"], cwd=ROOT,
                       check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    exe = os.path.join(target, "release", "examples", "bench_case")
    work = args.workdir or tempfile.mkdtemp(prefix="hipl-bench-")
    os.makedirs(work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(work, "torch-worker.log"), "w")
    worker = TorchWorker(threads, log)
    info = machine_info()
    info.update(worker.request({"info": True}, 300))
    devices = ["cpu"] + (["cuda"] if info.get("cuda") and not args.no_cuda else [])
    results = {"machine": info, "quick": args.quick, "tolerance": TOL, "headline": HEADLINE,
               "max_dense_n": args.max_dense_n, "max_naive_n": args.max_naive_n, "rows": []}
    t_start = time.time()
    todo = plan(args)
    total = sum(len(cs) for _, cs in todo)
    done = 0
    for (b, n, d), cases in todo:
        inputs = os.path.join(work, f"{b}x{n}x{d}")
        subprocess.run([exe, "write-inputs", "--b", str(b), "--n", str(n), "--d", str(d),
                        "--seed", "1", "--dir", inputs], check=True)
        for case in cases:
            done += 1
            tag = f"{case['rule']}_{case['mode']}_{case['pass']}"
            row = {"b": b, "n": n, "d": d, **case, "paths": {}}
            outs = {}
            paths = [("rust", "fused", "cpu"), ("rust", "dense", "cpu")]
            paths += [("torch", p, dev) for dev in devices for p in ("naive", "best")]
            for side, path, dev in paths:
                name = f"{side}-{path}" + ("" if dev == "cpu" else f"-{dev}")
                limit = args.max_naive_n if path == "naive" else args.max_dense_n
                if path in ("naive", "dense") and n > limit:
                    row["paths"][name] = {"skipped": f"O(N^3) path skipped at N > {limit}"}
                    continue
                reps = repeats_for(b, n, d, case["pass"], path, args.repeats, args.quick)
                out = os.path.join(inputs, f"{tag}_{name}.npy")
                if side == "rust":
                    r = run_rust(exe, inputs, case, path, reps, out, args.timeout)
                else:
                    req = {"inputs": inputs, "device": dev, "path": path, "repeats": reps,
                           "out": out, **case}
                    r = worker.request(req, args.timeout)
                if "error" not in r:
                    outs[name] = out
                row["paths"][name] = r
                status = r.get("error") or f"{r['median_s']:.4f} s"
                print(f"[{done}/{total}] {b}x{n}x{d} {tag} {name}: {status}", flush=True)
            check(row, outs, inputs, exe, case, worker, args.timeout)
            for p in outs.values():
                os.remove(p)
            results["rows"].append(row)
        shutil.rmtree(inputs, ignore_errors=True)
    worker.stop()
    info["loadavg_end"] = os.getloadavg()
    results["wall_s"] = time.time() - t_start
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    bench_report.write(results, args.out)
    print(f"wrote {args.out}/RESULTS.md, results.png, results.json "
          f"({results['wall_s'] / 60:.1f} min)")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    bad = [r for r in results["rows"] if not r.get("agree", True)]
    sys.exit(1 if bad else 0)


def check(row, outs, inputs, exe, case, worker, timeout):
    """Agreement of every path's output with torch best (CPU), or the best reference run.

    Under kNN and top-k a vertex whose similarity ties another's at the k-th place to within
    f32 rounding may be chosen by one side and not the other; one such swap moves a few
    output rows by up to ~1/(2 d_v) of their scale, which is above TOL. A Rust path whose
    raw error is above TOL is therefore checked again: its own hard incidence is read back,
    compared with torch's (how many memberships differ, and the float64 similarity gap of
    each swapped pair), and torch best is rerun with that incidence in place of its own
    selection. The path agrees when that rerun agrees within TOL and every swap is a near
    tie (see diagnose_selection); otherwise the disagreement stands and is reported.
    """
    ref = next((p for p in ("torch-best", "torch-naive", "rust-dense") if p in outs), None)
    row["reference"] = ref
    row["agree"] = True
    if ref is None:
        return
    for name, out in outs.items():
        if name == ref:
            continue
        e = rel_err(out, outs[ref])
        row["paths"][name]["rel_err"] = e
        if e <= TOL:
            continue
        if case["rule"] == "paper" or ref != "torch-best":
            row["agree"] = False
            continue
        diag = same_selection(inputs, exe, case, name, out, worker, timeout)
        row["paths"][name]["same_selection"] = diag
        print(f"    {name}: raw rel err {e:.2e}; {diag}", flush=True)
        if not (diag.get("rel_err_same_selection", float("inf")) <= TOL
                and diag.get("memberships_differ", 1) > 0 and diag.get("near_tie")):
            row["agree"] = False


def same_selection(inputs, exe, case, name, out, worker, timeout):
    """Reads back the hard incidence of path `name` (a Rust path, or torch on CUDA) and
    torch's on the CPU, compares them, and reruns torch best on the CPU with the path's
    incidence; returns the diagnosis."""
    rh, th = os.path.join(inputs, "h_path.npy"), os.path.join(inputs, "h_torch.npy")
    same = os.path.join(inputs, "same_selection.npy")
    hard = {**case, "mode": "hard", "pass": "forward"}
    if name.startswith("rust-"):
        r = run_rust(exe, inputs, hard, name.split("-")[1], 0, None, timeout, incidence_out=rh)
    else:
        r = worker.request({"inputs": inputs, "device": name.rsplit("-", 1)[1], "path": "best",
                            "only_incidence": True, "incidence_out": rh, **hard}, timeout)
    t = worker.request({"inputs": inputs, "device": "cpu", "path": "best",
                        "only_incidence": True, "incidence_out": th, **hard}, timeout)
    if "error" in r or "error" in t:
        return {"error": r.get("error") or t.get("error")}
    diag = diagnose_selection(inputs, rh, th, {"knn": 9, "topk": 64}.get(case["rule"]))
    t = worker.request({"inputs": inputs, "device": "cpu", "path": "best", "repeats": 0,
                        "mask_from": rh, "out": same, **case}, timeout)
    if "error" in t:
        diag["error"] = t["error"]
    else:
        diag["rel_err_same_selection"] = rel_err(out, same)
    for p in (rh, th, same):
        if os.path.exists(p):
            os.remove(p)
    return diag


if __name__ == "__main__":
    main()
