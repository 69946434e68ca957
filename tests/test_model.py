"""The model maths: shapes, the initial loss, gradients against centred differences."""
import numpy as np
import pytest

from charrnn import Vocabulary, init_params, loss_and_grads, numerical_grads, relative_errors
from charrnn.gradcheck import sample_entries
from charrnn.models import mean_loss_per_char as _mlpc, rnn
from charrnn.models.rnn import PARAM_NAMES, Workspace, backward, forward


def mean_loss_per_char(params, ids, chunk=4096):
    return _mlpc(rnn, params, ids, chunk=chunk)

# 80 distinct characters, as many as the course corpus has
ALPHABET80 = "".join(chr(c) for c in range(32, 112))


def seq(K, n, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, K, n + 1)
    return ids[:-1], ids[1:]


def test_init_params_shapes_and_scale():
    p = init_params(80, 100, sigma=0.01, seed=0)
    assert {k: v.shape for k, v in p.items()} == {"U": (100, 80), "W": (100, 100), "V": (80, 100),
                                                   "b": (100,), "c": (80,)}
    assert all(v.dtype == np.float64 for v in p.values())
    assert not p["b"].any() and not p["c"].any()
    assert 0.009 < p["W"].std() < 0.011
    assert np.array_equal(p["U"], init_params(80, 100, seed=0)["U"])
    assert not np.array_equal(p["U"], init_params(80, 100, seed=1)["U"])


def test_initial_loss_is_about_seq_length_log_K():
    K, m, L = 80, 100, 25
    x, y = seq(K, L, 0)
    loss, _, _ = loss_and_grads(init_params(K, m, seed=0), x, y, np.zeros(m))
    assert loss == pytest.approx(L * np.log(K), rel=0.01)


def test_loss_matches_direct_softmax():
    K, m, L = 7, 4, 6
    p = init_params(K, m, sigma=0.7, seed=3)
    x, y = seq(K, L, 1)
    h, total = np.zeros(m), 0.0
    for t in range(L):
        h = np.tanh(p["W"] @ h + p["U"][:, x[t]] + p["b"])
        o = p["V"] @ h + p["c"]
        total -= o[y[t]] - np.log(np.exp(o).sum())
    loss, _, h_last = loss_and_grads(p, x, y, np.zeros(m))
    assert loss == pytest.approx(total, rel=1e-12)
    assert np.allclose(h_last, h, rtol=1e-12, atol=0)


def test_gradients_at_assignment_initialisation():
    """sigma=0.01, m=5, K=80, seq_length=25: whole-array error below 1e-6 for every parameter."""
    vocab = Vocabulary.from_text(ALPHABET80)
    assert len(vocab) == 80
    x, y = seq(80, 25, 2)
    p = init_params(80, 5, sigma=0.01, seed=0)
    _, grads, _ = loss_and_grads(p, x, y, np.zeros(5))
    table = relative_errors(grads, numerical_grads(p, x, y, np.zeros(5), h=1e-4))
    for name in PARAM_NAMES:
        assert table[name]["norm"] < 1e-6, (name, table[name])
        assert table[name]["checked"] == p[name].size


def test_gradients_elementwise_with_large_weights():
    """sigma=0.5, K=7, m=5, seq_length=9: element-wise max relative error below 1e-6."""
    x, y = seq(7, 9, 4)
    p = init_params(7, 5, sigma=0.5, seed=1)
    h0 = np.tanh(np.random.default_rng(5).standard_normal(5))
    _, grads, _ = loss_and_grads(p, x, y, h0)
    table = relative_errors(grads, numerical_grads(p, x, y, h0, h=1e-4))
    for name in PARAM_NAMES:
        assert table[name]["max"] < 1e-6, (name, table[name])


def test_gradients_sampled_at_m100():
    K, m = 80, 100
    x, y = seq(K, 25, 6)
    p = init_params(K, m, sigma=0.01, seed=2)
    _, grads, _ = loss_and_grads(p, x, y, np.zeros(m))
    entries = sample_entries(p, 200, seed=0)
    assert sum(len(v) for v in entries.values()) >= 200
    num = numerical_grads(p, x, y, np.zeros(m), entries=entries)
    table = relative_errors(grads, num)
    a = np.concatenate([grads[k].ravel()[entries[k]] for k in PARAM_NAMES])
    n = np.concatenate([num[k].ravel()[entries[k]] for k in PARAM_NAMES])
    assert np.linalg.norm(a - n) / max(np.linalg.norm(a), np.linalg.norm(n)) < 1e-5
    for name in PARAM_NAMES:
        assert table[name]["checked"] == len(entries[name])


