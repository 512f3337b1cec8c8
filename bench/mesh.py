#!/usr/bin/env python3
"""Peer-to-peer mesh benchmark of `ocellus serve` (issue #7): throughput of
1, 2 and 4 nodes that share work, and the cost of handing one job to a peer.

Every node is `ocellus serve --workers 1 --roles filter` on this machine;
every node after the first joins the first (the *entry* node) with
`--join`, gossiping every 100 ms (`--gossip-interval 100`) so that the mesh
forms fast. Before measuring, the script polls the entry's
`ocellus status --json` until it lists every other node alive (no fixed
sleeps; --mesh-timeout).

1. Throughput. Clients talk to the entry node only: C client threads (one
   connection each, one request at a time, as bench/load.py drives them)
   send a fixed batch of 1920x1080 JPEGs (bench/load.py's, default 8 x 8 =
   64, blur=5); the entry keeps or hands on each job (`--forwarding auto`,
   the default). Reported per mesh size: images/s over the wall time, the
   ratio to 1 node, p50/p99 latency, where the jobs ran (the `node_id` of
   every RESULT header, checked against each node's own `jobs_done`
   delta) and how many jobs the entry forwarded. `ocellus filter --local`
   on the same files (one process, every core) is timed alongside as the
   machine's ceiling.
2. Forwarding overhead. Two nodes, the entry with `--forwarding always`
   (every job goes to the peer) and the peer with `--forwarding never`; one
   client with a connection to each sends 640x480 JPEGs one at a time,
   each image once through the entry and once straight to the peer (which
   goes first alternates). Overhead per job = the median of the paired
   differences (through the entry - straight), in ms and as a share of the
   job's time; the median latency of each path is shown too.

Checks (a failed one makes the exit status 1): every result is
byte-identical to `ocellus filter --local` on the same file; every request
got exactly one terminal event, and it is a RESULT (after its last request
each client sends STATUS on the same connection and reads up to its answer,
so that a late duplicate of an earlier job's event would be seen); the
RESULT node_ids agree with the nodes' `jobs_done` deltas; in part 2 every
job ran on the peer and the entry counted it as forwarded.

Rounds are interleaved (every mesh size once per round, in a rotating
order) so that a change in machine load hits every configuration alike;
the figures are medians over the rounds. The binary is copied before the
run (a rebuild meanwhile does not mix two builds). Node logs (stderr) go to
bench/out/mesh_logs/; the figures to bench/out/mesh.json.

3. With --detection (instead of 1 and 2): how long an idle mesh of 3 and
   10 nodes (--detect-nodes), gossiping at the default 500 ms, takes to
   notice a node killed with SIGKILL: the time until the entry's status
   lists it not alive (docs/mesh-scale.md uses these figures). With
   --compare PATH, a second binary runs the same meshes in the same
   session, alternating with --bin round by round, and the table gives
   both and their ratio (sealed gossip vs the clear gossip of a build
   from before it, docs/mesh.md).

A binary whose `serve` takes --cluster-secret-file gets one (made with
its `mesh secret --out`) for every node of a mesh; an older one gossips
in the clear as it always did.

    python3 bench/mesh.py [--nodes 1,2,4] [--clients 8] [--images 8]
        [--requests 100] [--rounds 3] [--quick] [--bin PATH] [--data DIR]
    python3 bench/mesh.py --detection [--detect-nodes 3,10] [--rounds 3]
        [--compare PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
LOGS = OUT / "mesh_logs"


def _import(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


proto = _import("python_client", REPO / "examples" / "python_client.py")
# The filter load benchmark's inputs, client driver, reference run and statistics.
load = _import("load", REPO / "bench" / "load.py")
# The face benchmark's node start-up, which keeps the node's stderr in a log.
face_load = _import("face_load", REPO / "bench" / "face_load.py")

TERMINAL = (proto.RESULT, proto.ERROR, proto.BUSY)
EVENT_NAMES = {proto.RESULT: "RESULT", proto.ERROR: "ERROR", proto.BUSY: "BUSY"}
GOSSIP_INTERVAL_MS = 100
SMALL = (640, 480)


# ------------------------------------------------------------------ inputs


def make_small_images(sources: list[Path], count: int) -> list[Path]:
    """`count` distinct 640x480 JPEGs (quality 90): the centre 4:3 of the
    1080p load images, scaled down (Lanczos)."""
    from PIL import Image

    folder = OUT / "mesh_small"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for src in sources[:count]:
        target = folder / f"small_{src.stem}.jpg"
        if not target.is_file():
            with Image.open(src) as im:
                im = im.convert("RGB")
                width = im.height * SMALL[0] // SMALL[1]
                left = (im.width - width) // 2
                im = im.crop((left, 0, left + width, im.height)).resize(SMALL, Image.Resampling.LANCZOS)
                im.save(target, "JPEG", quality=90)
        paths.append(target)
    return paths


def with_sentinels(work: list[list[tuple[str, bytes]]]) -> list[list[tuple[str, bytes | None]]]:
    """Each client's jobs followed by a STATUS request (image None) on the
    same connection: reading up to its answer shows any terminal event that
    arrives late for an earlier request."""
    return [jobs + [(f"status#{c}", None)] for c, jobs in enumerate(work)]


def is_sentinel(name: str) -> bool:
    return name.startswith("status#")


# ------------------------------------------------------------------ client


def make_request(timeout: float):
    """A request function for load.drive: FILTER `image` (or STATUS when it
    is None) with id `request_id`; reads events up to the terminal one for
    that id. Returns the terminal event, its latency and the terminal events
    that arrived for any other id meanwhile (there should be none)."""

    def request(sock, image: bytes | None, ops: str, request_id: int) -> dict:
        sock.settimeout(timeout)
        t0 = time.perf_counter()
        if image is None:
            sock.sendall(proto.encode_frame(proto.STATUS, request_id, {}))
        else:
            header = {"ops": ops, "images": [len(image)]}
            sock.sendall(proto.encode_frame(proto.FILTER, request_id, header, image))
        strays = []
        while True:
            try:
                op, rid, header, payload = proto.read_frame(sock)
            except TimeoutError:
                raise RuntimeError(f"request {request_id}: no terminal event within {timeout:.0f} s") from None
            if op not in TERMINAL:
                continue
            if rid != request_id:
                strays.append({"event": EVENT_NAMES[op], "request_id": rid, "header": header})
                continue
            return {"op": op, "header": header, "payload": payload,
                    "latency": time.perf_counter() - t0, "strays": strays}

    return request


def check_answers(results: dict[str, dict], expected: dict[str, bytes]) -> list[str]:
    """What is wrong with a run's answers: a request without exactly one
    RESULT, a stray terminal event, an image that differs from --local
    (`expected`: request name -> the reference bytes)."""
    problems = []
    for name, want in expected.items():
        got = results.get(name)
        if got is None:
            problems.append(f"{name}: no answer")
        elif got["op"] != proto.RESULT:
            problems.append(f"{name}: {EVENT_NAMES[got['op']]} {got['header']}")
        elif got["payload"] != want:
            problems.append(f"{name}: result differs from ocellus filter --local "
                            f"({len(got['payload'])} bytes, expected {len(want)})")
    for name, got in results.items():
        for stray in got["strays"]:
            problems.append(f"after {name}: extra terminal event {stray}")
        if is_sentinel(name) and got["op"] != proto.RESULT:
            problems.append(f"{name}: STATUS answered {EVENT_NAMES[got['op']]} {got['header']}")
    return problems


# ------------------------------------------------------------------ nodes


def node_status(binary: Path, addr: str) -> dict:
    """`ocellus status --server ADDR --json`."""
    out = subprocess.run([str(binary), "status", "--server", addr, "--json"],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"ocellus status --server {addr} failed: {out.stderr.strip()[-1000:]}")
    return json.loads(out.stdout)


def supports_secret(binary: Path) -> bool:
    """Whether this build of `ocellus serve` takes --cluster-secret-file."""
    out = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True, timeout=60)
    return "--cluster-secret-file" in out.stdout


def make_secret(binary: Path, workdir: Path) -> Path:
    """A new cluster secret file in `workdir`, made by the binary."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "cluster.secret"
    subprocess.run([str(binary), "mesh", "secret", "--out", str(path)], check=True,
                   capture_output=True, timeout=60)
    return path


