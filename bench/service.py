"""Benchmark: the speaker service on 2 cores, and identification at 1 k / 10 k / 100 k enrolled speakers.

1. HTTP throughput: ``layersv serve`` (a separate process, uvicorn, torch on 2 threads) with the
   quickstart model and 20 enrolled corpus speakers; clients post real corpus recordings
   (2-4.5 s) to ``/api/verify`` and ``/api/identify``, one at a time and 4 at a time →
   requests/s and p50/p95 latency (ms, client side, including upload and decoding).
2. Identification scale: speakers with synthetic unit embeddings (low-rank speaker structure +
   noise, the model's dimension) bulk-inserted in a speaker database; queries are a speaker's
   mean plus noise.  For each size: index build time, search p50/p95 of one query, recall@10
   of the index against exact search, and a full ``identify`` (search + database fetch + the
   run's scoring pipeline on 50 candidates), faiss index vs exact numpy, side by side.

Run: ``PYTHONPATH=src python bench/service.py [--run RUN]`` (without ``--run``, a
``layersv quickstart --fast`` model is trained first into a temporary folder, about 1-2 min).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


def quickstart_run(root: Path) -> Path:
    from layersv.quickstart import quickstart

    quickstart(root / "qs", fast=True, progress=False)
    return root / "qs" / "run"


def _pct(x: list[float]) -> tuple[float, float]:
    return float(np.percentile(x, 50)) * 1e3, float(np.percentile(x, 95)) * 1e3


def bench_http(run: Path, wavs: dict[str, list[Path]], root: Path, n_req: int = 40) -> None:
    import httpx

    from layersv.enrol import Recognizer

    db = root / "http.sqlite"
    rec = Recognizer(run, db)
    names = sorted(wavs)[:20]
    for s in names:
        rec.enroll(s, wavs[s][:3])
    rec.db.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    srv = subprocess.Popen([sys.executable, "-m", "layersv.cli", "serve", str(run), "--db", str(db), "--port",
                            str(port), "--threads", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/api/info", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        tests = [(s, w) for s in names for w in wavs[s][3:]]
        blobs = [(s, w.name, w.read_bytes()) for s, w in tests]
        print(f"\nHTTP service ({len(names)} enrolled, quickstart model, recordings "
              f"{min(len(b[2]) for b in blobs) / 32000:.1f}-{max(len(b[2]) for b in blobs) / 32000:.1f} s)")
        print(f"{'route':10s} {'clients':>7s} {'req/s':>7s} {'p50 ms':>8s} {'p95 ms':>8s}")
        for route in ("verify", "identify"):
            for clients in (1, 4):
                lat, lock, it = [], threading.Lock(), iter(range(n_req))

                def worker():
                    with httpx.Client(base_url=url, timeout=60) as c:
                        while True:
                            with lock:
                                i = next(it, None)
                            if i is None:
                                return
                            s, name, data = blobs[i % len(blobs)]
                            form = {"name": s} if route == "verify" else {"top": "5"}
                            t = time.perf_counter()
                            r = c.post(f"/api/{route}", data=form, files={"audio": (name, data, "audio/wav")})
                            dt = time.perf_counter() - t
                            assert r.status_code == 200, r.text
                            with lock:
                                lat.append(dt)

                worker_threads = [threading.Thread(target=worker) for _ in range(clients)]
                t0 = time.perf_counter()
                [t.start() for t in worker_threads]
                [t.join() for t in worker_threads]
                wall = time.perf_counter() - t0
                p50, p95 = _pct(lat)
                print(f"{route:10s} {clients:7d} {len(lat) / wall:7.1f} {p50:8.1f} {p95:8.1f}")
    finally:
        srv.terminate()
        srv.wait(10)


def synthetic_speakers(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``(n, dim)`` unit vectors with a low-rank speaker structure (like real embeddings, not uniform)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(123).standard_normal((32, dim))
    x = rng.standard_normal((n, 32)) @ basis + 0.7 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def bench_scale(run: Path, root: Path, sizes=(1_000, 10_000, 100_000), n_q: int = 200) -> None:
    from layersv import load_model
    from layersv.enrol import Recognizer
    from layersv.enrol.db import Utterance

    model = load_model(run)
    dim = model.embedding_dim
    rng = np.random.default_rng(1)
    print(f"\nIdentification scale (E = {dim}, {n_q} queries = a speaker's mean + noise; times in ms)")
    print(f"{'speakers':>8s} {'index':35s} {'build s':>7s} {'search p50':>10s} {'p95':>7s} {'recall@10':>9s} "
          f"{'top1=exact':>10s} {'identify p50':>12s} {'p95':>7s}")
    for n in sizes:
        db = root / f"scale{n}.sqlite"
        means = synthetic_speakers(n, dim, seed=n)
        recs = {kind: Recognizer(run, db, index=kind, model=model) for kind in ("faiss", "exact")}
        recs["faiss"].db.add_means([f"s{i:06d}" for i in range(n)], means, duration=12.0, raw_norm=1.0)
        pick = rng.choice(n, n_q, replace=False)
        q = means[pick] + 0.6 * rng.standard_normal((n_q, dim)).astype(np.float32) / np.sqrt(dim)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        truth = None
        for kind, rec in recs.items():
            t = time.perf_counter()
            idx = rec.index()
            build = time.perf_counter() - t
            lat, found = [], []
            for v in q:
                t = time.perf_counter()
                _, ids = rec.search(v, 10)
                lat.append(time.perf_counter() - t)
                found.append(ids[0])
            found = np.stack(found)
            truth = found if kind == "exact" else truth
            ident = []
            for v in q[:50]:
                u = Utterance(v, 1.0, 3.0, "q", "")
                t = time.perf_counter()
                rec.identify_embedding(u, top=5)
                ident.append(time.perf_counter() - t)
            recs[kind] = (idx.kind, build, _pct(lat), found, _pct(ident))
        for kind in ("faiss", "exact"):
            name, build, (s50, s95), found, (i50, i95) = recs[kind]
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
            top1 = np.mean(found[:, 0] == truth[:, 0])
            print(f"{n:8d} {name:35s} {build:7.2f} {s50:10.3f} {s95:7.3f} {recall:9.3f} {top1:10.3f} {i50:12.2f} "
                  f"{i95:7.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=None, help="a trained run (default: train `layersv quickstart --fast`)")
    ap.add_argument("--requests", type=int, default=40, help="requests per route and concurrency")
    ap.add_argument("--only", choices=["http", "scale"], default=None, help="run one of the two parts")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="layersv-bench-") as d:
        root = Path(d)
        t = time.time()
        run = Path(a.run) if a.run else quickstart_run(root)
        if not a.run:
            print(f"[bench] quickstart --fast model trained in {time.time() - t:.0f} s")
        from layersv.data.dataset_folder import open_dataset

        data = run.parent / "data" if (run.parent / "data" / "data.yaml").is_file() else None
        if data is None:
            raise SystemExit("the HTTP bench needs the run's quickstart corpus beside it (RUN/../data)")
        ds = open_dataset(data)
        wavs: dict[str, list[Path]] = {}
        for rel, spk in ds.train:
            wavs.setdefault(spk, []).append(ds.abspath(rel))
        if a.only != "scale":
            bench_http(run, wavs, root, a.requests)
        if a.only != "http":
            bench_scale(run, root)


if __name__ == "__main__":
    main()
