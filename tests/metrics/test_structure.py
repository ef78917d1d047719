"""Edge-map SSIM, the structure-preservation measure of the editing runs, on constructed images."""

import pytest
import torch

from sonic.metrics.structure import edge_map, edge_ssim, edge_ssim_matrix


def square(lo: int = 8, hi: int = 24, size: int = 32) -> torch.Tensor:
    x = torch.zeros(1, 3, size, size)
    x[..., lo:hi, lo:hi] = 1.0
    return x


def test_edges_of_a_flat_image_are_zero_and_of_a_square_lie_on_its_border():
    assert edge_map(torch.full((1, 3, 16, 16), 0.7)).abs().max() == 0
    edges = edge_map(square())[0, 0]
    assert edges.max() == 1.0
    assert edges[16, 16] == 0 and edges[2, 2] == 0  # inside and outside the square
    assert edges[16, 8] > 0.5 and edges[8, 16] > 0.5  # on its left and top borders


def test_recolouring_keeps_the_structure_and_moving_it_does_not():
    x = square()
    recoloured = x * torch.tensor([0.9, 0.2, 0.4]).view(1, 3, 1, 1) + 0.05  # other colour, same boundaries
    assert edge_ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert edge_ssim(x, recoloured).item() == pytest.approx(1.0, abs=1e-5)
    moved = square(14, 30)
    half = torch.zeros(1, 3, 32, 32)
    half[..., 16:] = 1.0
    assert edge_ssim(x, moved).item() < 0.6
    assert edge_ssim(x, half).item() < 0.4


def test_matrix_pairs_every_edit_with_every_source():
    sources = torch.cat([square(), square(14, 30)])
    edits = torch.cat([square() * 0.5, square(14, 30) * 0.8, square()])
    m = edge_ssim_matrix(edits, sources)
    assert m.shape == (3, 2)
    assert torch.equal(m.argmax(1), torch.tensor([0, 1, 0]))


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="differ in shape"):
        edge_ssim(square(), square(size=16))
    with pytest.raises(ValueError, match="B, 3, H, W"):
        edge_map(torch.zeros(3, 8, 8))
