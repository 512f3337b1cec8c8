#!/usr/bin/env python3
"""Calibrates the recognizers' default "unknown" thresholds on ORL.

Protocol (prepared-face default size 100x100, as `prepare_face` produces;
the ORL 92x112 images are resized by `ocellus eval --size 100x100`, area
averaging):

  - known people: ORL subjects s1..s20; training images 1-5 (100 faces);
  - genuine test faces: their images 6-10 (100 faces);
  - impostors: every image of subjects s21..s40 (200 faces), never trained.

For each algorithm (defaults: Eigen all components, Fisher C-1, LBPH 1/8/8x8)
it runs

    ocellus eval --algorithm A --train T --test E --impostors I
        --size 100x100 --far 0.01 --threshold inf --json

and reports the threshold at which at most 1 % of impostors are accepted,
with the false-reject and misidentification rates of genuine faces there.
Folders are made under bench/out/calibration/ as symlinks into the data set.

Usage: python3 bench/calibrate_thresholds.py [--bin PATH] [--data DIR] [--far F]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "calibration"


def link_set(orl: Path, dest: Path, subjects, images) -> None:
    for s in subjects:
        d = dest / f"s{s}"
        d.mkdir(parents=True, exist_ok=True)
        for i in images:
            link = d / f"{i}.pgm"
            if not link.exists():
                link.symlink_to((orl / f"s{s}" / f"{i}.pgm").resolve())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "ocellus"))
    ap.add_argument("--data", default=os.environ.get("OCELLUS_TEST_DATA",
                                                     str(REPO.parent / "shared" / "data")))
    ap.add_argument("--far", default="0.01")
    ap.add_argument("--size", default="100x100")
    args = ap.parse_args()
    orl = Path(args.data) / "faces" / "orl"
    train, test, impostors = OUT / "train", OUT / "test", OUT / "impostors"
    link_set(orl, train, range(1, 21), range(1, 6))
    link_set(orl, test, range(1, 21), range(6, 11))
    link_set(orl, impostors, range(21, 41), range(1, 11))
    print(f"| algorithm | threshold (FAR <= {args.far}) | FAR | FRR | misidentified "
          "| accuracy, no threshold |")
    print("|---|---|---|---|---|---|")
    for algo in ("eigen", "fisher", "lbph"):
        cmd = [args.bin, "eval", "--algorithm", algo, "--train", str(train), "--test", str(test),
               "--impostors", str(impostors), "--size", args.size, "--far", args.far,
               "--threshold", "inf", "--json"]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        imp = r["impostors"]
        print(f"| {algo} | {float(imp['threshold']):.2f} | {imp['far']:.3f} | {imp['frr']:.3f} "
              f"| {imp['misidentified']:.3f} | {r['accuracy']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
