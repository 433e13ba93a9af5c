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
