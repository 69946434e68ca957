"""The benchmark's count of the matrix products, held to the products the fast paths really make."""
import numpy as np
import pytest

from charrnn import bench
from charrnn.models import get_cell


@pytest.mark.parametrize("dtype", [np.float64, np.float32])     # float32: the GRUs' compiled kernels, if numba is there
@pytest.mark.parametrize("cell", ["gru", "lstm", "gru2"])
def test_flop_count_is_the_products_a_training_update_makes(cell, dtype, monkeypatch):
    """Every np.dot of one forward and backward pass, 2 M N K each, except the one-hot products for dU
    (which bench does not count, and the kernels replace): per character, what matmul_flops_per_char says.
    The first step's backward recurrent product is the one the loop skips (h_0 takes no gradient), per layer."""
    c = get_cell(cell)
    B, T, K, m = 3, 4, 7, 5
    params = c.init_params(K, m, 0.1, seed=0, dtype=dtype)
    ws = c.workspace(B, T, K, m, dtype)
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, K, (B, T)), rng.integers(0, K, (B, T))
    S0 = rng.standard_normal((B, c.state_size(m))).astype(dtype)
    flops, dot = [], np.dot
    onehot = ws.low.onehot if cell == "gru2" else ws.onehot      # the one-hot rows built for dU

    def counting(a, b, out=None):
        if not (np.shares_memory(a, onehot) or np.shares_memory(b, onehot)):
            flops.append(2 * a.shape[0] * (a.shape[1] if a.ndim == 2 else 1) * (b.shape[1] if b.ndim == 2 else 1))
        return dot(a, b, out)

    monkeypatch.setattr(np, "dot", counting)
    _, cache = c.forward_batch(params, X, Y, S0, ws)
    c.backward_batch(params, cache)
    monkeypatch.undo()
    G = params["W"].shape[0] // m
    skipped = c.LAYERS * 2 * G * m * m * B                       # t = 0 backward, per layer
    assert sum(flops) + skipped == bench.matmul_flops_per_char(G, K, m, c.LAYERS) * B * T