class Mesh:
    """`len(forwarding)` filter nodes with one worker each; node 0 is the
    entry and every other node joins it. `forwarding[i]` is node i's
    --forwarding mode (None: the node's default)."""

    def __init__(self, binary: Path, forwarding: list[str | None], workdir: Path, logs: Path,
                 mesh_timeout: float, interval_ms: int = GOSSIP_INTERVAL_MS):
        self.binary, self.forwarding, self.workdir, self.logs = binary, forwarding, workdir, logs
        self.mesh_timeout, self.interval_ms = mesh_timeout, interval_ms
        self.procs: list = []
        self.addrs: list[str] = []
        self.ids: list[str] = []
        self.formed_s = 0.0

    def __enter__(self) -> "Mesh":
        self.logs.mkdir(parents=True, exist_ok=True)
        secret = make_secret(self.binary, self.workdir) if supports_secret(self.binary) else None
        try:
            for i, mode in enumerate(self.forwarding):
                cmd = [str(self.binary), "serve", "--listen", "127.0.0.1:0", "--http", "off", "--workers", "1",
                       "--roles", "filter", "--queue-capacity", "4096", "--max-queued-per-client", "4096",
                       "--data-dir", str(self.workdir / f"node{i}"),
                       "--gossip-interval", str(self.interval_ms)]
                if secret:
                    cmd += ["--cluster-secret-file", str(secret)]
                if i > 0:
                    cmd += ["--join", self.addrs[0]]
                if mode:
                    cmd += ["--forwarding", mode]
                proc, addr = face_load.start(cmd, self.logs / f"node{i}.log")
                self.procs.append(proc)
                self.addrs.append(addr)
            self.ids = [node_status(self.binary, a)["node_id"] for a in self.addrs]
            self.formed_s = self.wait_formed()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        for proc in reversed(self.procs):  # the entry last
            load.stop(proc)
        self.procs.clear()

    def wait_formed(self) -> float:
        """Polls the entry's status until it lists every other node alive;
        returns the seconds that took."""
        t0 = time.perf_counter()
        others = set(self.ids[1:])
        while True:
            status = node_status(self.binary, self.addrs[0])
            alive = {p.get("node_id") for p in status.get("peers", []) if p.get("alive")}
            if others <= alive:
                return time.perf_counter() - t0
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    raise RuntimeError(f"node {i} exited with status {proc.returncode} "
                                       f"(log {self.logs / f'node{i}.log'})")
            if time.perf_counter() - t0 > self.mesh_timeout:
                raise RuntimeError(f"the entry's status lists {len(others & alive)} of {len(others)} "
                                   f"other nodes alive after {self.mesh_timeout:.0f} s; peers: "
                                   f"{json.dumps(status.get('peers'))[:2000]}")
            time.sleep(0.05)

    def alive_at_entry(self, node_id: str) -> bool:
        status = node_status(self.binary, self.addrs[0])
        return any(p.get("node_id") == node_id and p.get("alive") for p in status.get("peers", []))

    def counters(self) -> list[dict]:
        """Each node's own jobs_done and jobs_forwarded."""
        return [{k: node_status(self.binary, a).get(k, 0) for k in ("jobs_done", "jobs_forwarded")}
                for a in self.addrs]

    def label(self, node_id: str | None) -> str:
        if node_id in self.ids:
            i = self.ids.index(node_id)
            return "entry" if i == 0 else f"peer{i}"
        return f"unknown node {node_id!r}"


