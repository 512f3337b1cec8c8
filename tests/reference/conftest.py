"""Fixtures for the numeric reference tests of `ocellus filter`.

The tests run the real `ocellus` binary on PNG files and compare its PNG
output with OpenCV / Pillow / numpy computed on the very same pixels.

Locations (same rule as the Rust `ocellus-testdata` crate):

* the binary: env `OCELLUS_BIN`, default `<repo>/target/release/ocellus`;
* the shared data: env `OCELLUS_TEST_DATA`, default `<repo>/../shared/data`.

When either is missing the tests are skipped with the reason, except under
`CI=true` (or `CI=1`), where a missing binary or data set is a failure.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

# Real photographs (JPEG and PNG; an RGBA and the greyscale PNG among them).
# JPEGs are converted to PNG with Pillow first, so that both sides see the
# same decoded pixels and decoder differences do not pollute the comparison.
PHOTOS = [
    "skimage_astronaut.png",  # RGB PNG 512x512
    "fr_obama.jpg",  # RGB JPEG 910x1137
    "darknet_horses.jpg",  # RGB JPEG 773x512
    "skimage_camera.png",  # greyscale (L) PNG 512x512
    "fr_alex-lacamoire.png",  # RGBA PNG 424x394 (alpha all 255)
    "blazeface_1face.png",  # small RGB PNG 128x128
]


def in_ci() -> bool:
    """Whether we run under CI, where missing inputs must fail, not skip."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def missing(reason: str):
    """Skips (outside CI) or fails (under CI) with `reason`."""
    if in_ci():
        pytest.fail(f"{reason}; under CI=true it is required", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ocellus_bin() -> Path:
    path = Path(os.environ.get("OCELLUS_BIN", REPO / "target" / "release" / "ocellus"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing(
            f"ocellus binary not found at {path} "
            "(build it with `cargo build --release -p ocellus` or set OCELLUS_BIN)"
        )
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("OCELLUS_TEST_DATA", REPO.parent / "shared" / "data"))
    if not (path / "README.md").is_file():
        missing(f"test data not found at {path} (set OCELLUS_TEST_DATA to the shared data folder)")
    return path


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class RefImage:
    """One input: the PNG given to ocellus and the pixels the reference sees."""

    name: str  # unique; also the file stem, hence the output name
    path: Path
    pixels: np.ndarray  # HxW (L) or HxWxC, uint8, channels in RGB(A) / LA order
    mode: str  # Pillow mode: L, LA, RGB, RGBA
    photo: bool  # a real photograph (False: generated content)

    @property
    def has_alpha(self) -> bool:
        return self.mode in ("LA", "RGBA")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def pil(self) -> Image.Image:
        return Image.fromarray(self.pixels, self.mode)


def _generated(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, str]]:
    """Synthetic content: noise, gradients, a checkerboard, varying alpha and
    sizes smaller than the kernels (1x1, 3x2, 7x40, a single row)."""
    out: dict[str, tuple[np.ndarray, str]] = {}
    out["gen_noise_rgb_257x193"] = (rng.integers(0, 256, (193, 257, 3), dtype=np.uint8), "RGB")
    yy, xx = np.mgrid[0:200, 0:300]
    grad = np.stack([xx * 255 // 299, yy * 255 // 199, (xx + yy) * 255 // 498], axis=-1)
    out["gen_gradient_rgb_300x200"] = (grad.astype(np.uint8), "RGB")
    checker = (((yy[:96, :128] // 8) + (xx[:96, :128] // 8)) % 2 * 255).astype(np.uint8)
    out["gen_checker_l_128x96"] = (checker, "L")
    rgba = rng.integers(0, 256, (67, 101, 4), dtype=np.uint8)
    rgba[..., 3] = (np.mgrid[0:67, 0:101][1] * 255 // 100).astype(np.uint8)  # alpha ramp
    out["gen_alpha_rgba_101x67"] = (rgba, "RGBA")
    la = rng.integers(0, 256, (21, 33, 2), dtype=np.uint8)
    out["gen_noise_la_33x21"] = (la, "LA")
    out["gen_tiny_rgb_1x1"] = (rng.integers(0, 256, (1, 1, 3), dtype=np.uint8), "RGB")
    out["gen_tiny_rgb_3x2"] = (rng.integers(0, 256, (2, 3, 3), dtype=np.uint8), "RGB")
    out["gen_tiny_rgb_7x40"] = (rng.integers(0, 256, (40, 7, 3), dtype=np.uint8), "RGB")
    out["gen_row_l_50x1"] = (rng.integers(0, 256, (1, 50), dtype=np.uint8), "L")
    return out


PHOTO_NAMES = ["photo_" + Path(p).stem.replace("-", "_") for p in PHOTOS]
GENERATED_NAMES = list(_generated(np.random.default_rng(0)).keys())
ALL_NAMES = PHOTO_NAMES + GENERATED_NAMES


@pytest.fixture(scope="session")
def images(data_dir, tmp_path_factory) -> dict[str, RefImage]:
    """Every input image, written as PNG into a session temp folder."""
    folder = tmp_path_factory.mktemp("inputs")
    result: dict[str, RefImage] = {}
    for file, name in zip(PHOTOS, PHOTO_NAMES):
        src = data_dir / "photos" / file
        if not src.is_file():
            missing(f"photo {src} not found in the test data")
        with Image.open(src) as im:
            im.load()
            if im.mode not in ("L", "LA", "RGB", "RGBA"):
                im = im.convert("RGB")
            path = folder / f"{name}.png"
            im.save(path)
            result[name] = RefImage(name, path, np.asarray(im).copy(), im.mode, True)
    for name, (pixels, mode) in _generated(np.random.default_rng(20240601)).items():
        path = folder / f"{name}.png"
        Image.fromarray(pixels, mode).save(path)
        result[name] = RefImage(name, path, pixels, mode, False)
    return result


# ---------------------------------------------------------------- running ocellus


@dataclass
class FilterRun:
    """The outcome of one `ocellus filter` process over all inputs."""

    ops: str
    extra: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    outdir: Path
    binary: Path
    inputs: dict[str, "RefImage"]

    def output(self, name: str) -> Image.Image:
        """The PNG written for input `name`; fails the test when absent.

        When the batch run did not write it (the process may stop at the first
        failing file), the image is run alone, so that the failure message is
        that image's own error."""
        path = self.outdir / f"{name}.png"
        proc = None
        if not path.is_file():
            alone = self.outdir / f"alone_{name}"
            proc = run_ocellus(self.binary, self.ops, [self.inputs[name].path], alone, *self.extra)
            path = alone / f"{name}.png"
        if not path.is_file():
            pytest.fail(
                f"`ocellus filter --ops {self.ops}` wrote no {path.name} for {name} "
                f"(exit {proc.returncode}); stderr:\n{proc.stderr[-2000:]}",
                pytrace=False,
            )
        with Image.open(path) as im:
            im.load()
            return im


def run_ocellus(
    binary: Path, ops: str, files: list[Path], outdir: Path, *extra: str
) -> subprocess.CompletedProcess:
    """Runs `ocellus filter --local --ops OPS --format png -o OUTDIR FILES`."""
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = [str(binary), "filter", "--local", "--ops", ops, "--format", "png", "-o", str(outdir)]
    cmd += list(extra) + [str(f) for f in files]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def filtered(ocellus_bin, images, tmp_path_factory):
    """`filtered(ops, *extra_args)` runs ocellus once per distinct call over
    every input image (one process, cached for the session)."""
    cache: dict[tuple[str, tuple[str, ...]], FilterRun] = {}
    root = tmp_path_factory.mktemp("outputs")

    def run(ops: str, *extra: str) -> FilterRun:
        key = (ops, extra)
        if key not in cache:
            outdir = root / f"run{len(cache)}"
            files = [img.path for img in images.values()]
            proc = run_ocellus(ocellus_bin, ops, files, outdir, *extra)
            cache[key] = FilterRun(
                ops, extra, proc.returncode, proc.stdout, proc.stderr, outdir, ocellus_bin, images
            )
        return cache[key]

    return run
