#!/usr/bin/env python3
"""Face-service load benchmark (issue #6): recognition requests/s and
latency for one 640x480 photo with 1-3 faces, and enrollment throughput,
through `ocellus serve` in one process and in split roles, side by side with
OpenCV's detect+predict in this Python process.

Systems, in the same run (rounds interleaved, so that a change in machine
load hits every system alike; each round starts fresh nodes on a fresh
data dir):

* in-process: `ocellus serve --data-dir DIR` (filter, detect and recognize
  roles in one process);
* split: `ocellus serve --roles recognize --data-dir DIR` plus
  `ocellus serve --roles detect --recognizer ADDR` (clients talk to the
  detection node, which sends face crops to the recognition node);
* OpenCV (Python, cv2): the same photo bytes through cv2.imdecode,
  BGR2GRAY, CascadeClassifier(lbpcascade_frontalface_improved.xml)
  .detectMultiScale(gray, 1.1, 3, minSize=(30, 30)), each face cropped,
  cv2.resize to 100x100 INTER_AREA and LBPHFaceRecognizer (radius 1,
  8 neighbours, 8x8 grid) predict; trained on the people set cropped the
  same way (one face per photo, photos with another count skipped, which is
  what ENROLL does). Run twice: cv2.setNumThreads(1) (the fair row: each
  request on one core, like one job on one node worker) and OpenCV's
  default thread count.

The photo: DATA/photos/fr_two_people.jpg (--photo) scaled to cover 640x480
and centre-cut, as bench/out/face_load_<name>_640x480.jpg; two faces of
about 90 px, Obama and Biden, who are both in the people set.

Each round: enroll the people set (one ENROLL per person with all their
photos, --enroll-clients connections in parallel; photos/s over the wall
time until the last RESULT), wait for the node to go idle (its background
Eigen/Fisher trainer), then C clients (own connection each, one request at
a time) send R RECOGNIZE requests each; latency is send -> RESULT. OpenCV
gets the same C threads x R calls. Nodes run with their default --workers.

OpenCV's training set (detect + crop of the people set, cv2 one thread per
call, --enroll-clients threads; no storage) is built once and timed for
reference.

Checks: the node's DETECT (`ocellus detect --server`) finds 1-3 faces on
the photo; in-process and split give identical answers (boxes, names,
distances) and enroll the same faces; OpenCV finds the same boxes and names
(distances compared too) and its training set is the faces the node
enrolled. A diagnostic repeats OpenCV's answer with faces under 100 px
enlarged by INTER_LINEAR, which is what the node does (docs/recognition.md),
to show how much of a distance difference that explains.

The binary is copied before the run, so a rebuild of --bin meanwhile does
not mix two builds; its modification time and SHA-256 go to the JSON file
(default bench/out/face_load.json).

    python3 bench/face_load.py [--clients 4] [--requests 100] [--rounds 3]
        [--enroll-clients 4] [--quick] [--bin PATH] [--data DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"

_spec = importlib.util.spec_from_file_location("python_client", REPO / "examples" / "python_client.py")
proto = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(proto)
# The filter load benchmark's process and statistics helpers.
_spec = importlib.util.spec_from_file_location("load", REPO / "bench" / "load.py")
load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load)
stop, percentile = load.stop, load.percentile

ENROLL, RECOGNIZE = 1, 2

# The node's defaults (ocellus serve --help, crates/recognize/src/lbph/mod.rs).
CASCADE = "lbpcascade_frontalface_improved.xml"
CASCADE_DIRS = ["/usr/share/opencv4/lbpcascades", "/usr/local/share/opencv4/lbpcascades"]
SCALE_FACTOR, MIN_NEIGHBORS, MIN_SIZE = 1.1, 3, 30
FACE_SIZE = 100
LBPH_THRESHOLD = 80.65
DEFAULT_PHOTO = "fr_two_people.jpg"  # Obama and Biden, both enrolled: names to compare
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


# ------------------------------------------------------------------ inputs


def make_photo(data: Path, name: str) -> Path:
    """A 640x480 JPEG (quality 90) of photos/NAME: scaled to cover 640x480
    (Lanczos), then the centre cut out."""
    from PIL import Image, ImageOps

    src = data / "photos" / name
    if not src.is_file():
        sys.exit(f"{src} not found (see {data / 'photos' / 'MANIFEST.tsv'})")
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"face_load_{Path(name).stem}_640x480.jpg"
    with Image.open(src) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        scale = max(640 / im.width, 480 / im.height)
        im = im.resize((max(640, round(im.width * scale)), max(480, round(im.height * scale))),
                       Image.Resampling.LANCZOS)
        left, top = (im.width - 640) // 2, (im.height - 480) // 2
        im.crop((left, top, left + 640, top + 480)).save(target, "JPEG", quality=90)
    return target


def load_people(data: Path) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """[(person, [(file name, bytes), ...]), ...] from people/, sorted."""
    folder = data / "people"
    people = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        photos = [(f.name, f.read_bytes()) for f in sorted(d.iterdir()) if f.suffix.lower() in PHOTO_SUFFIXES]
        if photos:
            people.append((d.name, photos))
    if not people:
        sys.exit(f"no people folders in {folder}")
    return people


def find_cascade() -> Path:
    for d in CASCADE_DIRS:
        if (Path(d) / CASCADE).is_file():
            return Path(d) / CASCADE
    sys.exit(f"{CASCADE} not found in {CASCADE_DIRS}")


# ------------------------------------------------------------------ nodes


def start(cmd: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    """Starts a node that prints `listening on ADDR` first; returns it and
    ADDR. Its stderr goes to `log`."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=60)
        except queue.Empty:
            first = ""
        if not first.startswith("listening on "):
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} did not start (first line {first!r}); stderr:\n{tail}")
        return proc, first.split()[-1]
    except BaseException:
        stop(proc)
        raise


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(procs: list[subprocess.Popen], timeout: float = 300.0) -> float:
    """Waits until the nodes use under 5% of a core for two 0.5 s samples in
    a row (the recognition role retrains Eigen/Fisher in the background after
    enrollment); returns the seconds waited."""
    t0 = time.perf_counter()
    last = sum(cpu_seconds(p.pid) for p in procs)
    quiet = 0
    while quiet < 2 and time.perf_counter() - t0 < timeout:
        time.sleep(0.5)
        now = sum(cpu_seconds(p.pid) for p in procs)
        quiet = quiet + 1 if now - last <= 0.025 else 0
        last = now
    return time.perf_counter() - t0


