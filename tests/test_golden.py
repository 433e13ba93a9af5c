"""Golden output of the default sampler: ``inpaint_image`` at default settings with the built-in model, seed
0, one thread, on a 64x64 crop of scikit-image's astronaut whose mask has scattered holes (random 50 %)
and a solid 28 px box, so the run takes the paths of both kinds of hole (the solid-hole fill, the
low-rank trend, a hole depth between 0 and 1).

Regenerate only on purpose, when a change is meant to move the defaults' output (and say so in
CHANGELOG.md): ``OMP_NUM_THREADS=1 python tests/test_golden.py``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

GOLDEN = Path(__file__).parent / "data" / "golden_default_astronaut64.npz"


def golden_case() -> np.ndarray:
    """The default sampler's output on the case (float32 HxWx3), computed on one thread."""
    from skimage import data

    from esdiff.inpaint import inpaint_image
    from esdiff.masks import resolve_mask

    image = (data.astronaut()[100:164, 150:214] / 255.0).astype(np.float32)
    known = resolve_mask("random:0.5", 64, 64, seed=0) & resolve_mask("box:18,20,28,28", 64, 64)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = inpaint_image(np.where(known[..., None], image, 0.0), known, seed=0)
    finally:
        torch.set_num_threads(before)
    return out.astype(np.float32)


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def test_default_sampler_matches_golden_output() -> None:
    saved = np.load(GOLDEN)
    out = golden_case()
    np.testing.assert_array_equal(out, saved["out"])
    assert digest(out) == str(saved["sha256"])


if __name__ == "__main__":
    result = golden_case()
    np.savez_compressed(GOLDEN, out=result, sha256=np.array(digest(result)))
    print(f"wrote {GOLDEN} ({digest(result)})")
