import pytest
import torch

from esdiff.patches import make_grid


def test_lab_grid_for_256() -> None:
    grid = make_grid(256, 256)
    assert grid.ys == (28, 85, 142, 199, 227) and grid.xs == grid.ys
    assert grid.count == 25 and grid.canvas == (320, 320)


@pytest.mark.parametrize("mode", ["overlap", "tile"])
@pytest.mark.parametrize("size", [(257, 311), (64, 64), (65, 1000), (256, 256), (10, 10), (1, 200)])
def test_cut_then_stitch_is_identity(mode: str, size: tuple[int, int]) -> None:
    grid = make_grid(*size, mode=mode)  # type: ignore[arg-type]
    x = torch.rand(3, *size)
    patches = grid.cut(x)
    assert patches.shape == (grid.count, 3, 64, 64)
    assert torch.equal(grid.stitch(patches), x)


def test_padding_is_zero_and_windows_cover_the_image() -> None:
    grid = make_grid(100, 130)
    ones = grid.cut(torch.ones(100, 130))
    assert ones.sum() < grid.count * 64 * 64  # padding present
    covered = grid.stitch(torch.ones(grid.count, 64, 64))
    assert torch.equal(covered, torch.ones(100, 130))


def test_tile_mode_does_not_overlap() -> None:
    grid = make_grid(256, 256, mode="tile")
    assert grid.count == 25 and grid.ys == (0, 64, 128, 192, 256)


def test_bad_size() -> None:
    with pytest.raises(ValueError):
        make_grid(0, 5)


@pytest.mark.parametrize("mode", ["overlap", "tile"])
def test_touching_names_the_patches_that_stitch_onto_wanted_pixels(mode: str) -> None:
    """Against a brute force: patch k touches a pixel iff a stitch of k alone (ones) lands on it."""
    grid = make_grid(100, 130, mode=mode)  # type: ignore[arg-type]
    wanted = torch.rand(100, 130, generator=torch.Generator().manual_seed(0)) > 0.9995
    brute = []
    for k in range(grid.count):
        alone = torch.zeros(grid.count, 64, 64)
        alone[k] = 1
        if bool((grid.stitch(alone) > 0)[wanted].any()):
            brute.append(k)
    assert grid.touching(wanted) == brute and 0 < len(brute) < grid.count
    assert grid.touching(torch.zeros(100, 130, dtype=torch.bool)) == []


def test_a_cut_of_some_windows_is_those_of_the_full_cut() -> None:
    grid = make_grid(257, 311)
    x = torch.rand(3, 257, 311)
    picked = [0, 5, grid.count - 1]
    assert torch.equal(grid.cut(x, picked), grid.cut(x)[picked])


def test_fill_patches_skips_patches_without_a_wanted_pixel() -> None:
    """Only windows over a wanted pixel run; the wanted pixels get what a full stitch gives them, every
    other pixel keeps the image; batches carry their grid indices and the run's count."""
    from esdiff.patches import PatchBatch, fill_patches

    image = torch.rand(3, 200, 150)
    known = torch.ones(200, 150, dtype=torch.bool)
    known[100:110, 20:25] = False
    grid = make_grid(200, 150)
    seen: list[PatchBatch] = []

    def fill(batch: PatchBatch) -> torch.Tensor:
        seen.append(batch)
        return batch.y * 2 + torch.tensor(batch.indices, dtype=torch.float32).view(-1, 1, 1, 1)

    out = fill_patches(image, known, fill, batch_size=2, wanted=~known)
    order = grid.touching(~known)
    assert [k for b in seen for k in b.indices] == order and [b.done for b in seen] == list(
        range(0, len(order), 2)
    )
    assert all(b.total == len(order) for b in seen)
    full = grid.stitch(grid.cut(image) * 2 + torch.arange(grid.count, dtype=torch.float32).view(-1, 1, 1, 1))
    assert torch.equal(out[:, ~known], full[:, ~known])
    assert torch.equal(out[:, :50], image[:, :50])  # no window that ran stitches onto these rows


def test_fill_images_shares_batches_and_gives_each_image_its_own_fill() -> None:
    """One queue over several images: batches span images (``sources`` says which), and each image's
    result is what ``fill_patches`` gives it alone."""
    from esdiff.patches import PatchBatch, fill_images, fill_patches

    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(3, h, w, generator=gen) for h, w in [(90, 130), (64, 64), (150, 70)]]
    knowns = [torch.rand(i.shape[1:], generator=gen) > 0.1 for i in images]
    seen: list[PatchBatch] = []

    def fill(batch: PatchBatch) -> torch.Tensor:
        seen.append(batch)
        return batch.y * 3 - torch.tensor(batch.indices, dtype=torch.float32).view(-1, 1, 1, 1)

    out = fill_images(images, knowns, fill, batch_size=4, wanted=[~k for k in knowns])
    counts = [make_grid(*i.shape[1:]).count for i in images]  # every window holds a missing pixel here
    assert [s for b in seen for s in b.sources] == [i for i, n in enumerate(counts) for _ in range(n)]
    assert any(len(set(b.sources)) > 1 for b in seen) and all(b.total == sum(counts) for b in seen)
    for image, known, result in zip(images, knowns, out, strict=True):
        assert torch.equal(result, fill_patches(image, known, fill, batch_size=4, wanted=~known))
