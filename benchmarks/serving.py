"""Load benchmark: `shelfwise serve --workers N` on loopback, driven by wrk at fixed rates.

For each configuration (shop × model × store × workers) a fresh store is filled and the server
started; then wrk (Debian's `wrk`, with `serving_mix.lua`) sends an open loop at each rate for
`--duration` seconds: 90% GET recommendations and 10% POST events, for random known shoppers. A
request's latency counts from the moment it was due (no coordinated omission). wrk, the server and
its workers share the machine's cores.

Shops: ``synthetic`` (the 100,000-item shop of `benchmarks/scale.py` size M, with its stand-in text
vectors) and ``beauty`` (amazon2018-all-beauty, read from the data folder). Models: ``sequential``
(the flagship, trained with a time budget) and ``als``. Every model folder is trained with
`shelfwise train`, which writes its serving artifacts.

    python benchmarks/serving.py [--shops synthetic,beauty] [--models sequential,als]
        [--stores sqlite,postgresql] [--workers 1,2] [--rates 100,200,400,800] [--duration 60]
    python benchmarks/serving.py --soak 600 [--soak-rate 200]   # memory over ten minutes
    python benchmarks/serving.py --memory 1,2,4                  # RSS and PSS of N workers

Results: `results/serving.{md,json}` (each mode keeps the others' last results).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import available_datasets, run_meta, write_results

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("SHELFWISE_SERVING_WORK", ROOT / "benchmarks" / ".work" / "serving"))
SCALE_M = ROOT / "benchmarks" / ".work" / "scale" / "M"
SHELFWISE = Path(sys.executable).parent / "shelfwise"
KEY = "benchmark-key-0123456789abcdef"
PG_URL = os.environ.get("SHELFWISE_BENCH_PG", "postgresql://127.0.0.1:5432/test")
CONNECTIONS = 32
TARGET = {"shop": "synthetic", "model": "sequential", "workers": 2, "rate": 400, "p99_ms": 25.0}
SEQUENTIAL_BUDGET = {"synthetic": 300, "beauty": 240}


def env(shop: str) -> dict[str, str]:
    """The environment every shelfwise command of the benchmark runs in: a home (and embedding cache)
    per shop, so the synthetic shop's stand-in vectors never mix with real ones."""
    home = str(WORK / f"home-{shop}")
    return {**os.environ, "HF_HUB_OFFLINE": "1", "SHELFWISE_HOME": home, "SHELFWISE_API_KEY": KEY}


def shelfwise(shop: str, *args: str) -> None:
    subprocess.run([str(SHELFWISE), *args], check=True, env=env(shop))


# ---------------------------------------------------------------------------------------- models
def prepare(shop: str, model: str) -> Path:
    """The model folder of `model` on `shop`, trained (with its serving artifacts) once."""
    out = WORK / f"{shop}-{model}"
    if (out / "serving" / "manifest.json").is_file():
        return out
    cache = WORK / f"home-{shop}" / "cache" / "embeddings"
    if shop == "synthetic":
        if not (SCALE_M / "cache").is_dir():
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "benchmarks" / "scale.py"),
                    "--sizes",
                    "M",
                    "--stages",
                    "generate,ingest,encode",
                    "--resume",
                    "--no-render",
                ],
                check=True,
            )
        cache.parent.mkdir(parents=True, exist_ok=True)
        if not cache.exists():
            cache.symlink_to(SCALE_M / "cache")  # the stand-in vectors scale.py wrote (see its report)
        data = str(SCALE_M / "dataset")
    else:
        from shelfwise.data.adapters import data_dir

        data = str(data_dir() / "amazon2018-all-beauty")
    params = ["--param", f"max_seconds={SEQUENTIAL_BUDGET[shop]}"] if model == "sequential" else []
    shelfwise(shop, "train", "--data", data, "--model", model, "--out", str(out), *params)
    return out


# ---------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_store(kind: str, tag: str) -> str:
    if kind == "sqlite":
        path = WORK / f"store-{tag}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return PG_URL