def test_a_wrong_gradient_is_caught():
    """The check has teeth: a gradient off by 1% in one entry fails the bound."""
    x, y = seq(7, 9, 4)
    p = init_params(7, 5, sigma=0.5, seed=1)
    _, grads, _ = loss_and_grads(p, x, y, np.zeros(5))
    grads["W"][1, 2] *= 1.01
    table = relative_errors(grads, numerical_grads(p, x, y, np.zeros(5)))
    assert table["W"]["max"] > 1e-3
    assert table["U"]["max"] < 1e-6


def test_float32_agrees_with_float64():
    K, m = 30, 20
    x, y = seq(K, 25, 7)
    p64 = init_params(K, m, sigma=0.1, seed=0)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    l64, g64, _ = loss_and_grads(p64, x, y, np.zeros(m))
    l32, g32, h32 = loss_and_grads(p32, x, y, np.zeros(m, dtype=np.float32))
    assert h32.dtype == np.float32 and g32["W"].dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    for k in PARAM_NAMES:
        assert np.allclose(g32[k], g64[k], rtol=1e-3, atol=1e-5)


def test_bad_sequences_are_refused():
    p = init_params(5, 3, seed=0)
    with pytest.raises(ValueError, match="same positive length"):
        loss_and_grads(p, [1, 2], [1], np.zeros(3))
    with pytest.raises(ValueError, match="h0 must have shape"):
        loss_and_grads(p, [1, 2], [2, 3], np.zeros(4))
    with pytest.raises(ValueError, match="ids outside"):
        loss_and_grads(p, [1, 5], [2, 3], np.zeros(3))


def test_mean_loss_per_char_matches_one_long_forward():
    K, m = 9, 6
    p = init_params(K, m, sigma=0.3, seed=0)
    ids = np.random.default_rng(0).integers(0, K, 1001)
    whole, _ = forward(p, ids[:-1], ids[1:], np.zeros(m))
    assert mean_loss_per_char(p, ids, chunk=97) == pytest.approx(whole / 1000, rel=1e-12)


def test_a_reused_workspace_gives_the_same_results_as_fresh_arrays():
    """The trainer computes every update in one Workspace: nothing may leak from one sequence to the next."""
    K, m, tau = 11, 7, 6
    p = init_params(K, m, sigma=0.4, seed=3)
    ws = Workspace(tau, K, m)
    rng = np.random.default_rng(5)
    for _ in range(4):
        x, y = rng.integers(0, K, tau), rng.integers(0, K, tau)
        h0 = rng.standard_normal(m) * 0.5
        loss, grads, h_last = loss_and_grads(p, x, y, h0)        # fresh arrays every call
        loss_ws, cache = forward(p, x, y, h0, ws)
        grads_ws, h_ws = backward(p, cache)
        assert cache[2] is ws and loss_ws == loss and (h_ws == h_last).all()
        assert all((grads_ws[k] == grads[k]).all() for k in PARAM_NAMES)
    # a workspace of another length or dtype is not written into: forward makes a fitting one
    x, y = rng.integers(0, K, tau + 1), rng.integers(0, K, tau + 1)
    _, cache = forward(p, x, y, np.zeros(m), ws)
    assert cache[2] is not ws and cache[2].H.shape == (tau + 2, m)
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    _, cache = forward(p32, x[:tau], y[:tau], np.zeros(m, np.float32), ws)
    assert cache[2] is not ws and cache[2].H.dtype == np.float32


def test_one_step_sequences():
    K, m = 4, 3
    p = init_params(K, m, sigma=0.5, seed=1)
    loss, grads, h = loss_and_grads(p, [2], [3], np.full(m, 0.2))
    table = relative_errors(grads, numerical_grads(p, [2], [3], np.full(m, 0.2)))
    assert all(table[k]["max"] < 1e-6 for k in PARAM_NAMES)
