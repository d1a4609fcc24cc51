"""SIFT-like 1M x 128 vectors from Debian's wallpaper and sky-image packages.

The classic SIFT1M set cannot be downloaded here, so this builds one of the
same kind offline (recipe in shared/DATASETS.md): OpenCV SIFT descriptors of
real photographs and artworks shipped by Debian packages — 128 dimensions,
uint8-valued, mean norm about 512, clustered the way image features are.

    python3 bench/sift_like.py OUT_DIR [--debs DIR]   (DIR: keep the .debs there)

writes OUT_DIR/base.npy (1,000,000 x 128 uint8, distinct rows) and
OUT_DIR/queries.npy (10,000 x 128 uint8, from images the base set never saw,
none equal to a base row). Needs numpy and opencv-python-headless
(bench/run.sh installs both); deterministic for the same packages.
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile

PACKAGES = ["gnome-backgrounds", "mate-backgrounds", "plasma-workspace-wallpapers",
            "ukui-wallpapers", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04",
            "stellarium-data"]
BASE_ROWS = 1_000_000
QUERY_ROWS = 10_000
HELD_OUT_IMAGES = 30
PER_IMAGE = 15_000
MAX_SIDE = 1600


def log(msg):
    print(f"sift_like: {msg}", file=sys.stderr, flush=True)


def unpack(debs, root):
    """The packages' files under `root`; downloads the .debs into `debs`
    (apt-get download) when they are not there yet."""
    os.makedirs(debs, exist_ok=True)
    missing = [p for p in PACKAGES if not glob.glob(os.path.join(debs, f"{p}_*.deb"))]
    if missing:
        log(f"downloading {' '.join(missing)}")
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True,
                       stdout=subprocess.DEVNULL)
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        subprocess.run(["dpkg", "-x", deb, root], check=True)


def images(root):
    """Image files large enough to give descriptors, in a stable order."""
    found = []
    for ext in ("jpg", "jpeg", "png", "JPG", "PNG"):
        found += glob.glob(os.path.join(root, "**", f"*.{ext}"), recursive=True)
    return sorted(f for f in set(found) if os.path.getsize(f) > 50_000)


def descriptors(path, cv2, np):
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        return None
    scale = MAX_SIDE / max(img.shape)
    if scale < 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    _, d = cv2.SIFT_create(nfeatures=PER_IMAGE).detectAndCompute(img, None)
    if d is None:
        return None
    return np.clip(np.rint(d), 0, 255).astype(np.uint8)


def main():
    import cv2
    import numpy as np
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--debs", default=None)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cv2.setNumThreads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as root:
        unpack(args.debs or os.path.join(root, "debs"), os.path.join(root, "files"))
        files = images(os.path.join(root, "files"))
        log(f"{len(files)} images")
        order = np.random.default_rng(128).permutation(len(files))
        held = set(order[:HELD_OUT_IMAGES].tolist())
        base, queries = [], []
        for i, f in enumerate(files):
            d = descriptors(f, cv2, np)
            if d is not None:
                (queries if i in held else base).append(d)
            if i % 200 == 0:
                log(f"{i}/{len(files)} images, {sum(len(b) for b in base):,} base descriptors")
    base = np.unique(np.concatenate(base), axis=0)
    queries = np.unique(np.concatenate(queries), axis=0)
    log(f"{len(base):,} distinct base descriptors, {len(queries):,} held-out ones")
    if len(base) < BASE_ROWS or len(queries) < QUERY_ROWS:
        sys.exit(f"sift_like: too few descriptors ({len(base)}, {len(queries)})")
    rng = np.random.default_rng(1)
    base = base[np.sort(rng.choice(len(base), BASE_ROWS, replace=False))]
    rng.shuffle(base)
    # held-out descriptors equal to a base row would be found at distance 0
    seen = {bytes(r) for r in base}
    queries = np.array([q for q in queries if bytes(q) not in seen])
    queries = queries[rng.choice(len(queries), QUERY_ROWS, replace=False)]
    np.save(os.path.join(args.out, "base.npy"), base)
    np.save(os.path.join(args.out, "queries.npy"), queries)
    log(f"wrote {args.out}/base.npy {base.shape}, queries.npy {queries.shape}, "
        f"mean norm {np.linalg.norm(base.astype(np.float32), axis=1).mean():.0f}")


if __name__ == "__main__":
    main()
