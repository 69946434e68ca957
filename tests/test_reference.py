"""The per-step reference (charrnn.models.reference) of every cell: its loss, every gradient and the final
state equal the fast path's, stream by stream, at B = 1 and B > 1; its gradients equal centred
differences of its own loss; the sampler's `step` follows it."""
import numpy as np
import pytest

from charrnn.models import reference
from test_cells import CELLS, case, workspace

RTOL = 1e-10


def assert_close(got, want, what):
    """Element-wise |got - want| <= RTOL |want| + 1e-12 max|want|: relative, with an absolute floor
    only for the entries that are round-off next to the array's largest."""
    want = np.asarray(want)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-12 * max(np.abs(want).max(), 1e-300), err_msg=what)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("B", [1, 3])
def test_the_reference_equals_the_fast_path(name, B):
    """Each stream alone: the fast path's loss, gradients and final state are the reference's (rtol 1e-10).
    The B streams at once (for the rnn at B = 1 the assignment's single-sequence path): the sums."""
    K, m, T = 7, 5, 8
    cell, params, X, Y, S0 = case(name, K, m, T, B, sigma=1.0, seed=20 + B)
    refs = [reference.loss_and_grads(name, params, X[i], Y[i], S0[i]) for i in range(B)]
    for i, (loss, grads, s_T) in enumerate(refs):
        assert loss > 0 and set(grads) == set(params)
        ws = workspace(name, 1, T, K, m)                # for the rnn the batched code, at one stream
        fast, cache = cell.forward_batch(params, X[i:i + 1], Y[i:i + 1], S0[i:i + 1], ws)
        fast_grads, fast_S = cell.backward_batch(params, cache)
        assert fast == pytest.approx(loss, rel=RTOL, abs=0), (name, i)
        for k in params:
            assert grads[k].shape == params[k].shape and grads[k].dtype == np.float64, k
            assert np.abs(grads[k]).max() > 0, k
            assert_close(fast_grads[k], grads[k], f"{name} stream {i} d{k}")
        assert_close(fast_S[0], s_T, f"{name} stream {i} final state")

    fast, cache = cell.forward_batch(params, X, Y, S0, cell.workspace(B, T, K, m))
    fast_grads, fast_S = cell.backward_batch(params, cache)
    assert fast == pytest.approx(sum(r[0] for r in refs), rel=RTOL, abs=0)
    for k in params:
        assert_close(fast_grads[k], sum(r[1][k] for r in refs), f"{name} B={B} d{k}")
    assert_close(fast_S, np.array([r[2] for r in refs]), f"{name} B={B} final states")


@pytest.mark.parametrize("name", CELLS)
def test_the_reference_gradients_equal_centred_differences(name):
    """A tiny model in float64: four entries of every parameter (the largest gradient and three at random),
    (L(theta + h) - L(theta - h)) / 2h of the reference's own loss, h = 1e-5, agree with its backward
    pass to 1e-6 relative (the differences' error is about 1e-9 here)."""
    K, m, T = 5, 3, 6
    _, params, X, Y, S0 = case(name, K, m, T, 1, sigma=0.9, seed=31)
    x, y, s0 = X[0], Y[0], S0[0]
    _, grads, _ = reference.loss_and_grads(name, params, x, y, s0)
    rng = np.random.default_rng(0)
    h = 1e-5
    for k, v in params.items():
        flat, g = v.reshape(-1), grads[k].reshape(-1)
        picks = {int(np.argmax(np.abs(g)))} | set(rng.choice(flat.size, 3, replace=False).tolist())
        for i in picks:
            old = flat[i]
            flat[i] = old + h
            up = reference.forward(name, params, x, y, s0)[0]
            flat[i] = old - h
            down = reference.forward(name, params, x, y, s0)[0]
            flat[i] = old
            num = (up - down) / (2 * h)
            assert abs(g[i] - num) <= 1e-6 * max(abs(g[i]), abs(num)) + 1e-9, (name, k, i, g[i], num)
        assert abs(g).max() > 1e-3, k                  # the largest entry checked is not round-off


@pytest.mark.parametrize("name", CELLS)
def test_the_sampler_step_follows_the_reference(name):
    """cell.step, one character at a time: after every prefix of the sequence its state is the reference's
    final state, and its logits give the reference's loss for the prefix."""
    K, m, T = 6, 4, 7
    cell, params, X, Y, S0 = case(name, K, m, T, 1, sigma=1.0, seed=41)
    s, total = S0[0], 0.0
    for t in range(T):
        s, o = cell.step(params, s, int(X[0, t]))
        total += np.log(np.exp(o - o.max()).sum()) + o.max() - o[Y[0, t]]
        loss, s_ref, _ = reference.forward(name, params, X[0, :t + 1], Y[0, :t + 1], S0[0])
        assert_close(s, s_ref, f"{name} state after {t + 1} steps")
        assert total == pytest.approx(loss, rel=RTOL, abs=0)


def test_the_reference_refuses_what_does_not_fit():
    K, m, T = 5, 3, 4
    _, params, X, Y, S0 = case("lstm", K, m, T, 1, sigma=0.5, seed=8)
    x, y, s0 = X[0], Y[0], S0[0]
    with pytest.raises(ValueError, match="cell must be one of rnn, gru, lstm, gru2"):
        reference.loss_and_grads("elman", params, x, y, s0)
    with pytest.raises(ValueError, match=r"state0 must have shape \(6,\)"):
        reference.loss_and_grads("lstm", params, x, y, s0[:m])
    with pytest.raises(ValueError, match="same positive length"):
        reference.loss_and_grads("lstm", params, x, y[:-1], s0)
    bad = x.copy()
    bad[1] = -1
    with pytest.raises(IndexError, match="x holds ids outside 0..4"):
        reference.loss_and_grads("lstm", params, bad, y, s0)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    loss, grads, s = reference.loss_and_grads("lstm", p32, x, y, s0.astype(np.float32))
    assert s.dtype == np.float64 and all(g.dtype == np.float64 for g in grads.values())   # computed in float64
    assert loss == pytest.approx(reference.loss_and_grads("lstm", params, x, y, s0)[0], rel=1e-6)
