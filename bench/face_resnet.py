#!/usr/bin/env python3
"""Face-service benchmark of the resnet recognizer (issue #15): recognitions
per second and latency through `ocellus serve` in one process and in split
roles, side by side with the same work done by dlib in this Python process
(what `face_recognition` runs), and the node's peak memory with the model
files loaded.

Systems, in the same run (rounds interleaved; each round starts fresh nodes
on a fresh data dir):

* in-process: `ocellus serve --data-dir DIR` (its default algorithm is
  resnet when the model files are installed; requests name it anyway);
* split: `ocellus serve --roles recognize` plus `ocellus serve --roles
  detect --recognizer ADDR` (the detection node aligns and embeds the
  faces; only descriptors travel);
* dlib (Python, `dlib-bin`): the photo bytes through cv2.imdecode, the
  same LBP cascade and settings as the node (our boxes, not dlib's HOG
  detector), then for each face dlib.shape_predictor (5 points) and
  face_recognition_model_v1.compute_face_descriptor (the calls
  face_recognition.face_encodings makes), and the nearest enrolled
  descriptor with numpy (face_recognition.face_distance). Enrolled from
  the people set the same way (largest face of each photo with one face).

The photo is face_load.py's: DATA/photos/fr_two_people.jpg cut to 640x480,
two faces (Obama and Biden, both enrolled). C clients (own connection or
thread each, one request at a time) send R requests each; latency is send
-> RESULT. Checks: both topologies give identical answers, and name both
faces as dlib does.

Needs the model files (scripts/setup) and `pip install dlib-bin`.

    python3 bench/face_resnet.py [--clients 4] [--requests 50] [--rounds 3]
        [--quick] [--bin PATH] [--data DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"

_spec = importlib.util.spec_from_file_location("face_load", REPO / "bench" / "face_load.py")
fl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fl)

MODEL_DIR = Path(os.environ.get("OCELLUS_MODEL_DIR", Path.home() / ".local/share/ocellus/models"))
TOLERANCE = 0.6


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def node_load(addr: str, photo: bytes, clients: int, requests: int) -> dict:
    header = {"images": [len(photo)], "algorithm": "resnet"}

    def make_worker():
        sock = fl.connect(addr)
        return (lambda rid: fl.node_answer(fl.call(sock, fl.RECOGNIZE, rid, header, photo))), sock.close

    return fl.drive(clients, requests, make_worker)


class Dlib:
    """face_recognition's work, with the node's LBP boxes."""

    def __init__(self):
        import cv2
        import dlib
        import numpy as np

        self.cv2, self.np = cv2, np
        cv2.setNumThreads(1)
        self.sp = dlib.shape_predictor(str(MODEL_DIR / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(MODEL_DIR / "dlib_face_recognition_resnet_model_v1.dat"))
        self.dlib = dlib
        self.local = threading.local()
        self.names: list[str] = []
        self.known = None

    def cascade(self):
        if not hasattr(self.local, "c"):
            self.local.c = self.cv2.CascadeClassifier(str(fl.find_cascade()))
        return self.local.c

    def faces(self, data: bytes):
        cv2, np = self.cv2, self.np
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        boxes = self.cascade().detectMultiScale(gray, fl.SCALE_FACTOR, fl.MIN_NEIGHBORS,
                                                minSize=(fl.MIN_SIZE, fl.MIN_SIZE))
        boxes = sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: (-b[2] * b[3], b[1], b[0]))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        out = []
        for x, y, w, h in boxes:
            rect = self.dlib.rectangle(x, y, x + w - 1, y + h - 1)
            shape = self.sp(rgb, rect)
            out.append(((x, y, w, h), np.array(self.net.compute_face_descriptor(rgb, shape, 0))))
        return out

    def enroll(self, people) -> float:
        t0 = time.perf_counter()
        names, descs = [], []
        for name, photos in people:
            for _, data in photos:
                found = self.faces(data)
                if len(found) == 1:
                    names.append(name)
                    descs.append(found[0][1])
        self.names, self.known = names, self.np.stack(descs)
        return time.perf_counter() - t0

    def recognize(self, data: bytes) -> list[dict]:
        answer = []
        for (x, y, w, h), d in self.faces(data):
            dist = self.np.linalg.norm(self.known - d, axis=1)
            i = int(self.np.argmin(dist))
            answer.append({"x": x, "y": y, "width": w, "height": h,
                           "name": self.names[i] if dist[i] <= TOLERANCE else None,
                           "distance": round(float(dist[i]), 4)})
        return answer

    def load(self, photo: bytes, clients: int, requests: int) -> dict:
        return fl.drive(clients, requests, lambda: ((lambda _rid: self.recognize(photo)), lambda: None))


def summary(run: dict, faces: int) -> dict:
    lat = sorted(run["latencies"])
    n = len(lat)
    return {"rps": n / run["wall"], "faces_s": n * faces / run["wall"],
            "p50_ms": 1000 * fl.percentile(lat, 50), "p99_ms": 1000 * fl.percentile(lat, 99)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--requests", type=int, default=50, help="RECOGNIZE requests per client")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="2 clients x 5 requests, 1 round")
    p.add_argument("--bin", default=os.environ.get("OCELLUS_BIN", REPO / "target" / "release" / "ocellus"))
    p.add_argument("--data", default=os.environ.get("OCELLUS_TEST_DATA", REPO.parent / "shared" / "data"))
    p.add_argument("--json", default=OUT / "face_resnet.json")
    args = p.parse_args()
    if args.quick:
        args.clients, args.requests, args.rounds = 2, 5, 1
    data = Path(args.data)
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ocellus-face-resnet-"))
    binary = work / "ocellus"
    shutil.copy2(args.bin, binary)
    photo_path = fl.make_photo(data, fl.DEFAULT_PHOTO)
    photo = photo_path.read_bytes()
    people = fl.load_people(data)

    dlib_side = Dlib()
    dlib_enroll_s = dlib_side.enroll(people)
    reference = dlib_side.recognize(photo)
    faces = len(reference)
    print(f"photo {photo_path.name}: {faces} faces; dlib names {[f['name'] for f in reference]}", file=sys.stderr)

    rows: dict[str, list[dict]] = {"in-process": [], "split": [], "dlib (Python, our boxes)": []}
    enroll_s: dict[str, list[float]] = {"in-process": [], "split": []}
    rss: dict[str, list[int]] = {"in-process": [], "split": []}
    answers: dict[str, list] = {}
    for r in range(args.rounds):
        for name, split in (("in-process", False), ("split", True)):
            d = work / f"{name}-{r}"
            d.mkdir()
            with fl.Topology(binary, split, d) as topo:
                e = fl.enroll_people(topo.addr, people, 4)
                enroll_s[name].append(e["wall"])
                fl.wait_idle(topo.procs)
                run = node_load(topo.addr, photo, args.clients, args.requests)
                rows[name].append(summary(run, faces))
                answers[name] = run["answers"]
                rss[name].append(sum(vm_hwm_kib(p.pid) for p in topo.procs))
        run = dlib_side.load(photo, args.clients, args.requests)
        rows["dlib (Python, our boxes)"].append(summary(run, faces))

    ok = answers["in-process"] == answers["split"] and len(answers["split"]) == 1
    ours = json.loads(answers["split"][0]) if answers["split"] else []
    same_names = [f["name"] for f in ours] == [f["name"] for f in reference]
    med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in rows.items()}
    base = med["dlib (Python, our boxes)"]["rps"]
    print(f"\n{args.clients} clients x {args.requests} RECOGNIZE of a 640x480 photo with {faces} faces, "
          f"median of {args.rounds} rounds\n")
    print("| system | recognitions/s | faces/s | p50 ms | p99 ms | vs dlib | enroll s (people set) | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for k, m in med.items():
        e = f"{statistics.median(enroll_s[k]):.1f}" if k in enroll_s else f"{dlib_enroll_s:.1f}"
        mem = f"{statistics.median(rss[k]) / 1024:.0f}" if k in rss else "-"
        print(f"| {k} | {m['rps']:.1f} | {m['faces_s']:.1f} | {m['p50_ms']:.0f} | {m['p99_ms']:.0f} "
              f"| {m['rps'] / base:.2f}x | {e} | {mem} |")
    print(f"\nin-process and split identical: {ok}; names as dlib's: {same_names} "
          f"({[f['name'] for f in ours]}); ours {[f['distance'] for f in ours]}, "
          f"dlib {[f['distance'] for f in reference]}")
    Path(args.json).write_text(json.dumps({"median": med, "rounds": rows, "enroll_s": enroll_s,
                                           "dlib_enroll_s": dlib_enroll_s, "peak_rss_kib": rss,
                                           "identical": ok, "same_names": same_names,
                                           "ours": ours, "dlib": reference}, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok and same_names else 1


if __name__ == "__main__":
    sys.exit(main())