class Topology:
    """One or two `ocellus serve` processes on a fresh data dir; `addr` is
    the node clients talk to."""

    def __init__(self, binary: Path, split: bool, workdir: Path):
        self.binary, self.split, self.workdir = binary, split, workdir
        self.procs: list[subprocess.Popen] = []
        self.addr = ""

    def __enter__(self) -> "Topology":
        serve = [str(self.binary), "serve", "--listen", "127.0.0.1:0", "--http", "off", "--queue-capacity", "4096", "--max-queued-per-client", "4096"]
        data_dir = self.workdir / "data"
        try:
            if self.split:
                rec, rec_addr = start(serve + ["--roles", "recognize", "--data-dir", str(data_dir)],
                                      self.workdir / "recognize.log")
                self.procs.append(rec)
                det, self.addr = start(serve + ["--roles", "detect", "--recognizer", rec_addr,
                                                "--data-dir", str(self.workdir / "detect-data")],
                                       self.workdir / "detect.log")
                self.procs.append(det)
            else:
                node, self.addr = start(serve + ["--data-dir", str(data_dir)], self.workdir / "node.log")
                self.procs.append(node)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        # The detection node first, so that it does not see its recognizer go away mid-request.
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()


# ------------------------------------------------------------------ protocol client


def connect(addr: str) -> socket.socket:
    host, _, port = addr.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=600)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def call(sock: socket.socket, op: int, request_id: int, header: dict, payload: bytes) -> dict:
    """Sends one request and returns its RESULT header (ERROR/BUSY raise)."""
    sock.sendall(proto.encode_frame(op, request_id, header, payload))
    while True:
        event, rid, h, _ = proto.read_frame(sock)
        if rid not in (0, request_id):
            continue
        if event == proto.RESULT:
            return h
        if event in (proto.ERROR, proto.BUSY):
            raise RuntimeError(f"node answered {'ERROR' if event == proto.ERROR else 'BUSY'}: {h}")