# ------------------------------------------------------------------ experiments


def throughput(binary: Path, size: int, work, expected: dict[str, bytes], ops: str, workdir: Path,
               logs: Path, args) -> dict:
    """The batch through the entry of a `size`-node mesh (default forwarding)."""
    request = make_request(args.request_timeout)
    with Mesh(binary, [None] * size, workdir, logs, args.mesh_timeout) as mesh:
        for addr in mesh.addrs:  # warm-up: one job run on every node
            load.drive(addr, request, [work[0][:1]], ops)
        before = mesh.counters()
        r = load.drive(mesh.addrs[0], request, with_sentinels(work), ops)
        after = mesh.counters()
        results = r["results"]
        jobs = {name: out for name, out in results.items() if not is_sentinel(name)}
        ran_on = Counter(mesh.label(out["header"].get("node_id")) for out in jobs.values())
        done = {mesh.label(node_id): after[i]["jobs_done"] - before[i]["jobs_done"]
                for i, node_id in enumerate(mesh.ids)}
        problems = check_answers(results, expected)
        if dict(ran_on) != {k: v for k, v in done.items() if v}:
            problems.append(f"RESULT node_ids {dict(ran_on)} differ from the jobs_done deltas {done}")
        return {
            "nodes": size,
            "wall": r["wall"],
            "images_per_s": len(expected) / r["wall"],
            "latencies": [out["latency"] for out in jobs.values()],
            "ran_on": dict(ran_on),
            "jobs_done_delta": done,
            "forwarded_by_entry": after[0]["jobs_forwarded"] - before[0]["jobs_forwarded"],
            "formed_s": mesh.formed_s,
            "problems": problems,
        }


