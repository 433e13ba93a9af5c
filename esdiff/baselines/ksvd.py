"""K-SVD inpainting: a dictionary learned from the image's own known pixels.

Aharon, Elad & Bruckstein 2006, "K-SVD: an algorithm for designing overcomplete dictionaries for
sparse representation", IEEE Trans. Signal Process. 54(11); with the masked (weighted) variant for
inpainting of Mairal, Elad & Sapiro 2008, "Sparse representation for color image restoration",
IEEE Trans. Image Process. 17(1), Section IV.

Overlapping ``patch`` x ``patch`` x 3 patches are vectors; the dictionary starts as the overcomplete
2-D DCT (one grey atom per frequency). Each of ``iterations`` rounds sparse-codes ``train_patches``
random patches by masked OMP (atoms restricted to, and normalised on, each patch's known rows) and
updates every atom and its coefficients by the best rank-1 fit of its residual on the known entries
only. Finally every patch on a grid of step ``stride`` is coded, rebuilt from the full atoms, and
overlapping patches are averaged.

Each patch is coded after subtracting its per-channel mean over its known pixels (added back after):
the DCT atoms are grey, and without this the colour of a patch cannot be represented.

Default settings (``DEFAULTS``): ``patch=8``, ``atoms=256``, ``sparsity=6`` (atoms per patch at
most), ``tolerance=0.01`` (OMP stops once the RMS error on the known entries is below this),
``iterations=5``, ``train_patches=8000``, ``stride=1``, ``chunk=4096`` (patches coded at once).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from esdiff.baselines.common import check_inputs, merge_settings

DEFAULTS: dict = {
    "patch": 8,
    "atoms": 256,
    "sparsity": 6,
    "tolerance": 0.01,
    "iterations": 5,
    "train_patches": 8000,
    "stride": 1,
    "chunk": 4096,
}


def inpaint(
    image: np.ndarray,
    known: np.ndarray,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    **settings,
) -> np.ndarray:
    """Fill the pixels where ``known`` is False with a K-SVD dictionary learned on the known pixels."""
    cfg = merge_settings("ksvd", DEFAULTS, settings)
    image, known = check_inputs(image, known)
    p = cfg["patch"]
    if min(known.shape) < p:
        raise ValueError(f"image {known.shape} is smaller than the patch size {p}")
    rng = np.random.default_rng(seed)
    observed = np.where(known[..., None], image, 0.0)
    signals = _patches(observed, p)  # views, (rows, cols, 3, p, p)
    masks = _patches(np.repeat(known[..., None], 3, axis=2).astype(np.float64), p)
    rows, cols = signals.shape[:2]
    total = cfg["iterations"] + 1

    fallback = observed.sum(axis=(0, 1)) / max(known.sum(), 1)  # channel means, for empty patches
    pick = np.divmod(
        rng.choice(rows * cols, size=min(cfg["train_patches"], rows * cols), replace=False), cols
    )
    m = masks[pick].reshape(len(pick[0]), -1)
    x, _ = _centre(signals[pick].reshape(m.shape), m, fallback)
    dictionary = overcomplete_dct(p, cfg["atoms"])
    for it in range(cfg["iterations"]):
        idx, coef = masked_omp(dictionary, x, m, cfg["sparsity"], cfg["tolerance"], cfg["chunk"])
        dictionary = ksvd_update(dictionary, x, m, idx, coef, rng)
        if progress is not None:
            progress(it + 1, total)

    grid_r, grid_c = _grid(rows, cfg["stride"]), _grid(cols, cfg["stride"])
    m = masks[np.ix_(grid_r, grid_c)].reshape(len(grid_r) * len(grid_c), -1)
    x, mean = _centre(signals[np.ix_(grid_r, grid_c)].reshape(m.shape), m, fallback)
    idx, coef = masked_omp(dictionary, x, m, cfg["sparsity"], cfg["tolerance"], cfg["chunk"])
    recon = _reconstruct(dictionary, idx, coef) + np.repeat(mean, p * p, axis=1)
    recon = recon.reshape(len(grid_r), len(grid_c), 3, p, p)
    out = _average(recon, grid_r, grid_c, known.shape)
    if progress is not None:
        progress(total, total)
    return np.where(known[..., None], image, np.clip(out, 0.0, 1.0))


def overcomplete_dct(patch: int, atoms: int) -> np.ndarray:
    """Separable overcomplete DCT (Aharon et al. Section V), grey atoms: ``3 patch^2`` x ``atoms``."""
    side = int(np.ceil(np.sqrt(atoms)))
    k = np.arange(side)
    basis = np.cos(np.outer(np.arange(patch), k) * np.pi / side)
    basis[:, 1:] -= basis[:, 1:].mean(axis=0)
    basis /= np.linalg.norm(basis, axis=0)
    grey = np.kron(basis, basis)[:, :atoms]  # (patch^2, atoms), row = (i, j)
    colour = np.concatenate([grey, grey, grey]) / np.sqrt(3.0)  # rows = (channel, i, j)
    return colour


def masked_omp(
    dictionary: np.ndarray,
    x: np.ndarray,
    m: np.ndarray,
    sparsity: int,
    tolerance: float,
    chunk: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal matching pursuit on each signal's known rows (``m`` = 1), all signals at once.

    ``x``: (N, n) signals (zero where unknown); returns atom indices (N, sparsity) and coefficients
    (N, sparsity) of the full atoms; unused slots have coefficient 0.
    """
    parts = [
        _omp_chunk(dictionary, x[s : s + chunk], m[s : s + chunk], sparsity, tolerance)
        for s in range(0, len(x), chunk)
    ]
    return np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts])