def enroll_people(addr: str, people, clients: int) -> dict:
    """One ENROLL per person, `clients` connections pulling people from a
    shared queue. Returns wall time (first send to last RESULT) and the
    RESULT headers by person."""
    todo: queue.Queue = queue.Queue()
    for person in people:
        todo.put(person)
    results: dict[str, dict] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def client():
        try:
            with connect(addr) as sock:
                barrier.wait()
                rid = 0
                while True:
                    try:
                        name, photos = todo.get_nowait()
                    except queue.Empty:
                        return
                    rid += 1
                    header = {"name": name, "images": [len(b) for _, b in photos]}
                    results[name] = call(sock, ENROLL, rid, header, b"".join(b for _, b in photos))
        except BaseException as e:  # reported after the run
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return {"wall": wall, "results": results}


def drive(clients: int, requests: int, make_worker) -> dict:
    """`clients` threads, each calling its worker `requests` times one after
    the other; make_worker() runs in the thread before the start barrier and
    returns (call, cleanup). Returns wall time, latencies and the distinct
    answers (JSON text)."""
    barrier = threading.Barrier(clients + 1)
    latencies: list[float] = []
    answers: set[str] = set()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client():
        try:
            work, cleanup = make_worker()
            try:
                barrier.wait()
                mine, seen = [], set()
                for i in range(1, requests + 1):
                    t = time.perf_counter()
                    answer = work(i)
                    mine.append(time.perf_counter() - t)
                    seen.add(json.dumps(answer, sort_keys=True))
                with lock:
                    latencies.extend(mine)
                    answers.update(seen)
            finally:
                cleanup()
        except BaseException as e:
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return {"wall": wall, "latencies": latencies, "answers": sorted(answers)}


def node_answer(result: dict) -> list[dict]:
    """The faces of a RECOGNIZE RESULT for one image, in the node's order."""
    return result["results"][0]["faces"]


def recognize_load(addr: str, photo: bytes, clients: int, requests: int) -> dict:
    header = {"images": [len(photo)], "algorithm": "lbph"}

    def make_worker():
        sock = connect(addr)
        return (lambda rid: node_answer(call(sock, RECOGNIZE, rid, header, photo))), sock.close

    return drive(clients, requests, make_worker)


def node_detect(binary: Path, addr: str, photo: Path) -> list[dict]:
    """The node's DETECT of the photo, through `ocellus detect --server`."""
    out = subprocess.run([str(binary), "detect", "--server", addr, "--json", str(photo)],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"ocellus detect failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.splitlines()[0])["faces"]


# ------------------------------------------------------------------ OpenCV


def largest_first(boxes) -> list[tuple[int, int, int, int]]:
    """The node's face order: largest area first, then top to bottom, left to right."""
    return sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: (-b[2] * b[3], b[1], b[0]))


