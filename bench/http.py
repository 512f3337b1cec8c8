#!/usr/bin/env python3
"""HTTP benchmark of `ocellus serve`: its HTTP API against its TCP protocol,
and against thumbor (the peer: the open-source imaging service by globo.com).

One invocation, one node, the same files, the same clients, passes
interleaved (each pass sends every image once; the order of the systems
rotates from pass to pass, so that a change in machine load hits all alike):

* ocellus over TCP: `FILTER` frames of the wire protocol (docs/PROTOCOL.md),
  one connection per client thread, one request at a time;
* ocellus over HTTP: `POST /v1/filter?ops=blur=5&format=jpeg`, the JPEG as
  the raw body, the answer is the image; one kept-alive `http.client`
  connection per client thread;
* thumbor, one process (its default) and `--processes` = CPUs (the one we
  compare against: ours uses every core too): `GET /unsafe/filters:blur(R,S):
  format(jpeg)/FILE` with its file loader reading the same files from disk
  (ours receives the bytes in the request body: thumbor's requests are tiny,
  ours carry the ~0.5 MB image), no storage and no result storage (nothing
  cached), JPEG quality 90 baseline like ours.

Per system: images/s (median over the passes of images / wall time of the
pass), p50/p99 latency per request (send to last byte of the answer, over all
passes), and the ratios: HTTP/TCP images/s (target >= 0.95), the latency HTTP
adds per request at the median (HTTP p50 - TCP p50), ours / thumbor. Checks
that HTTP and TCP answer the same bytes, and compares the two blurs on one
image (PNG out, against an exact float Gaussian).

    python3 bench/http.py --bin target/release/ocellus [--images 64] [--clients 8] \\
        [--passes 3] [--skip-thumbor] [--json OUT]

Inputs: 1920x1080 JPEGs made once from ../shared/data/photos by
bench/load.py's make_images (cached in bench/out/load_images, git-ignored).

thumbor is not a dependency of the project; this is how the run installed it
(in a venv of its own, found with --thumbor or $THUMBOR, default
/tmp/thumbor-venv/bin/thumbor, else `thumbor` on PATH):

    python3 -m venv /tmp/thumbor-venv && /tmp/thumbor-venv/bin/pip install 'thumbor==7.*'

(7.8.0 at the time of writing.)
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py and Python puts its folder first on the import
# path: without this, `import http.client` below would import this file.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import http.client  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import queue  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

REPO = _HERE.parent
OUT = REPO / "bench" / "out"

_spec = importlib.util.spec_from_file_location("ocellus_bench_load", REPO / "bench" / "load.py")
load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load)
proto = load.proto  # examples/python_client.py

START_TIMEOUT = 60.0
QUALITY = 90  # ours when a request names none (crates/node/src/request/filter.rs); thumbor is set to it


# ------------------------------------------------------------------ machine


def machine() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "mem_gib": mem_gib, "kernel": platform.release(),
            "python": platform.python_version()}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


# ------------------------------------------------------------------ servers


def start_ocellus(binary: Path, data_dir: str, log) -> tuple[subprocess.Popen, str, str]:
    """Starts `ocellus serve` with TCP and HTTP on free loopback ports;
    returns it, the TCP address and the HTTP address (host:port). Its first
    stdout line is `listening on ADDR`, a later one `http on http://ADDR`."""
    cmd = [str(binary), "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir", data_dir,
           "--roles", "filter"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def reader():  # keeps draining stdout so that the node never blocks on it
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    tcp = web = None
    deadline = time.monotonic() + START_TIMEOUT
    while tcp is None or web is None:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            load.stop(proc)
            log.flush()
            sys.exit(f"{shlex.join(cmd)}: no `listening on` and `http on` lines within {START_TIMEOUT:.0f} s; "
                     f"its stderr:\n{tail(log.name)}")
        line = line.strip()
        if line.startswith("listening on "):
            tcp = line.split()[-1]
        elif line.startswith("http on "):
            web = urllib.parse.urlsplit(line.split()[-1]).netloc
    return proc, tcp, web


def tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def thumbor_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    words = (out.stdout or out.stderr).split()  # "Thumbor v7.8.0 (date)"
    return next((w[1:] for w in words if w[:2] == "v7" or (w[:1] == "v" and w[1:2].isdigit())), "?")


def start_thumbor(exe: str, root: Path, processes: int, folder: Path, quality: int,
                  tag: str) -> tuple[subprocess.Popen, str]:
    """Starts thumbor on a free loopback port in a process group of its own
    (with --processes > 1 its parent only forks and waits); returns it and
    host:port once /healthcheck answers."""
    conf = folder / f"thumbor-{tag}.conf"
    conf.write_text("\n".join([
        "LOADER = 'thumbor.loaders.file_loader'",
        f"FILE_LOADER_ROOT_PATH = {str(root)!r}",
        "STORAGE = 'thumbor.storages.no_storage'",  # originals are read from disk on every request
        "RESULT_STORAGE = None",  # and every result is computed
        "ALLOW_UNSAFE_URL = True",
        f"QUALITY = {quality}",
        "PROGRESSIVE_JPEG = False",  # ours writes baseline JPEG
        "AUTO_WEBP = False",
        "RESPECT_ORIENTATION = False",
        "MAX_WAIT_SECONDS_BEFORE_SERVER_SHUTDOWN = 0",
        "MAX_WAIT_SECONDS_BEFORE_IO_SHUTDOWN = 0",
        "",
    ]))
    port = free_port()
    cmd = [exe, "-c", str(conf), "-i", "127.0.0.1", "-p", str(port), "-l", "error", "--processes", str(processes)]
    log = open(folder / f"thumbor-{tag}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
    addr = f"127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            sys.exit(f"thumbor exited ({proc.returncode}):\n{tail(log.name)}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthcheck")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, addr
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_group(proc)
            sys.exit(f"thumbor did not answer /healthcheck within {START_TIMEOUT:.0f} s:\n{tail(log.name)}")
        time.sleep(0.2)


def connections_per_process(pgid: int, port: int) -> list[int]:
    """How many established connections to `port` each process of group
    `pgid` holds (the pre-forked thumbor's children), most first; looks a
    moment after the clients connected, once the servers accepted."""
    time.sleep(0.3)
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port:  # ESTABLISHED, local port
                inodes.add(f[9])
    counts = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == pgid:
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[2]) != pgid:
                continue
            fds = os.listdir(f"/proc/{d}/fd")
            held = sum(1 for fd in fds if os.readlink(f"/proc/{d}/fd/{fd}")[8:-1] in inodes)
        except OSError:
            continue
        counts.append(held)
    return sorted(counts, reverse=True)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group this script started thumbor in."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ------------------------------------------------------------------ clients


class _NotingSend:
    """A socket that notes when its last sendall returned (the request is
    then all in the kernel: what follows is the server's time and the
    answer's transfer)."""

    def __init__(self, sock: socket.socket):
        self.sock, self.sent = sock, 0.0

    def sendall(self, data) -> None:
        self.sock.sendall(data)
        self.sent = time.perf_counter()

    def recv(self, n: int) -> bytes:
        return self.sock.recv(n)


class TcpClient:
    """One connection of the wire protocol; FILTER requests one at a time
    (bench/load.py's ocellus_request). `sent`: when the last request was
    all sent."""

    def __init__(self, addr: str, ops: str):
        sock = proto.connect(addr, 600)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = _NotingSend(sock)
        self.ops, self.n, self.connections = ops, 0, 1

    @property
    def sent(self) -> float:
        return self.sock.sent

    def __call__(self, name: str, image: bytes) -> bytes:
        self.n += 1
        return load.ocellus_request(self.sock, image, self.ops, self.n)

    def close(self):
        self.sock.sock.close()


class HttpClient:
    """One kept-alive HTTP/1.1 connection (http.client sets TCP_NODELAY);
    `target(name)` gives the request target, `post` says whether the image
    goes in the body. Counts connections: more than one means the server
    closed a connection."""

    def __init__(self, addr: str, target, post: bool):
        host, _, port = addr.rpartition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)
        self.conn.connect()
        self.target, self.post, self.connections, self.sent = target, post, 1, 0.0

    def __call__(self, name: str, image: bytes) -> bytes:
        if self.conn.sock is None:
            self.connections += 1
        if self.post:
            self.conn.request("POST", self.target(name), body=image, headers={"Content-Type": "image/jpeg"})
        else:
            self.conn.request("GET", self.target(name))
        self.sent = time.perf_counter()
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"{self.target(name)} answered {r.status}: {body[:300]!r}")
        return body

    def close(self):
        self.conn.close()


