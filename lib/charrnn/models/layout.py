"""Moving per-step blocks between the gated cells' layouts, fast."""
from __future__ import annotations

import numpy as np


def swap_time_and_rows(src, dst) -> None:
    """Copy src (T, R, B) into dst (R, T, B). Each row's B entries are contiguous in both, so they
    move as one item (a void dtype of B entries): a transpose of T x R items, twice as fast as
    NumPy's copy of a transposed float view."""
    item = np.dtype((np.void, src.shape[2] * src.itemsize))
    np.copyto(dst.view(item)[..., 0], src.view(item)[..., 0].transpose(1, 0))