class OpenCv:
    """detect + crop + LBPH with cv2, the node's settings."""

    def __init__(self, cascade: Path):
        import cv2
        import numpy as np

        self.cv2, self.np, self.cascade_path = cv2, np, str(cascade)
        self.model = None
        self.labels: list[str] = []
        # The training faces as detected (before resizing), for diagnose().
        self.raw_faces: list = []
        self.raw_labels: list[int] = []

    def classifier(self):
        """A cascade per thread: detectMultiScale keeps per-call state in the object."""
        c = self.cv2.CascadeClassifier(self.cascade_path)
        if c.empty():
            raise RuntimeError(f"cv2 cannot load {self.cascade_path}")
        return c

    def gray(self, data: bytes):
        img = self.cv2.imdecode(self.np.frombuffer(data, self.np.uint8), self.cv2.IMREAD_COLOR)
        if img is None:
            raise RuntimeError("cv2.imdecode failed")
        return self.cv2.cvtColor(img, self.cv2.COLOR_BGR2GRAY)

    def faces(self, classifier, gray) -> list[tuple[int, int, int, int]]:
        boxes = classifier.detectMultiScale(gray, SCALE_FACTOR, MIN_NEIGHBORS, minSize=(MIN_SIZE, MIN_SIZE))
        return largest_first(boxes)

    def crop(self, gray, box, upscale=None):
        """The face resized to 100x100 with INTER_AREA (or, for a face smaller
        than that, `upscale` when given: see diagnose())."""
        x, y, w, h = box
        face = gray[y:y + h, x:x + w]
        interpolation = self.cv2.INTER_AREA
        if upscale is not None and (w < FACE_SIZE or h < FACE_SIZE):
            interpolation = upscale
        return self.cv2.resize(face, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)

    def enroll(self, people, clients: int) -> dict:
        """Detects the people set's faces (`clients` threads, one person at a
        time, cv2.setNumThreads(1)) and trains LBPH on the single-face photos.
        Returns the wall time and the boxes used by person and file."""
        from concurrent.futures import ThreadPoolExecutor

        self.cv2.setNumThreads(1)
        try:
            return self._enroll(people, clients, ThreadPoolExecutor)
        finally:
            self.cv2.setNumThreads(-1)

    def _enroll(self, people, clients: int, ThreadPoolExecutor) -> dict:

        local = threading.local()

        def one(person):
            name, photos = person
            if not hasattr(local, "classifier"):
                local.classifier = self.classifier()
            out = []
            for file, data in photos:
                gray = self.gray(data)
                boxes = self.faces(local.classifier, gray)
                if len(boxes) == 1:
                    x, y, w, h = boxes[0]
                    out.append((file, boxes, self.crop(gray, boxes[0]), gray[y:y + h, x:x + w].copy()))
                else:
                    out.append((file, boxes, None, None))
            return name, out

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            detected = list(pool.map(one, people))
        crops, labels, used = [], [], {}
        self.labels = [name for name, _ in detected]
        self.raw_faces, self.raw_labels = [], []
        for label, (name, photos) in enumerate(detected):
            for file, boxes, crop, raw in photos:
                if crop is not None:
                    crops.append(crop)
                    labels.append(label)
                    self.raw_faces.append(raw)
                    self.raw_labels.append(label)
                    used[f"{name}/{file}"] = list(boxes[0])
        self.model = self.cv2.face.LBPHFaceRecognizer_create(1, 8, 8, 8)
        self.model.train(crops, self.np.array(labels, dtype=self.np.int32))
        return {"wall": time.perf_counter() - t0, "faces": used}

    def recognize(self, classifier, data: bytes, model=None, upscale=None) -> list[dict]:
        """detect + crop + predict; the answer in the node's form."""
        model = model or self.model
        gray = self.gray(data)
        answer = []
        for box in self.faces(classifier, gray):
            label, distance = model.predict(self.crop(gray, box, upscale))
            x, y, w, h = box
            answer.append({"x": x, "y": y, "width": w, "height": h, "distance": float(distance),
                           "name": self.labels[label] if distance < LBPH_THRESHOLD else None})
        return answer

    def diagnose(self, photo: bytes) -> list[dict]:
        """The answer when faces smaller than 100x100 (training and query) are
        enlarged with INTER_LINEAR instead of INTER_AREA: the node enlarges by
        linear interpolation (crates/recognize/src/prepare.rs), while
        INTER_AREA enlarges with its own kernel, so distances of small faces
        differ. Not timed."""
        model = self.cv2.face.LBPHFaceRecognizer_create(1, 8, 8, 8)
        faces = [self.crop(f, (0, 0, f.shape[1], f.shape[0]), self.cv2.INTER_LINEAR) for f in self.raw_faces]
        model.train(faces, self.np.array(self.raw_labels, dtype=self.np.int32))
        return self.recognize(self.classifier(), photo, model, self.cv2.INTER_LINEAR)

    def load(self, photo: bytes, clients: int, requests: int, threads: int | None) -> dict:
        """The recognition load; `threads`: cv2.setNumThreads (None: OpenCV's default)."""
        self.cv2.setNumThreads(-1 if threads is None else threads)
        try:
            def make_worker():
                classifier = self.classifier()
                return (lambda _rid: self.recognize(classifier, photo)), (lambda: None)

            result = drive(clients, requests, make_worker)
            result["cv2_threads"] = self.cv2.getNumThreads()
            return result
        finally:
            self.cv2.setNumThreads(-1)


# ------------------------------------------------------------------ comparison


def box(face: dict) -> tuple[int, int, int, int]:
    return face["x"], face["y"], face["width"], face["height"]


def enrolled_faces(enroll_results: dict, people) -> dict[str, list[int]]:
    """person/file -> box of every photo the node accepted."""
    used = {}
    for name, photos in people:
        for (file, _), image in zip(photos, enroll_results[name]["images"]):
            if image["accepted"]:
                used[f"{name}/{file}"] = list(box(image["face"]))
    return used