def overhead(binary: Path, small: list[tuple[str, bytes]], expected: dict[str, bytes], ops: str,
             round_index: int, workdir: Path, logs: Path, args) -> dict:
    """One round of part 2. One client with a connection to each node sends
    the same image through the entry (forwarded) and straight to the peer,
    one request at a time, alternating which goes first, so that each pair
    of latencies saw the same machine load."""
    request = make_request(args.request_timeout)
    with Mesh(binary, ["always", "never"], workdir, logs, args.mesh_timeout) as mesh:
        for addr in mesh.addrs:  # warm-up
            load.drive(addr, request, [small[:1]], ops)
        paths = {"forwarded": mesh.addrs[0], "direct": mesh.addrs[1]}
        answers: dict[str, dict[str, dict]] = {path: {} for path in paths}
        want: dict[str, bytes] = {}
        before = mesh.counters()
        socks = {path: face_load.connect(addr) for path, addr in paths.items()}
        try:
            for k in range(args.requests):
                name, image = small[k % len(small)]
                want[f"{name}#{k}"] = expected[name]
                order = list(paths) if (k + round_index) % 2 == 0 else list(reversed(paths))
                for path in order:
                    answers[path][f"{name}#{k}"] = request(socks[path], image, ops, k + 1)
            for path, sock in socks.items():  # a late duplicate event would show here
                answers[path][f"status#{path}"] = request(sock, None, ops, args.requests + 1)
        finally:
            for sock in socks.values():
                sock.close()
        after = mesh.counters()
        problems = []
        for path, got in answers.items():
            problems += [f"{path}: {p}" for p in check_answers(got, want)]
            ran_on = Counter(mesh.label(a["header"].get("node_id")) for n, a in got.items() if not is_sentinel(n))
            if set(ran_on) != {"peer1"}:
                problems.append(f"{path}: jobs ran on {dict(ran_on)}, expected all on the peer")
        forwarded = after[0]["jobs_forwarded"] - before[0]["jobs_forwarded"]
        done = [a["jobs_done"] - b["jobs_done"] for a, b in zip(after, before)]
        if forwarded != args.requests or done != [0, 2 * args.requests]:
            problems.append(f"the entry forwarded {forwarded} jobs and the nodes' jobs_done grew by {done}; "
                            f"expected {args.requests} and [0, {2 * args.requests}]")
        latency = {path: [got[name]["latency"] for name in want] for path, got in answers.items()}
        return {
            "forwarded": latency["forwarded"],
            "direct": latency["direct"],
            "paired_extra": [f - d for f, d in zip(latency["forwarded"], latency["direct"])],
            "peer_mean_job_s": node_status(binary, mesh.addrs[1]).get("mean_job_s"),
            "formed_s": mesh.formed_s,
            "problems": problems,
        }


def detection(binary: Path, size: int, interval_ms: int, settle_s: float, workdir: Path, logs: Path,
              args) -> float:
    """Seconds from SIGKILL of the last node of an idle `size`-node mesh
    (gossip every `interval_ms`, running `settle_s` first so that the
    failure detector has samples) until the entry's status shows it not
    alive (polled every 20 ms)."""
    with Mesh(binary, [None] * size, workdir, logs, args.mesh_timeout, interval_ms) as mesh:
        time.sleep(settle_s)  # the detector's history, not a wait for an event
        victim, victim_id = mesh.procs[-1], mesh.ids[-1]
        if not mesh.alive_at_entry(victim_id):
            raise RuntimeError(f"node {victim_id} is not alive at the entry before the kill")
        t0 = time.perf_counter()
        victim.kill()
        victim.wait()
        while mesh.alive_at_entry(victim_id):
            if time.perf_counter() - t0 > 120:
                raise RuntimeError(f"the entry still lists {victim_id} alive 120 s after it was killed")
            time.sleep(0.02)
        return time.perf_counter() - t0