class Server:
    """`shelfwise serve` in a child process group, with its workers' pids, CPU time and memory."""

    def __init__(self, model_dir: Path, store: str, workers: int, log: Path, shop: str) -> None:
        self.port = free_port()
        command = [str(SHELFWISE), "serve", "--model", str(model_dir), "--store", store]
        command += ["--port", str(self.port), "--workers", str(workers)]
        started = time.monotonic()
        self.process = subprocess.Popen(
            command, env=env(shop), stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.log = log
        self.ready_seconds = self._wait(started, workers, "pid")
        #: until every worker has loaded its encoder in the background (measured load starts after it)
        self.warm_seconds = self._wait(started, workers, "text_ready")

    def _wait(self, started: float, workers: int, field: str) -> float:
        """Seconds from `started` until `workers` processes answered the status with `field` true."""
        import httpx

        pids: set[int] = set()
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited with {self.process.returncode}; see {self.log}")
            try:
                reply = httpx.get(f"http://127.0.0.1:{self.port}/v1/admin/status", timeout=2, headers=auth())
                if reply.status_code == 200:
                    if reply.json()[field]:
                        pids.add(reply.json()["pid"])
                    if len(pids) >= workers:
                        return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    def pids(self) -> list[int]:
        """The server's processes that hold an engine (the workers, or the one process)."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        children = [int(p) for p in out.stdout.split()]  # forked workers carry the parent's name
        return [p for p in children if _rss_mb(p) > 200] or [self.process.pid]

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in {self.process.pid, *self.pids()}:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        return total

    def memory(self) -> dict:
        """RSS and PSS (shared pages split between the processes that map them) per process of the
        server, MB: the workers and the parent (which, with workers, holds the pages they share)."""
        out = []
        everyone = subprocess.run(["pgrep", "-s", str(self.process.pid)], capture_output=True, text=True)
        for pid in [int(p) for p in everyone.stdout.split()]:
            values = {"pid": pid, "rss_mb": _rss_mb(pid)}
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        values["pss_mb"] = round(int(line.split()[1]) / 1024, 1)
            except OSError:
                pass
            out.append(values)
        return {
            "workers": out,
            "rss_mb_total": round(sum(w["rss_mb"] for w in out), 1),
            "pss_mb_total": round(sum(w.get("pss_mb", 0.0) for w in out), 1),
        }

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


# ---------------------------------------------------------------------------------------- load
def id_files(model_dir: Path, folder: Path) -> tuple[Path, Path]:
    """Files of known shoppers' and items' ids (up to 5,000 each, seeded) for the wrk script."""
    from shelfwise.data.dataset import Dataset

    dataset = Dataset.load(model_dir / "dataset")
    rng = np.random.default_rng(7)
    users = rng.choice(dataset.user_ids.astype(str), min(5000, dataset.n_users), replace=False)
    items = rng.choice(dataset.item_ids.astype(str), min(5000, dataset.n_items), replace=False)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users.txt").write_text("\n".join(users) + "\n")
    (folder / "items.txt").write_text("\n".join(items) + "\n")
    return folder / "users.txt", folder / "items.txt"


def drive(server: Server, rate: float, duration: float, ids: tuple[Path, Path], folder: Path, seed: int) -> dict:
    """One wrk run at `rate` for `duration` seconds; latencies from due time, per request kind."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "latencies.tsv"
    out.unlink(missing_ok=True)
    mix = {
        "MIX_RATE": str(rate),
        "MIX_CONNECTIONS": str(CONNECTIONS),
        "MIX_EVENT_SHARE": "0.1",
        "MIX_USERS": str(ids[0]),
        "MIX_ITEMS": str(ids[1]),
        "MIX_KEY": KEY,
        "MIX_OUT": str(folder),
        "MIX_SEED": str(seed),
    }
    command = ["wrk", "-t", str(CONNECTIONS), "-c", str(CONNECTIONS), "-d", f"{duration:g}s", "--timeout", "10s"]
    command += ["-s", str(ROOT / "benchmarks" / "serving_mix.lua"), f"http://127.0.0.1:{server.port}"]
    cpu = server.cpu_seconds()
    generator = _children_cpu_seconds()
    started = time.monotonic()
    subprocess.run(command, env={**os.environ, **mix}, check=True, capture_output=True)
    seconds = time.monotonic() - started
    cpu = (server.cpu_seconds() - cpu) / seconds
    generator = (_children_cpu_seconds() - generator) / seconds  # wrk's (the server has not exited)
    return {
        **summarise(out, duration),
        "server_cpu_cores": round(cpu, 2),
        "generator_cpu_cores": round(generator, 2),
        "target_rate": rate,
    }


def _children_cpu_seconds() -> float:
    """CPU seconds of this process's children that have exited and been waited for."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summarise(path: Path, duration: float) -> dict:
    kinds, statuses, latencies, socket_errors = [], [], [], 0
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if parts[0] == "#errors":
            socket_errors = int(parts[1])
            continue
        kinds.append(parts[0])
        statuses.append(int(parts[1]))
        latencies.append(float(parts[2]) * 1000)
    ms, status, kind = np.array(latencies), np.array(statuses), np.array(kinds)
    ok = np.where(kind == "e", status == 201, status == 200)
    out: dict = {"requests": len(ms), "errors": int((~ok).sum()) + socket_errors, "rate": round(len(ms) / duration, 1)}
    for name, part in (("all", np.ones(len(ms), dtype=bool)), ("recommend", kind == "r"), ("event", kind == "e")):
        if part.any():
            out[name] = {q: round(float(np.percentile(ms[part], p)), 2) for q, p in (("p50", 50), ("p99", 99))}
            out[name]["max"] = round(float(ms[part].max()), 2)
    return out


# ---------------------------------------------------------------------------------------- modes
def matrix(args: argparse.Namespace) -> list[dict]:
    rows = []
    for shop in args.shops:
        for model in args.models:
            model_dir = prepare(shop, model)
            ids = id_files(model_dir, WORK / "ids" / shop)
            for store_kind in args.stores:
                for workers in args.workers:
                    tag = f"{shop}-{model}-{store_kind}-{workers}"
                    store = fresh_store(store_kind, tag)
                    print(f"[{time.strftime('%H:%M:%S')}] {tag}: first start (fills the store)", flush=True)
                    first = Server(model_dir, store, workers, WORK / f"serve-{tag}-first.log", shop)
                    first.stop()
                    server = Server(model_dir, store, workers, WORK / f"serve-{tag}.log", shop)
                    row = {
                        "shop": shop,
                        "model": model,
                        "store": store_kind,
                        "workers": workers,
                        "first_start_seconds": round(first.ready_seconds, 1),
                        "start_seconds": round(server.ready_seconds, 1),
                        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
                        "rates": [],
                    }
                    try:
                        drive(server, 50, 5, ids, WORK / "runs" / tag / "warm", seed=1)
                        for n, rate in enumerate(args.rates):
                            result = drive(server, rate, args.duration, ids, WORK / "runs" / tag / str(rate), 10 + n)
                            print(f"    {rate:>4} req/s: {json.dumps(result)}", flush=True)
                            row["rates"].append(result)
                            if result["rate"] < 0.9 * rate or result["all"]["p99"] > 1000:
                                row["saturated_at"] = rate  # a higher rate only queues more
                                break
                            time.sleep(2)
                        row["memory"] = server.memory()
                    finally:
                        server.stop()
                    rows.append(row)
    return rows


def soak(args: argparse.Namespace) -> dict:
    """`--soak` seconds at `--soak-rate` on the target configuration, in minute-long wrk runs, with
    the workers' memory after each."""
    model_dir = prepare(TARGET["shop"], TARGET["model"])
    ids = id_files(model_dir, WORK / "ids" / TARGET["shop"])
    store = fresh_store("sqlite", "soak")
    Server(model_dir, store, 2, WORK / "serve-soak-first.log", TARGET["shop"]).stop()
    server = Server(model_dir, store, 2, WORK / "serve-soak.log", TARGET["shop"])
    samples = [{"second": 0, **server.memory()}]
    runs = []
    try:
        elapsed = 0.0
        while elapsed < args.soak:
            step = min(60.0, args.soak - elapsed)
            runs.append(drive(server, args.soak_rate, step, ids, WORK / "runs" / "soak", seed=100 + len(runs)))
            elapsed += step
            samples.append({"second": round(elapsed), **server.memory()})
            print(
                f"    soak {elapsed:.0f} s: {json.dumps(runs[-1])[:200]} rss {samples[-1]['rss_mb_total']}", flush=True
            )
    finally:
        server.stop()
    return {"rate": args.soak_rate, "seconds": args.soak, "runs": runs, "memory": samples}


def new_items(args: argparse.Namespace) -> list[dict]:
    """Throughput (closed loop: wrk as fast as answers come, 32 connections) before and after
    `--new-items` items are PUT through the service, for both models on the synthetic shop, 2 workers."""
    import httpx

    out = []
    for model in args.models:
        model_dir = prepare(TARGET["shop"], model)
        ids = id_files(model_dir, WORK / "ids" / TARGET["shop"])
        store = fresh_store("sqlite", f"new-items-{model}")
        Server(model_dir, store, 2, WORK / "serve-new-items-first.log", TARGET["shop"]).stop()
        server = Server(model_dir, store, 2, WORK / f"serve-new-items-{model}.log", TARGET["shop"])
        try:
            drive(server, 50, 5, ids, WORK / "runs" / "new-items" / "warm", seed=1)
            before = drive(server, 100_000, 30, ids, WORK / "runs" / "new-items" / "before", seed=2)
            rng = np.random.default_rng(5)
            words = ["lamp", "scarf", "kettle", "mug", "chair", "serum", "boots", "puzzle", "tent", "blender"]
            base = f"http://127.0.0.1:{server.port}"
            for start in range(0, args.new_items, 100):
                batch = [
                    {
                        "item_id": f"bench-new-{n}",
                        "title": f"{rng.choice(words)} {rng.choice(words)} model {n}",
                        "description": "added after training",
                        "category": str(rng.choice(words)),
                        "price": float(rng.uniform(5, 200)),
                    }
                    for n in range(start, min(start + 100, args.new_items))
                ]
                reply = httpx.put(f"{base}/v1/items", json={"items": batch}, headers=auth(), timeout=120)
                reply.raise_for_status()
            time.sleep(3)  # the other worker follows the change feed
            after = drive(server, 100_000, 30, ids, WORK / "runs" / "new-items" / "after", seed=2)
            out.append({"model": model, "items_added": args.new_items, "before": before, "after": after})
            print(f"    {model}: {before['rate']} -> {after['rate']} req/s", flush=True)
        finally:
            server.stop()
    return out


#: Where a sampled stack's time goes: its innermost frame that matches one of these (in order).
PARTS = (
    ("store (SQLAlchemy, sqlite3, psycopg)", ("sqlalchemy", "sqlite3", "psycopg")),
    ("model (torch)", ("torch/",)),
    ("vector index (faiss)", ("faiss",)),
    ("reasons and the answer's records", ("engine/answers", "retrieval/explain")),
    ("engine: history, masks, scores, top-k (numpy)", ("shelfwise/engine", "shelfwise/ranking", "shelfwise/retrieval")),
    ("request and response models (pydantic)", ("pydantic",)),
    ("service: routes, metrics, auth", ("shelfwise/service", "prometheus")),
    ("HTTP, ASGI and the event loop (uvicorn, starlette, FastAPI)", ("uvicorn", "starlette", "fastapi", "anyio")),
)


#: Innermost frames of threads that wait (py-spy cannot always tell them from working ones).
IDLE = ("Condition.wait", "Connection._recv", "wait_for_change", "Runner.run", "select (", "_worker (concurrent")


def profile(args: argparse.Namespace) -> dict:
    """py-spy samples of every worker of the target configuration under load (`--profile` rate):
    the share of busy samples per part of a request, and the functions that hold the most."""
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        raise SystemExit("skipped: py-spy is not installed (pip install py-spy)")
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    model_dir = prepare(TARGET["shop"], TARGET["model"])
    ids = id_files(model_dir, WORK / "ids" / TARGET["shop"])
    store = fresh_store("sqlite", "profile")
    Server(model_dir, store, 2, WORK / "serve-profile-first.log", TARGET["shop"]).stop()
    server = Server(model_dir, store, 2, WORK / "serve-profile.log", TARGET["shop"])
    stacks: dict[str, int] = {}
    try:
        drive(server, 50, 5, ids, WORK / "runs" / "profile" / "warm", seed=1)
        recorders = [
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    "20",
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-o",
                    str(WORK / f"spy-{pid}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in server.pids()
        ]
        load = drive(server, args.profile, 25, ids, WORK / "runs" / "profile" / "load", seed=2)
        for recorder in recorders:
            recorder.wait(timeout=60)
        for path in WORK.glob("spy-*.txt"):
            for line in path.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                stacks[stack] = stacks.get(stack, 0) + int(count)
            path.unlink()
    finally:
        server.stop()
    total = sum(stacks.values()) or 1
    parts: dict[str, int] = {}
    leaves: dict[str, int] = {}
    for stack, count in list(stacks.items()):
        frames = stack.split(";")
        if any(idle in frames[-1] for idle in IDLE):  # a thread waiting, not working
            total -= count
            continue
        part = next(
            (name for frame in reversed(frames) for name, keys in PARTS if any(k in frame for k in keys)), "other"
        )
        parts[part] = parts.get(part, 0) + count
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + count
    return {
        "rate": args.profile,
        "load": load,
        "samples": total,
        "parts": {name: round(count / total, 3) for name, count in sorted(parts.items(), key=lambda x: -x[1])},
        "functions": {
            name: round(count / total, 3) for name, count in sorted(leaves.items(), key=lambda x: -x[1])[:15]
        },
    }


def memory(args: argparse.Namespace) -> list[dict]:
    """RSS and PSS of 1, 2, 4 … workers after start and after 20 s of load at 200 requests/s."""
    model_dir = prepare(TARGET["shop"], TARGET["model"])
    ids = id_files(model_dir, WORK / "ids" / TARGET["shop"])
    store = fresh_store("sqlite", "memory")
    Server(model_dir, store, 1, WORK / "serve-memory-first.log", TARGET["shop"]).stop()
    out = []
    for workers in args.memory:
        server = Server(model_dir, store, workers, WORK / f"serve-memory-{workers}.log", TARGET["shop"])
        try:
            started = server.memory()
            drive(server, 200, 20, ids, WORK / "runs" / f"memory-{workers}", seed=3)
            out.append(
                {
                    "workers": workers,
                    "start_seconds": round(server.ready_seconds, 1),
                    "after_start": started,
                    "after_load": server.memory(),
                }
            )
            print(f"    {workers} workers: {json.dumps(out[-1])[:300]}", flush=True)
        finally:
            server.stop()
    return out


# ---------------------------------------------------------------------------------------- report
def highest_rate(row: dict, p99_ms: float = 50.0) -> float | None:
    good = [r["target_rate"] for r in row["rates"] if r["all"]["p99"] < p99_ms and r["errors"] == 0]
    return max(good) if good else None


def render(payload: dict) -> str:
    meta = payload["meta"]
    lines = [
        "# Serving benchmark",
        "",
        f"`{meta['command']}` on {meta['date']} ({meta['cores']} cores, {meta['machine']}, Python {meta['python']}), "
        f"commit {meta.get('commit', '?')}. Server (`shelfwise serve --workers N`) and load generator (wrk, "
        f"{CONNECTIONS} connections, `benchmarks/serving_mix.lua`) share the machine's cores. Open loop at fixed "
        "rates: 90% GET recommendations (k=10), 10% POST events, random known shoppers; latency counts from when "
        "a request was due. Each model folder was written by `shelfwise train` with its serving artifacts.",
        "",
    ]
    rows = payload.get("matrix", [])
    if rows:
        duration = payload.get("duration")
        lines += [
            f"## Latency by rate ({duration:g} s per rate)",
            "",
            "| shop | model | store | workers | start s | rate | achieved | errors | p50 ms | p99 ms | max ms "
            "| p99 GET ms | p99 POST ms | server CPU (cores) | wrk CPU (cores) | measured |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in rows:
            for r in row["rates"]:
                lines.append(
                    f"| {row['shop']} | {row['model']} | {row['store']} | {row['workers']} | {row['start_seconds']} "
                    f"| {r['target_rate']:g} | {r['rate']} | {r['errors']} | {r['all']['p50']} | {r['all']['p99']} "
                    f"| {r['all']['max']} | {r.get('recommend', {}).get('p99', '')} "
                    f"| {r.get('event', {}).get('p99', '')} "
                    f"| {r['server_cpu_cores']} | {r.get('generator_cpu_cores', '')} "
                    f"| {row.get('measured', 'earlier')} |"
                )
            if row.get("saturated_at"):
                lines.append(
                    f"| {row['shop']} | {row['model']} | {row['store']} | {row['workers']} | | higher rates | "
                    f"not run: saturated at {row['saturated_at']:g} | | | | | | | | | |"
                )
        lines += ["", "## Highest rate with p99 under 50 ms and no errors", ""]
        lines += [
            "| shop | model | store | workers | rate | memory after the run (RSS / PSS, MB) |",
            "|---|---|---|---:|---:|---|",
        ]
        for row in rows:
            best = highest_rate(row)
            mem = row.get("memory", {})
            lines.append(
                f"| {row['shop']} | {row['model']} | {row['store']} | {row['workers']} | "
                f"{'none' if best is None else f'{best:g}'} | "
                f"{mem.get('rss_mb_total', '')} / {mem.get('pss_mb_total', '')} |"
            )
        for store in ("sqlite", "postgresql"):
            target = [
                r
                for row in rows
                if (row["shop"], row["model"], row["workers"], row["store"])
                == (TARGET["shop"], TARGET["model"], TARGET["workers"], store)
                for r in row["rates"]
                if r["target_rate"] == TARGET["rate"]
            ]
            if target:
                r = target[0]
                met = r["all"]["p99"] < TARGET["p99_ms"] and r["errors"] == 0
                lines += [
                    "",
                    f"Target on {store} (`sequential`, 2 workers, 100,000 items: p99 under 25 ms at 400 requests/s, "
                    f"zero errors): **{'met' if met else 'not met'}** (p99 {r['all']['p99']} ms, {r['errors']} errors, "
                    f"{r['rate']} req/s achieved).",
                ]
    if payload.get("memory"):
        lines += ["", "## Memory of N workers (synthetic shop, `sequential`)", ""]
        lines += [
            "| workers | start s | RSS after start | PSS after start | RSS after load | PSS after load |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for m in payload["memory"]:
            lines.append(
                f"| {m['workers']} | {m['start_seconds']} | {m['after_start']['rss_mb_total']} | "
                f"{m['after_start']['pss_mb_total']} | {m['after_load']['rss_mb_total']} | "
                f"{m['after_load']['pss_mb_total']} |"
            )
        lines += [
            "",
            "MB, summed over the server's processes (the workers and, with workers, the parent that loaded "
            "what they share). PSS splits each shared page between the processes that map it; RSS counts "
            "a shared page once per process.",
        ]
    if payload.get("soak"):
        soak = payload["soak"]
        errors = sum(r["errors"] for r in soak["runs"])
        p99 = max(r["all"]["p99"] for r in soak["runs"])
        mem = soak["memory"]
        middle = mem[len(mem) // 2]
        lines += [
            "",
            f"## Soak: {soak['seconds']:g} s at {soak['rate']:g} requests/s "
            "(synthetic shop, `sequential`, 2 workers, SQLite)",
            "",
            f"{sum(r['requests'] for r in soak['runs']):,} requests, {errors} errors, worst minute's p99 {p99} ms. "
            f"Workers' RSS: {mem[0]['rss_mb_total']} MB at start, {middle['rss_mb_total']} MB at {middle['second']} s, "
            f"{mem[-1]['rss_mb_total']} MB at the end (PSS {mem[0]['pss_mb_total']} / {middle['pss_mb_total']} / "
            f"{mem[-1]['pss_mb_total']} MB).",
        ]
    if payload.get("new_items"):
        lines += [
            "",
            "## Items added after training (synthetic shop, 2 workers, SQLite; closed loop, 32 connections, 30 s, "
            "once every worker has loaded its encoder)",
            "",
        ]
        lines += ["| model | items added | req/s before | req/s after | change | p99 ms before | p99 ms after |"]
        lines += ["|---|---:|---:|---:|---:|---:|---:|"]
        for r in payload["new_items"]:
            change = r["after"]["rate"] / r["before"]["rate"] - 1
            lines.append(
                f"| {r['model']} | {r['items_added']:,} | {r['before']['rate']} | {r['after']['rate']} | {change:+.1%} "
                f"| {r['before']['all']['p99']} | {r['after']['all']['p99']} |"
            )
    if payload.get("profile"):
        prof = payload["profile"]
        lines += [
            "",
            f"## Where a request's time goes (py-spy, both workers, {prof['rate']:g} requests/s, 20 s)",
            "",
            f"{prof['samples']:,} busy samples of the two workers (synthetic shop, `sequential`, SQLite), taken by "
            f"`py-spy record --nonblocking -r 100`, which itself slows the workers (p99 {prof['load']['all']['p99']} "
            "ms while it sampled; see the tables above for latency without it). A sample counts for the innermost "
            "frame that names a part; threads waiting are left out:",
            "",
            "| part | share of busy samples |",
            "|---|---:|",
            *[f"| {name} | {share:.1%} |" for name, share in prof["parts"].items()],
            "",
            "| function (innermost frame) | share |",
            "|---|---:|",
            *[f"| `{name}` | {share:.1%} |" for name, share in prof["functions"].items()],
        ]
    for note in payload.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shops", default="synthetic,beauty")
    parser.add_argument("--models", default="sequential,als")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--rates", default="100,200,400,800")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of soak at --soak-rate (0: none)")
    parser.add_argument("--soak-rate", type=float, default=200.0)
    parser.add_argument("--memory", default="", help="worker counts to measure memory for, e.g. 1,2,4")
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy the workers under load at this rate")
    parser.add_argument("--new-items", type=int, default=0, help="throughput before and after PUTting this many items")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("skipped: wrk is not installed (Debian: apt-get install wrk)")
    args.shops = [s for s in args.shops.split(",") if s]
    if "beauty" in args.shops and not available_datasets("amazon2018-all-beauty"):
        args.shops.remove("beauty")
    args.models = [m for m in args.models.split(",") if m]
    args.stores = [s for s in args.stores.split(",") if s]
    args.workers = [int(w) for w in args.workers.split(",") if w]
    args.rates = [float(r) for r in args.rates.split(",") if r]
    args.memory = [int(w) for w in args.memory.split(",") if w]
    WORK.mkdir(parents=True, exist_ok=True)
    previous = args.out / "serving.json"
    payload = json.loads(previous.read_text()) if previous.is_file() else {}
    keep = ("matrix", "duration", "soak", "memory", "new_items", "profile", "notes")
    payload = {k: v for k, v in payload.items() if k in keep}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    payload["meta"] = run_meta("serving.py", argv, commit=commit.strip())
    if args.soak:
        payload["soak"] = soak(args)
    elif args.new_items:
        payload["new_items"] = new_items(args)
    elif args.profile:
        payload["profile"] = profile(args)
    elif args.memory:
        payload["memory"] = memory(args)
    else:
        rows = matrix(args)  # replaces the rows of the configurations it ran, keeps the others
        measured = {(r["shop"], r["model"], r["store"], r["workers"]) for r in rows}
        kept = [
            r for r in payload.get("matrix", []) if (r["shop"], r["model"], r["store"], r["workers"]) not in measured
        ]
        rows = kept + rows if payload.get("duration") == args.duration else rows
        order = {"synthetic": 0, "beauty": 1, "sequential": 0, "als": 1, "sqlite": 0, "postgresql": 1}
        payload["matrix"] = sorted(
            rows, key=lambda r: (order[r["shop"]], order[r["model"]], order[r["store"]], r["workers"])
        )
        payload["duration"] = args.duration
    write_results(args.out, "serving", payload, render(payload))
    print(render(payload))


if __name__ == "__main__":
    main()