def essential(face: dict) -> tuple:
    """What two nodes' answers must agree on: box, name, distance."""
    return box(face), face["name"], face["distance"]


def compare_answers(ours: list[dict], theirs: list[dict]) -> tuple[bool, float | None, list[str]]:
    """Same boxes (in the same order) and names? Also the largest distance
    difference. Returns (match, max |distance difference|, differences)."""
    diffs = []
    if [box(f) for f in ours] != [box(f) for f in theirs]:
        diffs.append(f"boxes differ: {[box(f) for f in ours]} vs {[box(f) for f in theirs]}")
        return False, None, diffs
    for a, b in zip(ours, theirs):
        if a["name"] != b["name"]:
            diffs.append(f"face {box(a)}: name {a['name']!r} vs {b['name']!r}")
    max_diff = max((abs(a["distance"] - b["distance"]) for a, b in zip(ours, theirs)), default=0.0)
    return not diffs, max_diff, diffs


# ------------------------------------------------------------------ main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=4, help="recognition client threads (C)")
    p.add_argument("--requests", type=int, default=100, help="RECOGNIZE requests per client (R)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--enroll-clients", type=int, default=4, help="parallel ENROLL connections")
    p.add_argument("--photo", default=DEFAULT_PHOTO, help="file in DATA/photos to make the 640x480 photo from")
    p.add_argument("--quick", action="store_true", help="2 clients x 5 requests, 1 round")
    p.add_argument("--bin", default=os.environ.get("OCELLUS_BIN", REPO / "target" / "release" / "ocellus"))
    p.add_argument("--data", default=os.environ.get("OCELLUS_TEST_DATA", REPO.parent / "shared" / "data"))
    p.add_argument("--json", default=OUT / "face_load.json", help="where to write the figures")
    args = p.parse_args()
    if args.quick:
        args.clients, args.requests, args.rounds = 2, 5, 1
    binary, data = Path(args.bin), Path(args.data)
    if not binary.is_file():
        sys.exit(f"{binary} not found: cargo build --release -p ocellus (or --bin / OCELLUS_BIN)")
    import cv2
    import hashlib
    import shutil

    photo_path = make_photo(data, args.photo)
    photo = photo_path.read_bytes()
    people = load_people(data)
    n_photos = sum(len(photos) for _, photos in people)
    opencv = OpenCv(find_cascade())
    C, R = args.clients, args.requests
    n_requests = C * R

    load_before, uptime_before = os.getloadavg(), subprocess.run(["uptime"], capture_output=True, text=True).stdout
    systems = ["in-process", "split", "opencv-1", "opencv-default"]
    runs: dict[str, list[dict]] = {k: [] for k in systems}
    enrolls: dict[str, list[dict]] = {"in-process": [], "split": [], "opencv": []}
    answers: dict[str, dict] = {}
    node_answers: list[list[tuple]] = []  # every round's, both topologies
    detected = None
    with tempfile.TemporaryDirectory(prefix="ocellus-face-load-") as tmp:
        # Run a private copy: a rebuild of --bin during the run must not mix two builds.
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(binary.stat().st_mtime))
        binary = Path(shutil.copy2(binary, Path(tmp) / "ocellus"))
        bin_sha = hashlib.sha256(binary.read_bytes()).hexdigest()
        print(f"binary {args.bin} (modified {built}, sha256 {bin_sha[:16]}...)", file=sys.stderr)
        # OpenCV's training set, once (it does not change between rounds).
        print("OpenCV: detecting and training on the people set ...", file=sys.stderr)
        enrolls["opencv"].append(opencv.enroll(people, args.enroll_clients))
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds} ...", file=sys.stderr)
            for key in ("in-process", "split"):
                work = Path(tmp) / f"{key}-{r}"
                work.mkdir()
                with Topology(binary, key == "split", work) as topo:
                    if detected is None:
                        detected = node_detect(binary, topo.addr, photo_path)
                        print(f"{photo_path.name}: the node's DETECT finds {len(detected)} face(s): "
                              f"{[box(f) for f in detected]}", file=sys.stderr)
                        if not 1 <= len(detected) <= 3:
                            sys.exit(f"{photo_path.name} has {len(detected)} faces at the node's settings, "
                                     "not 1-3: pick another --photo")
                    e = enroll_people(topo.addr, people, args.enroll_clients)
                    e["settle_s"] = wall_settle = wait_idle(topo.procs)
                    e["faces"] = enrolled_faces(e["results"], people)
                    enrolls[key].append(e)
                    print(f"  {key}: enrolled {len(e['faces'])} of {n_photos} photos in {e['wall']:.2f} s "
                          f"(then idle after {wall_settle:.1f} s)", file=sys.stderr)
                    with connect(topo.addr) as sock:  # warm-up, and the reference answer
                        first = node_answer(call(sock, RECOGNIZE, 1, {"images": [len(photo)], "algorithm": "lbph"},
                                                 photo))
                    answers.setdefault(key, {"answer": first})
                    node_answers.append([essential(f) for f in first])
                    res = recognize_load(topo.addr, photo, C, R)
                    res["consistent"] = res["answers"] == [json.dumps(first, sort_keys=True)]
                    runs[key].append(res)
                    print(f"  {key}: {n_requests / res['wall']:.1f} req/s", file=sys.stderr)
            first = opencv.recognize(opencv.classifier(), photo)
            answers.setdefault("opencv", {"answer": first})
            for key, threads in (("opencv-1", 1), ("opencv-default", None)):
                opencv.recognize(opencv.classifier(), photo)  # warm-up
                res = opencv.load(photo, C, R, threads)
                res["consistent"] = res["answers"] == [json.dumps(first, sort_keys=True)]
                runs[key].append(res)
                print(f"  {key} (cv2 threads {res['cv2_threads']}): {n_requests / res['wall']:.1f} req/s",
                      file=sys.stderr)
    load_after, uptime_after = os.getloadavg(), subprocess.run(["uptime"], capture_output=True, text=True).stdout

    def summary(key: str) -> dict:
        rs = runs[key]
        return {
            "req_per_s": statistics.median(n_requests / x["wall"] for x in rs),
            "p50_ms": statistics.median(percentile(x["latencies"], 50) * 1e3 for x in rs),
            "p99_ms": statistics.median(percentile(x["latencies"], 99) * 1e3 for x in rs),
            "rounds_req_per_s": [round(n_requests / x["wall"], 2) for x in rs],
            "consistent": all(x["consistent"] for x in rs),
        }

    s = {k: summary(k) for k in systems}
    base = s["opencv-1"]["req_per_s"]
    en = {k: {"photos_per_s": statistics.median(n_photos / x["wall"] for x in v),
              "wall_s": statistics.median(x["wall"] for x in v),
              "settle_s": statistics.median(x.get("settle_s", 0.0) for x in v),
              "faces": len(v[0]["faces"]),
              "rounds_photos_per_s": [round(n_photos / x["wall"], 2) for x in v]} for k, v in enrolls.items()}

    # Checks.
    split_same = all(a == node_answers[0] for a in node_answers)
    cv_match, cv_max_diff, cv_diffs = compare_answers(answers["in-process"]["answer"], answers["opencv"]["answer"])
    answers["opencv-linear-upscale"] = {"answer": opencv.diagnose(photo)}
    _, lin_max_diff, lin_diffs = compare_answers(answers["in-process"]["answer"],
                                                 answers["opencv-linear-upscale"]["answer"])
    enrolled_same = all(x["faces"] == enrolls["in-process"][0]["faces"] for k in ("in-process", "split")
                        for x in enrolls[k])
    train_ours, train_cv = enrolls["in-process"][0]["faces"], enrolls["opencv"][0]["faces"]
    train_diff = sorted(k for k in set(train_ours) | set(train_cv) if train_ours.get(k) != train_cv.get(k))

    cpus = os.cpu_count()
    print(f"\nRECOGNIZE of {photo_path.name} (640x480, {len(detected)} faces at the node's settings), "
          f"{C} clients x {R} requests, median of {args.rounds} round(s); {cpus} CPUs; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after\n")
    print("| system | req/s | p50 ms | p99 ms | ratio vs OpenCV (throughput) | req/s per round |")
    print("|---|---:|---:|---:|---:|---|")
    labels = {
        "in-process": "ocellus serve, one process (all roles)",
        "split": "ocellus serve, split (detect node -> recognize node)",
        "opencv-1": "OpenCV 4 Python, cv2.setNumThreads(1) (baseline)",
        "opencv-default": f"OpenCV 4 Python, default threads ({runs['opencv-default'][0]['cv2_threads']})",
    }
    for key in systems:
        v = s[key]
        print(f"| {labels[key]} | {v['req_per_s']:.1f} | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} | "
              f"{v['req_per_s'] / base:.2f}x | {v['rounds_req_per_s']} |")
    print(f"\nEnrollment of the people set ({len(people)} people, {n_photos} photos; one ENROLL per person, "
          f"{args.enroll_clients} connections), median of {args.rounds} round(s):\n")
    print("| system | photos/s | wall s | faces enrolled | then idle after s | photos/s per round |")
    print("|---|---:|---:|---:|---:|---|")
    for key, label in (("in-process", "ocellus serve, one process"), ("split", "ocellus serve, split"),
                       ("opencv", "OpenCV detect+crop+LBPH train, cv2 1 thread, no storage (one run, for reference)")):
        v = en[key]
        settle = f"{v['settle_s']:.1f}" if key != "opencv" else "-"
        print(f"| {label} | {v['photos_per_s']:.1f} | {v['wall_s']:.2f} | {v['faces']} | {settle} | "
              f"{v['rounds_photos_per_s']} |")

    print("\nAnswers for the photo (box: name, distance):")
    for key in ("in-process", "split", "opencv", "opencv-linear-upscale"):
        faces = answers[key]["answer"]
        text = "; ".join(f"{box(f)}: {f['name']}, {f['distance']:.4f}" for f in faces) or "no face"
        print(f"- {key}: {text}")
    print(f"\nin-process and split answers identical in every round (boxes, names, distances): "
          f"{'yes' if split_same else 'NO'}")
    print(f"in-process and split enrolled the same faces (same boxes) in every round: "
          f"{'yes' if enrolled_same else 'NO'}")
    print(f"OpenCV's answer matches ours (same boxes and names): {'yes' if cv_match else 'NO'}"
          + (f"; largest distance difference {cv_max_diff:.3g}" if cv_max_diff is not None else ""))
    for d in cv_diffs:
        print(f"  {d}")
    print(f"diagnostic: OpenCV enlarging faces under 100 px with INTER_LINEAR (as the node does) instead of "
          f"INTER_AREA: names {'match' if not lin_diffs else 'DIFFER'}"
          + (f", largest distance difference {lin_max_diff:.3g}" if lin_max_diff is not None else ""))
    print(f"OpenCV's training faces are the node's enrolled faces (same photos, same boxes): "
          f"{'yes' if not train_diff else f'NO ({len(train_diff)} differ: {train_diff[:5]})'}")
    print(f"every request of a run gave the same answer: "
          f"{'yes' if all(v['consistent'] for v in s.values()) else 'NO ' + str({k: v['consistent'] for k, v in s.items()})}")
    print(f"\nuptime before: {uptime_before.strip()}\nuptime after:  {uptime_after.strip()}")

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "binary": str(args.bin), "binary_modified": built, "binary_sha256": bin_sha,
        "photo": str(photo_path), "source_photo": args.photo, "faces_detected": detected,
        "clients": C, "requests_per_client": R, "rounds": args.rounds, "enroll_clients": args.enroll_clients,
        "people": len(people), "people_photos": n_photos, "cpus": cpus, "cv2_version": cv2.__version__,
        "load_before": load_before, "load_after": load_after,
        "uptime_before": uptime_before.strip(), "uptime_after": uptime_after.strip(),
        "recognize": {k: {**s[k], "ratio_vs_opencv_1": s[k]["req_per_s"] / base} for k in systems},
        "enroll": en,
        "answers": {k: v["answer"] for k, v in answers.items()},
        "checks": {"split_identical": split_same, "enrolled_same": enrolled_same, "opencv_match": cv_match,
                   "opencv_max_distance_diff": cv_max_diff, "opencv_differences": cv_diffs,
                   "opencv_linear_upscale_max_distance_diff": lin_max_diff,
                   "opencv_linear_upscale_differences": lin_diffs,
                   "training_set_differences": train_diff},
    }, indent=2))
    print(f"\nfigures written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