def cpu_ticks(groups: set[int]) -> tuple[int, int]:
    """(ticks the whole machine spent busy, ticks spent by the processes of
    `groups`, the process groups of this script and of its servers)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # less idle and iowait
    ours = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        if int(f[2]) in groups:  # pgrp
            ours += int(f[11]) + int(f[12])  # utime + stime
    return busy, ours


def run_pass(make_client, work: list[list[tuple[str, bytes]]], groups: set[int] = frozenset(),
             inspect=None) -> dict:
    """One thread per client list: connects (`make_client(index)`), waits for
    all, then sends its images one after the other. Returns wall time,
    latencies, answers, connections made, the share of the machine's CPU
    that processes outside `groups` took meanwhile, and what `inspect()`
    (called once all clients have connected) says."""
    barrier = threading.Barrier(len(work) + 1)
    latencies: list[float] = []
    sending: list[float] = []  # of each latency, the part until the request was all sent
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []
    connections = []
    lock = threading.Lock()

    def client(index, jobs):
        c = None
        try:
            c = make_client(index)
            barrier.wait()
            for name, image in jobs:
                t = time.perf_counter()
                out = c(name, image)
                dt = time.perf_counter() - t
                with lock:
                    latencies.append(dt)
                    sending.append(c.sent - t)
                    results[name] = out
        except BaseException as e:  # reported after the pass
            errors.append(e)
            barrier.abort()
        finally:
            if c is not None:
                connections.append(c.connections)
                c.close()

    threads = [threading.Thread(target=client, args=(i, jobs)) for i, jobs in enumerate(work)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    busy0, ours0 = cpu_ticks(groups) if groups else (0, 0)
    seen = inspect() if inspect else None
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    busy1, ours1 = cpu_ticks(groups) if groups else (0, 0)
    if errors:
        raise errors[0]
    ticks = wall * os.sysconf("SC_CLK_TCK") * os.cpu_count()
    other = max(0, (busy1 - busy0) - (ours1 - ours0)) / ticks if groups else None
    return {"wall": wall, "latencies": latencies, "sending": sending, "results": results,
            "connections": sum(connections),
            "cpu_other": other, "inspect": seen}


# ------------------------------------------------------------------ blur


def taps_for(sigma: float) -> int:
    """Our kernel size (crates/imaging/src/filter/gaussian.rs): round(6 sigma + 1), made odd."""
    return int(math.floor(sigma * 6 + 1 + 0.5)) | 1


def compare_blurs(original: bytes, ours_png: bytes, thumbor_png: bytes | None, sigma: float, radius: int) -> dict:
    """Both outputs (PNG, no JPEG loss) against the exact Gaussian (float64,
    the same 2r+1 normalised taps, borders reflected as OpenCV's
    BORDER_REFLECT_101) of the decoded input; interior = pixels at least r
    from every edge."""
    import numpy as np
    from PIL import Image

    src = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), dtype=np.float64)
    x = np.arange(-radius, radius + 1)
    k = np.exp(-(x * x) / (2 * sigma * sigma))
    k /= k.sum()

    def conv(a, axis):
        pad = [(0, 0)] * a.ndim
        pad[axis] = (radius, radius)
        p = np.pad(a, pad, mode="reflect")  # numpy's "reflect" is BORDER_REFLECT_101
        out = np.zeros_like(a)
        n = a.shape[axis]
        for i, w in enumerate(k):
            out += w * np.take(p, range(i, i + n), axis=axis)
        return out

    exact = conv(conv(src, 0), 1)
    h, w = exact.shape[:2]
    interior = np.zeros((h, w), dtype=bool)
    interior[radius:h - radius, radius:w - radius] = True

    def stats(png: bytes) -> dict:
        got = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
        if got.shape != exact.shape:
            return {"shape": list(got.shape)}
        d = got - exact
        out = {}
        for region, mask in (("interior", interior), ("border", ~interior)):
            r = d[mask]
            out[region] = {"mean": float(r.mean()), "mean_abs": float(np.abs(r).mean()),
                           "max_abs": float(np.abs(r).max()),
                           "within_1": float((np.abs(r) <= 1.0).mean())}
        return out

    res = {"ours": stats(ours_png)}
    if thumbor_png is not None:
        res["thumbor"] = stats(thumbor_png)
        a = np.asarray(Image.open(io.BytesIO(ours_png)).convert("RGB"), dtype=np.int16)
        b = np.asarray(Image.open(io.BytesIO(thumbor_png)).convert("RGB"), dtype=np.int16)
        if a.shape == b.shape:
            dd = np.abs(a - b)
            res["ours_vs_thumbor"] = {"interior_mean_abs": float(dd[interior].mean()),
                                      "border_mean_abs": float(dd[~interior].mean()),
                                      "max_abs": int(dd.max())}
    return res


def one(make_client, name: str, image: bytes) -> bytes:
    c = make_client(0)
    try:
        return c(name, image)
    finally:
        c.close()


# ------------------------------------------------------------------ main


def summary(passes: list[dict]) -> dict:
    lat = [x for p in passes for x in p["latencies"]]
    rates = [len(p["latencies"]) / p["wall"] for p in passes]
    return {
        "images_per_s": statistics.median(rates),
        "passes_images_per_s": [round(r, 2) for r in rates],
        "p50_ms": load.percentile(lat, 50) * 1e3,
        "p99_ms": load.percentile(lat, 99) * 1e3,
        "mean_ms": statistics.fmean(lat) * 1e3,
        "send_p50_ms": statistics.median(x for p in passes for x in p["sending"]) * 1e3,
        "after_send_p50_ms": statistics.median(
            a - b for p in passes for a, b in zip(p["latencies"], p["sending"])) * 1e3,
        "requests": len(lat),
        "connections": sum(p["connections"] for p in passes),
        "mean_out_kb": statistics.fmean(len(v) for v in passes[0]["results"].values()) / 1024,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=os.environ.get("OCELLUS_BIN", REPO / "target" / "release" / "ocellus"))
    p.add_argument("--images", type=int, default=64, help="distinct 1080p JPEGs, each sent once a pass")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--passes", type=int, default=3, help="timed passes per system (after one warm-up round)")
    p.add_argument("--sigma", type=float, default=5.0, help="blur: ours blur=SIGMA, thumbor blur(R,SIGMA)")
    p.add_argument("--serial", type=int, default=16,
                   help="also send this many images from one client alone, per pass (0: not)")
    p.add_argument("--skip-thumbor", action="store_true")
    p.add_argument("--thumbor", default=os.environ.get("THUMBOR"), help="thumbor executable")
    p.add_argument("--thumbor-processes", type=int, default=os.cpu_count(),
                   help="processes of the second thumbor (default: the CPU count)")
    p.add_argument("--no-thumbor-spread", action="store_true",
                   help="skip the run of N single-process thumbors with the clients spread evenly")
    p.add_argument("--data", default=os.environ.get("OCELLUS_TEST_DATA", REPO.parent / "shared" / "data"))
    p.add_argument("--json", help="also write the results as JSON here")
    args = p.parse_args()
    binary = Path(args.bin)
    if not binary.is_file():
        sys.exit(f"{binary} not found: cargo build --release -p ocellus (or --bin / OCELLUS_BIN)")
    thumbor = None
    if not args.skip_thumbor:
        thumbor = args.thumbor or ("/tmp/thumbor-venv/bin/thumbor" if Path("/tmp/thumbor-venv/bin/thumbor").is_file()
                                   else shutil.which("thumbor"))
        if not thumbor:
            sys.exit("thumbor not found: see the docstring for the install command, or --thumbor / --skip-thumbor")

    files = load.make_images(args.images, Path(args.data))
    root = files[0].parent
    images = [(f.name, f.read_bytes()) for f in files]
    work = [images[c::args.clients] for c in range(args.clients)]
    warm = [[images[c % len(images)]] for c in range(args.clients)]
    n = len(images)
    radius = taps_for(args.sigma) // 2
    ops = f"blur={args.sigma:g}"
    query = urllib.parse.urlencode({"ops": ops, "format": "jpeg"})
    thumbor_filters = f"filters:blur({radius},{args.sigma:g}):format(jpeg)"

    tmp = tempfile.TemporaryDirectory(prefix="ocellus-http-bench-")
    folder = Path(tmp.name)
    node_log = open(folder / "ocellus.log", "w")
    started: list[tuple[str, subprocess.Popen]] = []
    info = machine()
    tversion = thumbor_version(thumbor) if thumbor else None
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {}
    checks: dict = {}
    thumbor_addrs: list[str] = []
    try:
        proc, tcp_addr, http_addr = start_ocellus(binary, str(folder / "data"), node_log)
        started.append(("ocellus", proc))
        systems = {
            "tcp": lambda i: TcpClient(tcp_addr, ops),
            "http": lambda i: HttpClient(http_addr, lambda name: f"/v1/filter?{query}", post=True),
        }
        labels = {"tcp": "ocellus serve, TCP protocol (FILTER frames)",
                  "http": "ocellus serve, HTTP `POST /v1/filter` (image in the body)"}
        inspects = {}
        if thumbor:
            def thumbor_client(addrs):
                # client i talks to instance i % len(addrs)
                return lambda i: HttpClient(addrs[i % len(addrs)],
                                            lambda name: f"/unsafe/{thumbor_filters}/{urllib.parse.quote(name)}",
                                            post=False)

            k = args.thumbor_processes
            singles = []  # thumbor's default: one process
            for j in range(k if k > 1 and not args.no_thumbor_spread else 1):
                tproc, taddr = start_thumbor(thumbor, root, 1, folder, QUALITY, tag=f"1p-{j}")
                started.append(("thumbor", tproc))
                singles.append(taddr)
                thumbor_addrs.append(taddr)
            systems["thumbor_1"] = thumbor_client(singles[:1])
            labels["thumbor_1"] = f"thumbor {tversion}, 1 process (its default)"
            if k > 1:
                tproc, taddr = start_thumbor(thumbor, root, k, folder, QUALITY, tag=f"{k}p")
                started.append(("thumbor", tproc))
                systems[f"thumbor_p{k}"] = thumbor_client([taddr])
                labels[f"thumbor_p{k}"] = f"thumbor {tversion}, `--processes {k}` (one port, pre-forked)"
                inspects[f"thumbor_p{k}"] = (lambda pg, port: lambda: connections_per_process(pg, port))(
                    tproc.pid, int(taddr.rpartition(":")[2]))
                if len(singles) > 1:
                    systems[f"thumbor_x{k}"] = thumbor_client(singles)
                    labels[f"thumbor_x{k}"] = (f"thumbor {tversion}, {k} instances of 1 process, "
                                               f"clients spread evenly (client i to instance i mod {k})")
        groups = {os.getpgrp()} | {proc.pid for label, proc in started if label == "thumbor"}
        plan = {key: work for key in systems}
        if args.serial:  # one client alone: the latency without queueing
            for key in ("tcp", "http"):
                systems[f"{key}_serial"] = systems[key]
                labels[f"{key}_serial"] = labels[key] + ", 1 client alone"
                plan[f"{key}_serial"] = [images[:args.serial]]
        order = list(systems)
        for key in order:  # warm-up: one request per client, connections made, pools started
            print(f"warm-up {key} ...", file=sys.stderr)
            run_pass(systems[key], warm[:len(plan[key])])
            runs[key] = []
        for i in range(args.passes):
            turn = order[i % len(order):] + order[:i % len(order)]
            for key in turn:
                print(f"pass {i + 1}/{args.passes}: {key} ...", file=sys.stderr)
                r = run_pass(systems[key], plan[key], groups, inspects.get(key))
                if runs[key]:
                    r["results"] = None  # the first pass's answers are the ones checked
                runs[key].append(r)
        load_after = os.getloadavg()

        # HTTP and TCP run the same pipeline: the answers must be the same bytes.
        tcp_res, http_res = runs["tcp"][0]["results"], runs["http"][0]["results"]
        checks["http_equals_tcp"] = [k for k in tcp_res if tcp_res[k] != http_res.get(k)]
        # The blurs side by side on one image, as PNG (no JPEG loss).
        name, image = images[0]
        png_query = urllib.parse.urlencode({"ops": ops, "format": "png"})
        tf = f"filters:blur({radius},{args.sigma:g}):format(png)"
        try:
            ours_png = one(lambda i: HttpClient(http_addr, lambda _n: f"/v1/filter?{png_query}", post=True),
                           name, image)
            thumbor_png = one(lambda i: HttpClient(thumbor_addrs[0], lambda nm: f"/unsafe/{tf}/{urllib.parse.quote(nm)}",
                                                   post=False), name, image) if thumbor_addrs else None
            checks["blur"] = compare_blurs(image, ours_png, thumbor_png, args.sigma, radius)
        except (ImportError, RuntimeError, OSError) as e:
            checks["blur"] = {"skipped": str(e)}
    finally:
        for label, proc in reversed(started):
            if label.startswith("thumbor"):
                stop_group(proc)
            else:
                load.stop(proc)  # SIGTERM, then wait
        node_log.close()
        tmp.cleanup()
    return report(args, info, tversion, runs, labels, checks, n, radius, ops, thumbor_filters,
                  load_before, load_after)


def ocellus_version(binary: Path) -> str:
    try:
        return subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def report(args, info, tversion, runs, labels, checks, n, radius, ops, thumbor_filters, load_before, load_after):
    s = {k: summary(v) for k, v in runs.items()}
    tcp, web = s["tcp"], s["http"]
    ratio = web["images_per_s"] / tcp["images_per_s"]
    added_p50 = web["p50_ms"] - tcp["p50_ms"]
    added_p99 = web["p99_ms"] - tcp["p99_ms"]
    in_kb = statistics.fmean(f.stat().st_size for f in load.make_images(n, Path(args.data))) / 1024
    command = shlex.join(["python3", os.path.relpath(__file__, Path.cwd()), *sys.argv[1:]])
    version = ocellus_version(Path(args.bin))
    print(f"\n### HTTP API: `{ops}` on {n} 1920x1080 JPEGs, {args.clients} clients\n")
    print(f"- machine: {info['cpu']}, {info['cpus']} CPUs, {info['mem_gib']:.0f} GiB; Linux {info['kernel']}; "
          f"Python {info['python']}")
    print(f"- command: `{command}`")
    print(f"- ocellus: `{version}` (commit {git_commit()}), one `ocellus serve --roles filter` node, "
          f"TCP and HTTP on loopback")
    if tversion:
        print(f"- peer: thumbor {tversion} (globo.com's open-source imaging service), PIL engine, file loader, "
              f"no storage, no result storage, JPEG quality {QUALITY} baseline")
    print(f"- {args.passes} timed passes per system after a warm-up round; each pass sends every image once "
          f"({args.clients} threads, one kept-alive connection each, one request at a time); systems interleaved, "
          f"order rotated every pass; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"- latency: send of the request to the last byte of the answer; p50/p99 over all {tcp['requests']} "
          f"requests of a system ({args.serial * args.passes} for the one-client rows, which add "
          f"{args.serial} requests a pass); images/s: median over the passes\n")
    print("| system | images/s | p50 ms | p99 ms | images/s per pass | answer KB |")
    print("|---|---:|---:|---:|---|---:|")
    ms = lambda v: f"{v:.0f}" if v >= 100 else f"{v:.1f}"  # noqa: E731
    shown = sorted(s, key=lambda k: (k.startswith("thumbor"), k.endswith("_serial")))
    for key in shown:
        v = s[key]
        print(f"| {labels[key]} | {v['images_per_s']:.2f} | {ms(v['p50_ms'])} | {ms(v['p99_ms'])} | "
              f"{', '.join(f'{x:.2f}' for x in v['passes_images_per_s'])} | {v['mean_out_kb']:.0f} |")
    print()
    print("| ratio | value |")
    print("|---|---:|")
    print(f"| HTTP / TCP images/s (target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'}) | {ratio:.3f} |")
    print(f"| latency HTTP adds per request at the median (HTTP p50 - TCP p50) | {added_p50:+.1f} ms |")
    print(f"| the same at p99 | {added_p99:+.1f} ms |")
    if "http_serial" in s:
        print(f"| the same with one client alone (no queueing), p50 | "
              f"{s['http_serial']['p50_ms'] - s['tcp_serial']['p50_ms']:+.1f} ms |")
    thumbors = [k for k in s if k.startswith("thumbor_")]
    vs = {k: web["images_per_s"] / s[k]["images_per_s"] for k in thumbors}
    best = max(thumbors, key=lambda k: s[k]["images_per_s"]) if thumbors else None
    for k in thumbors:
        print(f"| ours (HTTP) / {labels[k].split(', ', 1)[1]}: images/s | {vs[k]:.1f}x |")
    if best:
        print(f"| p50 latency, thumbor ({labels[best].split(', ', 1)[1]}) / ours (HTTP) | "
              f"{s[best]['p50_ms'] / web['p50_ms']:.1f}x |")
    print()
    print(f"- where a request's time goes (medians): TCP {tcp['send_p50_ms']:.1f} ms sending, "
          f"{tcp['after_send_p50_ms']:.1f} ms from all-sent to the last byte of the answer; HTTP "
          f"{web['send_p50_ms']:.1f} ms and {web['after_send_p50_ms']:.1f} ms")
    diff = checks.get("http_equals_tcp", [])
    print(f"- HTTP answers byte-identical to TCP answers: {'yes' if not diff else 'NO'} "
          f"({n - len(diff)}/{n} images)")
    print(f"- connections opened in the timed passes: TCP {tcp['connections']}, HTTP {web['connections']} "
          f"(one per client per pass is {args.clients * args.passes}: kept alive)")
    others = {k: [r["cpu_other"] for r in runs[k] if r["cpu_other"] is not None] for k in runs}
    if any(others.values()):
        worst = max(x for v in others.values() for x in v)
        print(f"- CPU taken by processes other than these servers and clients during the passes: at most "
              f"{100 * worst:.0f}% of the machine"
              + (" (NOISY: something else was running; the numbers are not clean)" if worst > 0.1 else "")
              + "; per system, per pass: "
              + "; ".join(f"{k} {', '.join(f'{100 * x:.0f}%' for x in v)}" for k, v in others.items()))
    if thumbors:
        pre = [k for k in thumbors if k.startswith("thumbor_p")]
        for k in pre:
            dist = [r["inspect"] for r in runs[k]]
            print(f"- {labels[k].split(', ', 1)[1]}: kept-alive connections per process, per pass: {dist} "
                  f"(each connection stays with the process that accepted it)")
        print(f"- thumbor requests: `GET /unsafe/{thumbor_filters}/FILE`; compared: ours against the fastest "
              f"thumbor row ({labels[best].split(', ', 1)[1]}); ours uses every CPU too. thumbor runs a "
              f"transform on its IO loop, one image at a time per process (ENGINE_THREADPOOL_SIZE 0, its default)")
        print(f"- what travels: thumbor gets a tiny GET and reads the source from disk (page cache) with its file "
              f"loader; ours receives the source in the POST body ({in_kb:.0f} KB on average) and reads no file. "
              f"thumbor's PIL engine always saves JPEG with optimize=True (optimised Huffman tables, a second "
              f"pass); ours writes standard tables (answer sizes above)")
    blur = checks.get("blur", {})
    print(f"\n**The two blurs.** ours `{ops}`: a Gaussian of standard deviation {args.sigma:g}, "
          f"{2 * radius + 1} taps (radius {radius} = round(6 sigma + 1) made odd, "
          f"crates/imaging/src/filter/gaussian.rs), weights exp(-x^2 / (2 sigma^2)) normalised to one, "
          f"vertical then horizontal pass in 16-bit fixed point with one rounding to 8 bits at the end, borders "
          f"reflected without repeating the edge pixel (BORDER_REFLECT_101).")
    if thumbors:
        print(f"thumbor `blur({radius},{args.sigma:g})`: a Gaussian of sigma {args.sigma:g} cut at radius {radius}: "
              f"the same {2 * radius + 1} weights (it computes exp(-x^2 / (2 sigma^2)) / sqrt(2 pi sigma^2) and "
              f"its C convolution normalises them to one); horizontal then vertical pass in float64, each pass "
              f"truncated to 8 bits (about -0.5 level per pass), borders clamped (edge pixel repeated). "
              f"So the same kernel: they differ in the {radius} pixels next to each edge and by the truncation. "
              f"(thumbor's `blur({args.sigma:g})` alone would be radius {args.sigma:g} with sigma {args.sigma:g}: "
              f"{2 * int(args.sigma) + 1} taps, a clipped Gaussian: hence the two arguments.)")
    if "ours" in blur:
        print(f"\nMeasured on {load.make_images(1, Path(args.data))[0].name} (PNG out, so no JPEG loss) "
              f"against the exact float64 Gaussian of the decoded input (same taps, BORDER_REFLECT_101); "
              f"interior = at least {radius} px from every edge:\n")
        print("| output | region | mean diff | mean abs diff | max abs diff | within 1 level |")
        print("|---|---|---:|---:|---:|---:|")
        for who in ("ours", "thumbor"):
            for region in ("interior", "border"):
                r = blur.get(who, {}).get(region)
                if r:
                    print(f"| {who} | {region} | {r['mean']:+.3f} | {r['mean_abs']:.3f} | {r['max_abs']:.0f} | "
                          f"{100 * r['within_1']:.1f}% |")
        if "ours_vs_thumbor" in blur:
            o = blur["ours_vs_thumbor"]
            print(f"\nours vs thumbor directly: mean abs diff {o['interior_mean_abs']:.3f} (interior), "
                  f"{o['border_mean_abs']:.3f} (border), max {o['max_abs']}")
    elif blur:
        print(f"\n(blur measurement skipped: {blur})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": command, "machine": info, "ocellus": version, "commit": git_commit(),
            "thumbor": tversion, "ops": ops, "thumbor_filters": thumbor_filters, "images": n,
            "clients": args.clients, "passes": args.passes, "load_before": load_before, "load_after": load_after,
            "summary": s, "http_over_tcp": ratio, "added_p50_ms": added_p50, "added_p99_ms": added_p99,
            "http_over_thumbor": vs, "compared_thumbor": best, "http_differs_from_tcp": diff, "blur": blur,
            "labels": labels,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