def main_detection(binary: Path, args) -> int:
    """--detection: the failure detector's reaction time (docs/mesh-scale.md),
    of --bin and, with --compare, of a second binary in the same session."""
    sizes = [int(n) for n in args.detect_nodes.split(",")]
    with tempfile.TemporaryDirectory(prefix="ocellus-mesh-") as tmp:
        # Copies: a rebuild meanwhile does not matter.
        binaries = {"bin": Path(shutil.copy2(binary, Path(tmp) / "ocellus"))}
        if args.compare:
            binaries["compare"] = Path(shutil.copy2(args.compare, Path(tmp) / "ocellus-compare"))
        sealed = {label: supports_secret(b) for label, b in binaries.items()}
        times: dict[tuple[str, int], list[float]] = {(l, n): [] for l in binaries for n in sizes}
        for r in range(args.rounds):
            for size in sizes:
                # Alternate which binary goes first, so that neither always
                # runs on a machine the other just loaded.
                order = list(binaries) if r % 2 == 0 else list(reversed(binaries))
                for label in order:
                    t = detection(binaries[label], size, args.detect_interval, args.detect_settle,
                                  Path(tmp) / f"{label}-d{r}-n{size}", LOGS / f"{label}-d{r}-n{size}", args)
                    times[(label, size)].append(t)
                    print(f"round {r + 1}/{args.rounds}: {label} ({'sealed' if sealed[label] else 'clear'} "
                          f"gossip): {size} nodes: dead after {t:.2f} s", file=sys.stderr)
    print(f"\nFailure detection: idle mesh, gossip every {args.detect_interval} ms, {args.detect_settle:.0f} s "
          f"after start, SIGKILL of one node; time until the entry's status shows it not alive; median of "
          f"{args.rounds}\n")
    for label, b in binaries.items():
        source = binary if label == "bin" else args.compare
        print(f"- {label}: {source} ({'sealed' if sealed[label] else 'clear'} gossip)")
    print()
    if "compare" in binaries:
        print("| nodes | bin s | compare s | bin / compare | bin per run s | compare per run s |")
        print("|---:|---:|---:|---:|---|---|")
        for size in sizes:
            a, b = times[("bin", size)], times[("compare", size)]
            ma, mb = statistics.median(a), statistics.median(b)
            print(f"| {size} | {ma:.2f} | {mb:.2f} | {ma / mb:.2f} | {[round(t, 2) for t in a]} | "
                  f"{[round(t, 2) for t in b]} |")
    else:
        print("| nodes | seconds | gossip rounds | per run s |")
        print("|---:|---:|---:|---|")
        for size in sizes:
            ts = times[("bin", size)]
            med = statistics.median(ts)
            print(f"| {size} | {med:.2f} | {med * 1000 / args.detect_interval:.1f} | {[round(t, 2) for t in ts]} |")
    return 0