def _omp_chunk(
    dictionary: np.ndarray, x: np.ndarray, m: np.ndarray, sparsity: int, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    n_sig = len(x)
    norms = np.sqrt(np.maximum(m @ dictionary**2, 1e-12))  # atom norms on each signal's known rows
    limit = tolerance**2 * m.sum(axis=1)
    x = x * m
    idx = np.zeros((n_sig, sparsity), dtype=np.int64)
    coef = np.zeros((n_sig, sparsity))
    atoms = np.zeros((n_sig, sparsity, x.shape[1]))  # chosen atoms restricted to the known rows
    gram = np.zeros((n_sig, sparsity, sparsity))
    rhs = np.zeros((n_sig, sparsity))
    active = np.ones(n_sig, dtype=bool)
    residual = x
    rows = np.arange(n_sig)[:, None]
    for k in range(sparsity):
        active &= (residual**2).sum(axis=1) > limit
        if not active.any():
            break
        score = np.abs(residual @ dictionary) / norms
        score[rows, idx[:, :k]] = -1.0
        idx[:, k] = np.where(active, score.argmax(axis=1), idx[:, 0])
        atoms[:, k] = dictionary.T[idx[:, k]] * m * active[:, None]  # done signals get no new atom
        gram[:, : k + 1, k] = gram[:, k, : k + 1] = np.einsum("nkd,nd->nk", atoms[:, : k + 1], atoms[:, k])
        rhs[:, k] = (atoms[:, k] * x).sum(axis=1)
        sol = np.linalg.solve(gram[:, : k + 1, : k + 1] + 1e-10 * np.eye(k + 1), rhs[:, : k + 1, None])[
            ..., 0
        ]
        coef[:, : k + 1] = sol
        residual = x - np.einsum("nk,nkd->nd", sol, atoms[:, : k + 1])
    return idx, coef


def ksvd_update(
    dictionary: np.ndarray,
    x: np.ndarray,
    m: np.ndarray,
    idx: np.ndarray,
    coef: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """One K-SVD dictionary pass (Aharon et al. Section IV) counting only the known entries.

    Each atom and its coefficients get the best rank-1 fit of their residual on the known entries
    (the weighted K-SVD of Mairal et al. Section IV, solved by alternating least squares).
    """
    dictionary = dictionary.copy()
    coef = coef.copy()
    residual = ((x - _reconstruct(dictionary, idx, coef)) * m).T  # (n, N)
    used = coef != 0.0
    energy = (residual**2).sum(axis=0)
    for k in rng.permutation(dictionary.shape[1]):
        sig, slot = np.nonzero((idx == k) & used)
        if len(sig) == 0:  # unused atom: replace it by the worst-represented residual
            worst = int(np.argmax(energy))
            energy[worst] = 0.0
            dictionary[:, k] = residual[:, worst] / max(np.linalg.norm(residual[:, worst]), 1e-12)
            continue
        weight = m[sig].T
        err = residual[:, sig] + np.outer(dictionary[:, k], coef[sig, slot]) * weight
        atom, row = _rank_one(err, weight, dictionary[:, k])
        dictionary[:, k] = atom
        coef[sig, slot] = row
        residual[:, sig] = (err - np.outer(atom, row)) * weight
    return dictionary


def _rank_one(
    err: np.ndarray, weight: np.ndarray, atom: np.ndarray, steps: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted rank-1 fit ``min ||weight * (err - atom row^T)||`` by alternating least squares.

    ``err``, ``weight``: (n, m); starts from ``atom``; returns a unit atom and its coefficient row.
    """
    for _ in range(steps):
        row = (atom @ (weight * err)) / np.maximum(atom**2 @ weight, 1e-12)
        atom = ((weight * err) @ row) / np.maximum(weight @ row**2, 1e-12)
    scale = max(np.linalg.norm(atom), 1e-12)
    return atom / scale, row * scale


def _centre(x: np.ndarray, m: np.ndarray, fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subtract each patch's per-channel mean over its known pixels; returns (centred x * m, means)."""
    n_sig = len(x)
    total = (x * m).reshape(n_sig, 3, -1).sum(axis=2)
    count = m.reshape(n_sig, 3, -1).sum(axis=2)
    mean = np.where(count > 0, total / np.maximum(count, 1), fallback)
    centred = (x - np.repeat(mean, x.shape[1] // 3, axis=1)) * m
    return centred, mean


def _reconstruct(dictionary: np.ndarray, idx: np.ndarray, coef: np.ndarray) -> np.ndarray:
    return np.einsum("nk,nkd->nd", coef, dictionary.T[idx])


def _patches(arr: np.ndarray, p: int) -> np.ndarray:
    """All p x p patches of an HxWx3 array, a (rows, cols, 3, p, p) view (flattened: channel, i, j)."""
    return sliding_window_view(arr, (p, p), axis=(0, 1))


def _grid(n: int, stride: int) -> np.ndarray:
    """Patch origins 0, stride, ... with the last origin always included so every pixel is covered."""
    return np.unique(np.r_[np.arange(0, n, stride), n - 1])


def _average(recon: np.ndarray, grid_r: np.ndarray, grid_c: np.ndarray, shape: tuple) -> np.ndarray:
    """Average overlapping patches ``recon`` (gr, gc, 3, p, p) back into an HxWx3 image."""
    p = recon.shape[-1]
    acc = np.zeros((*shape, 3))
    count = np.zeros(shape)
    for i in range(p):
        for j in range(p):
            r, c = np.ix_(grid_r + i, grid_c + j)
            np.add.at(acc, (r, c), recon[:, :, :, i, j])
            np.add.at(count, (r, c), 1.0)
    return acc / count[..., None]