# ------------------------------------------------------------------ main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", default="1,2,4", help="mesh sizes, comma-separated (the first is the 'vs' base)")
    p.add_argument("--clients", type=int, default=8, help="client connections to the entry (part 1)")
    p.add_argument("--images", type=int, default=8, help="1080p images per client (part 1)")
    p.add_argument("--requests", type=int, default=100, help="640x480 requests per path per round (part 2)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ops", default="blur=5")
    p.add_argument("--quick", action="store_true", help="4 clients x 2 images, 20 requests per path, 1 round")
    p.add_argument("--mesh-timeout", type=float, default=30.0, help="seconds to wait for the mesh to form")
    p.add_argument("--request-timeout", type=float, default=120.0, help="seconds to wait for a terminal event")
    p.add_argument("--bin", default=os.environ.get("OCELLUS_BIN", REPO / "target" / "release" / "ocellus"))
    p.add_argument("--data", default=os.environ.get("OCELLUS_TEST_DATA", REPO.parent / "shared" / "data"))
    p.add_argument("--json", default=OUT / "mesh.json", help="where to write the figures")
    p.add_argument("--detection", action="store_true",
                   help="instead: time to notice a killed node (idle mesh of --detect-nodes sizes)")
    p.add_argument("--detect-nodes", default="3,10")
    p.add_argument("--detect-interval", type=int, default=500, help="gossip interval, ms (the node's default)")
    p.add_argument("--compare", default=None, metavar="PATH",
                   help="--detection: a second binary to measure in the same session (e.g. a build of main)")
    p.add_argument("--detect-settle", type=float, default=10.0, help="seconds the mesh runs before the kill")
    args = p.parse_args()
    if args.quick:
        args.clients, args.images, args.requests, args.rounds = 4, 2, 20, 1
    sizes = [int(n) for n in args.nodes.split(",")]
    binary = Path(args.bin)
    if not binary.is_file():
        sys.exit(f"{binary} not found: cargo build --release -p ocellus (or --bin / OCELLUS_BIN)")
    if args.detection:
        return main_detection(binary, args)

    files = load.make_images(args.clients * args.images, Path(args.data))
    images = {f.stem: f.read_bytes() for f in files}
    work = [[(f.stem, images[f.stem]) for f in files[c * args.images:(c + 1) * args.images]]
            for c in range(args.clients)]
    small_files = make_small_images(files if len(files) >= 16 else load.make_images(16, Path(args.data)), 16)
    small = [(f.stem, f.read_bytes()) for f in small_files]
    n = len(files)

    load_before = os.getloadavg()
    runs: dict[int, list[dict]] = {size: [] for size in sizes}
    local_runs: list[dict] = []
    over_runs: list[dict] = []
    problems: list[str] = []
    shutil.rmtree(LOGS, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="ocellus-mesh-") as tmp:
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(binary.stat().st_mtime))
        binary = Path(shutil.copy2(binary, Path(tmp) / "ocellus"))
        bin_sha = hashlib.sha256(binary.read_bytes()).hexdigest()
        print(f"binary {args.bin} (modified {built}, sha256 {bin_sha[:16]}...)", file=sys.stderr)
        expected = load.run_local(binary, files, args.ops)["results"]
        expected_small = load.run_local(binary, small_files, args.ops)["results"]
        try:
            for r in range(args.rounds):
                order = sizes[r % len(sizes):] + sizes[:r % len(sizes)]
                for size in order:
                    print(f"round {r + 1}/{args.rounds}: {size} node(s) ...", file=sys.stderr)
                    work_dir = Path(tmp) / f"r{r}-n{size}"
                    res = throughput(binary, size, work, expected, args.ops, work_dir,
                                     LOGS / f"r{r}-n{size}", args)
                    runs[size].append(res)
                    problems += [f"round {r + 1}, {size} node(s): {x}" for x in res["problems"]]
                    print(f"  {res['images_per_s']:.1f} images/s; ran on {res['ran_on']}; "
                          f"mesh formed in {res['formed_s']:.2f} s", file=sys.stderr)
                local_runs.append(load.run_local(binary, files, args.ops))
                print(f"round {r + 1}/{args.rounds}: forwarding overhead ...", file=sys.stderr)
                over = overhead(binary, small, expected_small, args.ops, r, Path(tmp) / f"r{r}-fwd",
                                LOGS / f"r{r}-fwd", args)
                over_runs.append(over)
                problems += [f"round {r + 1}, overhead: {x}" for x in over["problems"]]
        except Exception as e:  # a node that misbehaves: say what happened, keep the logs
            print(f"\nFAILED: {type(e).__name__}: {e}\nnode logs: {LOGS}", file=sys.stderr)
            return 1
    load_after = os.getloadavg()

    def ms_at(values, q):
        return load.percentile(values, q) * 1e3

    base = statistics.median(r["images_per_s"] for r in runs[sizes[0]])
    rows = []
    for size in sizes:
        rs = runs[size]
        ips = statistics.median(r["images_per_s"] for r in rs)
        totals: Counter = Counter()
        for r in rs:
            totals.update(r["ran_on"])
        rows.append({
            "nodes": size,
            "images_per_s": ips,
            "wall_s": statistics.median(r["wall"] for r in rs),
            "vs_first": ips / base,
            "p50_ms": statistics.median(ms_at(r["latencies"], 50) for r in rs),
            "p99_ms": statistics.median(ms_at(r["latencies"], 99) for r in rs),
            "ran_on_total": dict(sorted(totals.items())),
            "forwarded_total": sum(r["forwarded_by_entry"] for r in rs),
            "formed_s": statistics.median(r["formed_s"] for r in rs),
            "rounds_images_per_s": [round(r["images_per_s"], 1) for r in rs],
        })
    local_ips = statistics.median(n / r["wall"] for r in local_runs)

    print(f"\n`{args.ops}` on {n} 1920x1080 JPEGs sent to the entry node; {args.clients} clients x "
          f"{args.images} images; nodes `--workers 1 --roles filter`, gossip every {GOSSIP_INTERVAL_MS} ms, "
          f"default forwarding; median of {args.rounds} round(s); {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print(f"| nodes | images/s | wall s | vs {sizes[0]} node(s) | p50 ms | p99 ms | jobs ran on (all rounds) "
          "| forwarded by entry | mesh formed s | images/s per round |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for row in rows:
        ran = ", ".join(f"{k} {v}" for k, v in row["ran_on_total"].items())
        print(f"| {row['nodes']} | {row['images_per_s']:.1f} | {row['wall_s']:.2f} | {row['vs_first']:.2f}x | "
              f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {ran} | {row['forwarded_total']} | "
              f"{row['formed_s']:.2f} | {row['rounds_images_per_s']} |")
    print(f"| `ocellus filter --local` (one process, {os.cpu_count()} threads) | {local_ips:.1f} | "
          f"{statistics.median(r['wall'] for r in local_runs):.2f} | {local_ips / base:.2f}x | - | - | - | - | - | "
          f"{[round(n / r['wall'], 1) for r in local_runs]} |")

    per_path = {}
    for path in ("forwarded", "direct"):
        per_path[path] = {
            "p50_ms": statistics.median(ms_at(o[path], 50) for o in over_runs),
            "p90_ms": statistics.median(ms_at(o[path], 90) for o in over_runs),
            "rounds_p50_ms": [round(ms_at(o[path], 50), 2) for o in over_runs],
        }
    # Per round, the median of the paired differences; then the median over rounds.
    extra_rounds = [statistics.median(o["paired_extra"]) * 1e3 for o in over_runs]
    extra_ms = statistics.median(extra_rounds)
    direct_ms = per_path["direct"]["p50_ms"]
    mean_job = [o["peer_mean_job_s"] for o in over_runs if o.get("peer_mean_job_s")]
    mean_job_ms = statistics.median(mean_job) * 1e3 if mean_job else None
    print(f"\nForwarding overhead: 2 nodes, entry `--forwarding always`, peer `--forwarding never`; `{args.ops}` on "
          f"{SMALL[0]}x{SMALL[1]} JPEGs ({len(small)} distinct); one client, one request at a time, alternately "
          f"through the entry and straight to the peer, {args.requests} pairs per round; median of "
          f"{args.rounds} round(s)\n")
    print("| path | p50 ms | p90 ms | p50 per round |")
    print("|---|---:|---:|---|")
    labels = {"forwarded": "through the entry (forwarded to the peer)", "direct": "straight to the peer"}
    for path, label in labels.items():
        v = per_path[path]
        print(f"| {label} | {v['p50_ms']:.2f} | {v['p90_ms']:.2f} | {v['rounds_p50_ms']} |")
    share = f"{extra_ms / direct_ms * 100:.0f}% of the direct p50"
    if mean_job_ms:
        share += f", {extra_ms / mean_job_ms * 100:.0f}% of the peer's mean job time ({mean_job_ms:.2f} ms)"
    print(f"\nforwarding overhead per job (median of the paired differences): {extra_ms:.2f} ms ({share}); "
          f"per round {[round(x, 2) for x in extra_rounds]} ms")
    print(f"results identical to `ocellus filter --local`, exactly one RESULT per request, RESULT node_ids "
          f"= jobs_done deltas: {'yes' if not problems else 'NO'}")
    for line in problems[:20]:
        print(f"  {line}")
    if len(problems) > 20:
        print(f"  ... and {len(problems) - 20} more")

    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({
        "ops": args.ops, "clients": args.clients, "images_per_client": args.images, "rounds": args.rounds,
        "requests_per_path": args.requests, "gossip_interval_ms": GOSSIP_INTERVAL_MS,
        "binary": {"path": str(args.bin), "modified": built, "sha256": bin_sha},
        "load_before": load_before, "load_after": load_after,
        "throughput": rows, "local_images_per_s": local_ips,
        "overhead": {"paths": per_path, "extra_ms": extra_ms, "extra_ms_per_round": extra_rounds,
                     "direct_p50_ms": direct_ms, "peer_mean_job_ms": mean_job_ms},
        "problems": problems,
    }, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
