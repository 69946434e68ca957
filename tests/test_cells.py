"""Every cell (rnn, gru, lstm, gru2) through the batched interface: gradients against centred differences,
batches against single streams and the per-step reference (its gradients in test_reference.py), float32
against float64, init."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.gradcheck import numerical_grads, relative_errors
from charrnn.models import char_losses, get_cell, initial_params, mean_loss_per_char, reference, rnn

CELLS = ("rnn", "gru", "lstm", "gru2")

H = 5e-4         # centred differences at H and H/2, combined (4 D(H/2) - D(H)) / 3 to cancel the H^2 term
FLOOR = 1e-5     # "tiny": both values below this count as agreeing when within the differences' round-off


def roundoff(loss):
    """About the round-off of one centred difference of a summed loss: eps * loss / H."""
    return np.finfo(float).eps * max(1.0, loss) / H


def floor_for(loss):
    """The floor of the element-wise relative check: FLOOR, raised where the round-off of the
    differences (a few times eps * loss / H after Richardson's combination) would alone exceed 1e-6
    of the value; at B*T = 40 positions the loss reaches ~100 and the round-off ~3e-11."""
    return max(FLOOR, 5e6 * roundoff(loss))


def initial_state(name, B, m, rng):
    """(B, S) states away from zero: h in (-1, 1); for the LSTM a cell state of a few units."""
    h = np.tanh(rng.standard_normal((B, m)))
    if name == "lstm":
        return np.concatenate([h, 3.0 * rng.standard_normal((B, m))], axis=1)
    if name == "gru2":                               # [h2 | h1]
        return np.concatenate([h, np.tanh(rng.standard_normal((B, m)))], axis=1)
    return h


def case(name, K, m, T, B, sigma, seed):
    """Float64 params with weights and biases ~ N(0, sigma^2), ids X, Y (B, T) and a state S0 (B, S)."""
    cell = get_cell(name)
    rng = np.random.default_rng(seed)
    params = cell.init_params(K, m, sigma=sigma, seed=seed)
    params["b"] = sigma * rng.standard_normal(params["b"].shape)
    params["c"] = sigma * rng.standard_normal(K)
    ids = rng.integers(0, K, (B, T + 1))
    return cell, params, ids[:, :-1], ids[:, 1:], initial_state(name, B, m, rng)


def workspace(name, B, T, K, m, dtype=np.float64):
    """The cell's workspace; for the rnn always the batched one, so its batched code is what runs."""
    if name == "rnn":
        return rnn.BatchWorkspace(B, T, K, m, dtype)
    return get_cell(name).workspace(B, T, K, m, dtype)


def run(name, params, X, Y, S0, ws=None):
    """(loss, grads, S_T from backward_batch, final_state before the backward pass)."""
    cell = get_cell(name)
    K, m = params["V"].shape
    ws = workspace(name, *X.shape, K, m, params["V"].dtype) if ws is None else ws
    loss, cache = cell.forward_batch(params, X, Y, S0, ws)
    final = cell.final_state(cache)
    grads, S_T = cell.backward_batch(params, cache)
    return loss, grads, S_T, final


def richardson(name, params, X, Y, S0):
    d1 = numerical_grads(params, X, Y, S0, h=H, cell=name)
    d2 = numerical_grads(params, X, Y, S0, h=H / 2, cell=name)
    return {k: (4 * d2[k] - d1[k]) / 3 for k in d1}


def reference_loss(name, params, X, Y, S0):
    """The summed loss and final states (B, S) from the package's per-step reference, stream by stream
    (tests/test_reference.py checks its gradients too, and that the sampler's `step` follows it)."""
    runs = [reference.forward(name, params, x, y, s) for x, y, s in zip(X, Y, S0)]
    return sum(r[0] for r in runs), np.array([r[1] for r in runs])


# --- 1. gradients with saturating gates, whole-array error -------------------------------------

@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("B", [1, 3])
def test_gradients_with_saturated_gates(name, B):
    """K=10, m=5, T=9, weights and biases of scale 1.5: ||a - n|| / max(||a||, ||n||) < 1e-6 for every parameter."""
    K, m, T = 10, 5, 9
    cell, params, X, Y, S0 = case(name, K, m, T, B, sigma=1.5, seed=11 + B)
    z = S0[:, :m] @ params["W"].T + params["U"].T[X[:, 0]] + params["b"]     # the first step's pre-activations
    assert np.mean(np.abs(z) > 2) >= 0.2, "the gates should saturate in this test"
    _, grads, _, _ = run(name, params, X, Y, S0)
    table = relative_errors(grads, richardson(name, params, X, Y, S0))
    assert list(table) == list(cell.PARAM_NAMES)
    for k, row in table.items():
        assert row["norm"] < 1e-6, (name, k, row)
        assert row["checked"] == params[k].size


# --- 2. gradients on many random cases ---------------------------------------------------------

@pytest.mark.parametrize("name", CELLS)
@settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(K=st.integers(2, 12), m=st.integers(1, 6), T=st.integers(1, 10), B=st.integers(1, 4),
       log_scale=st.floats(-2, 0.2), seed=st.integers(0, 2**32 - 1))
def test_gradient_matches_centred_differences(name, K, m, T, B, log_scale, seed):
    """Every entry of every gradient agrees with centred differences to a relative 1e-6; entries
    below the floor (1e-5, or more for large losses) to the differences' round-off."""
    _, params, X, Y, S0 = case(name, K, m, T, B, sigma=10.0 ** log_scale, seed=seed)
    loss, grads, _, _ = run(name, params, X, Y, S0)
    num = richardson(name, params, X, Y, S0)
    floor = floor_for(loss)
    table = relative_errors(grads, num, floor=floor)
    assert max(row["max"] for row in table.values()) < 1e-6, (floor, table)
    atol = 50 * roundoff(loss)
    for k in grads:
        tiny = np.maximum(np.abs(grads[k]), np.abs(num[k])) < floor
        assert np.all(np.abs(grads[k] - num[k])[tiny] < atol), k


# --- 3. a batch is its streams; a stream is the per-step reference -----------------------------

@pytest.mark.parametrize("name", CELLS)
def test_a_batch_equals_its_streams_run_alone(name):
    K, m, T = 9, 6, 7
    cell, params, X, Y, S0 = case(name, K, m, T, 3, sigma=0.8, seed=3)
    loss, grads, S_T, _ = run(name, params, X, Y, S0)
    alone = [run(name, params, X[i:i + 1], Y[i:i + 1], S0[i:i + 1], cell.workspace(1, T, K, m)) for i in range(3)]
    assert loss == pytest.approx(sum(a[0] for a in alone), rel=1e-12)
    for k in grads:
        total = sum(a[1][k] for a in alone)
        np.testing.assert_allclose(grads[k], total, rtol=1e-12, atol=1e-12 * np.abs(total).max(), err_msg=k)
    np.testing.assert_allclose(S_T, np.concatenate([a[2] for a in alone]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("B", [1, 3])
def test_forward_batch_equals_the_step_reference(name, B):
    K, m, T = 8, 5, 11
    cell, params, X, Y, S0 = case(name, K, m, T, B, sigma=1.2, seed=4)
    loss, _, S_T, final = run(name, params, X, Y, S0, cell.workspace(B, T, K, m))
    want_loss, want_final = reference_loss(name, params, X, Y, S0)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(final, want_final, rtol=1e-12, atol=1e-14)
    assert S_T.shape == final.shape == (B, cell.state_size(m))


# --- 4. the final state ------------------------------------------------------------------------

@pytest.mark.parametrize("name", CELLS)
def test_final_state_equals_the_state_backward_returns(name):
    K, m, T, B = 7, 4, 5, 2
    cell, params, X, Y, S0 = case(name, K, m, T, B, sigma=0.9, seed=5)
    ws = workspace(name, B, T, K, m)
    _, cache = cell.forward_batch(params, X, Y, S0, ws)
    before = cell.final_state(cache)
    _, S_T = cell.backward_batch(params, cache)
    assert np.array_equal(before, S_T) and np.array_equal(cell.final_state(cache), S_T)
    before[:] = 7.0                                  # fresh arrays: writing to them changes nothing in ws
    S_T_copy = S_T.copy()
    S_T[:] = 9.0
    assert np.array_equal(cell.final_state(cache), S_T_copy)


@pytest.mark.parametrize("name", CELLS)
def test_a_reused_workspace_gives_the_results_of_fresh_ones(name):
    """One workspace for many updates: nothing leaks from one batch to the next. Ids come as views."""
    K, m, T, B = 11, 7, 6, 3
    params = case(name, K, m, T, B, sigma=0.6, seed=6)[1]
    ws = workspace(name, B, T, K, m)
    rng = np.random.default_rng(7)
    for _ in range(3):
        ids = rng.integers(0, K, (B, 2 * T + 1))
        X, Y = ids[:, :2 * T:2], ids[:, 1::2]        # non-contiguous views
        S0 = initial_state(name, B, m, rng)
        fresh = run(name, params, np.ascontiguousarray(X), np.ascontiguousarray(Y), S0)
        reused = run(name, params, X, Y, S0, ws)
        assert reused[0] == fresh[0]
        assert all(np.array_equal(reused[1][k], fresh[1][k]) for k in params)
        assert np.array_equal(reused[2], fresh[2])


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("B", [1, 2])
def test_ids_outside_the_vocabulary_are_refused_by_every_cell(name, B):
    """NumPy reads a negative index from the end, so without a check id -1 would silently be the last
    character; every cell's batched path (the vanilla RNN's single-stream path at B = 1 too) and its
    per-step reference raise instead, for inputs and targets alike."""
    K, m, T = 5, 3, 4
    cell, params, X, Y, S0 = case(name, K, m, T, B, sigma=0.5, seed=8)
    ws = cell.workspace(B, T, K, m)
    for bad in (K, -1):
        for which in ("X", "Y"):
            Xb, Yb = X.copy(), Y.copy()
            (Xb if which == "X" else Yb)[B - 1, 2] = bad
            with pytest.raises(IndexError, match=f"{which} holds ids outside 0..{K - 1}"):
                cell.forward_batch(params, Xb, Yb, S0, ws)
        with pytest.raises(IndexError, match="outside 0..4"):
            cell.step(params, S0[0], bad)
    assert cell.forward_batch(params, X, Y, S0, ws)[0] > 0            # the valid ids still go through


@pytest.mark.parametrize("name", ["gru", "lstm", "gru2"])
def test_bad_workspaces_are_refused(name):
    K, m, T, B = 5, 3, 4, 2
    cell, params, X, Y, S0 = case(name, K, m, T, B, sigma=0.5, seed=8)
    ws = cell.workspace(B, T, K, m)
    with pytest.raises(ValueError, match="does not fit"):
        cell.forward_batch(params, X[:, :-1], Y[:, :-1], S0, ws)
    with pytest.raises(ValueError, match="does not fit"):
        cell.forward_batch({k: v.astype(np.float32) for k, v in params.items()}, X, Y, S0, ws)


# --- 5. float32 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CELLS)
def test_float32_agrees_with_float64(name):
    K, m, T, B = 30, 20, 25, 2
    cell, p64, X, Y, S0 = case(name, K, m, T, B, sigma=0.1, seed=9)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    ws32 = workspace(name, B, T, K, m, np.float32)
    l64, g64, s64, _ = run(name, p64, X, Y, S0)
    l32, g32, s32, f32 = run(name, p32, X, Y, S0.astype(np.float32), ws32)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for k in p64:
        assert g32[k].dtype == np.float32, k
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-5, err_msg=k)
    assert s32.dtype == f32.dtype == np.float32
    np.testing.assert_allclose(s32, s64, rtol=1e-4, atol=1e-5)
    floats = [v for v in vars(ws32).values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert floats and all(v.dtype == np.float32 for v in floats)     # no float64 buffer in the hot path
    s, o = cell.step(p32, s32[0], int(X[0, 0]))
    assert s.dtype == o.dtype == np.float32


# --- 6. init ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_init_params(name, dtype):
    K, m = 40, 60
    cell = get_cell(name)
    p = cell.init_params(K, m, sigma=0.02, seed=0, dtype=dtype)
    gates = {"rnn": 1, "gru": 3, "lstm": 4, "gru2": 3}[name]
    want = {"U": (gates * m, K), "W": (gates * m, m), "V": (K, m), "b": (gates * m,), "c": (K,)}
    if name == "gru2":                               # the upper layer reads the lower one's h
        want.update({"U2": (3 * m, m), "W2": (3 * m, m), "b2": (3 * m,)})
        assert not p["b2"].any() and 0.018 < p["U2"].std() < 0.022 and 0.018 < p["W2"].std() < 0.022
    assert {k: v.shape for k, v in p.items()} == want == dict(cell.param_shapes(K, m))
    assert list(p) == list(cell.PARAM_NAMES) == list(want)
    assert all(v.dtype == dtype for v in p.values())
    assert cell.state_size(m) == (2 * m if name in ("lstm", "gru2") else m)
    forget = np.zeros(gates * m, bool)
    if name == "lstm":
        forget[m:2 * m] = True                       # the forget gate's block starts at 1
    assert np.all(p["b"][forget] == 1.0) and np.all(p["b"][~forget] == 0.0)
    assert not p["c"].any()
    for k in ("U", "W", "V"):
        assert 0.018 < p[k].std() < 0.022, k
    again, other = cell.init_params(K, m, sigma=0.02, seed=0, dtype=dtype), cell.init_params(K, m, sigma=0.02, seed=1)
    assert all(np.array_equal(p[k], again[k]) for k in p)
    assert not np.array_equal(p["W"], other["W"])


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_orthogonal_init_makes_each_recurrent_gate_block_orthogonal_and_keeps_the_other_weights(name, dtype):
    K, m = 40, 24
    cell = get_cell(name)
    gates = {"rnn": 1, "gru": 3, "lstm": 4, "gru2": 3}[name]
    assert cell.RECURRENT == (("W", "W2") if name == "gru2" else ("W",))
    p = initial_params(cell, K, m, 0.02, 0, dtype, "orthogonal")
    normal = cell.init_params(K, m, sigma=0.02, seed=0, dtype=dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for k in cell.RECURRENT:
        assert p[k].shape == (gates * m, m) and p[k].dtype == dtype
        blocks = [p[k][g * m:(g + 1) * m].astype(np.float64) for g in range(gates)]
        for Q in blocks:
            assert np.abs(Q.T @ Q - np.eye(m)).max() < tol and np.abs(Q @ Q.T - np.eye(m)).max() < tol
        assert all(not np.allclose(a, b) for i, a in enumerate(blocks) for b in blocks[i + 1:])   # a block per gate
        assert not np.allclose(p[k], normal[k])
    assert all(np.array_equal(p[k], normal[k]) for k in p if k not in cell.RECURRENT)   # the rest: seed 0's normal
    again, other = (initial_params(cell, K, m, 0.02, s, dtype, "orthogonal") for s in (0, 1))
    assert all(np.array_equal(p[k], again[k]) for k in p) and not np.allclose(p["W"], other["W"])
    plain = initial_params(cell, K, m, 0.02, 0, dtype)       # "normal", the default: init_params itself
    assert all(np.array_equal(plain[k], normal[k]) for k in p)
    with pytest.raises(ValueError, match="init must be one of normal, orthogonal"):
        initial_params(cell, K, m, 0.02, 0, dtype, "uniform")


# --- 7. the registry's helpers work for every cell -----------------------------------------------

@pytest.mark.parametrize("name", CELLS)
def test_mean_loss_per_char_equals_the_mean_of_char_losses(name):
    K, m = 9, 6
    cell = get_cell(name)
    params = cell.init_params(K, m, sigma=0.5, seed=2)
    ids = np.random.default_rng(10).integers(0, K, 500)
    want = char_losses(cell, params, ids)
    assert want.shape == (499,)
    assert mean_loss_per_char(cell, params, ids, chunk=97) == pytest.approx(want.mean(), rel=1e-12)


# --- 8. the check has teeth ------------------------------------------------------------------------

@pytest.mark.parametrize("name", CELLS)
def test_a_wrong_gradient_is_caught(name):
    """An analytic gradient off by 1% in one entry fails the bound for that parameter and no other."""
    K, m, T, B = 7, 4, 6, 2
    _, params, X, Y, S0 = case(name, K, m, T, B, sigma=1.0, seed=12)
    _, grads, _, _ = run(name, params, X, Y, S0)
    num = richardson(name, params, X, Y, S0)
    rng = np.random.default_rng(0)
    for planted in params:
        wrong = {k: v.copy() for k, v in grads.items()}
        flat = wrong[planted].reshape(-1)
        i = int(np.argmax(np.abs(flat) * rng.random(flat.size)))   # a random entry that is not tiny
        flat[i] *= 1.01
        table = relative_errors(wrong, num)
        for k, row in table.items():
            if k == planted:
                assert row["max"] > 1e-3, (planted, row)
            else:
                assert row["max"] < 1e-6, (planted, k, row)


@pytest.mark.parametrize("name", CELLS)
def test_dropout_on_the_output_layer_has_exact_gradients(name):
    """With a fixed mask, backward_batch is the gradient of the masked loss (centred differences, float64)."""
    from charrnn.models import output
    K, m, T, B = 5, 4, 4, 3
    cell, params, X, Y, S0 = case(name, K, m, T, B, sigma=0.5, seed=11)
    ws = workspace(name, B, T, K, m)
    output.dropout_buffers(ws, B * T, m, np.float64)
    rng = np.random.default_rng(3)
    ws.keep[...] = (rng.random((B * T, m)) < 0.7) / 0.7

    def loss_of(p):
        return cell.forward_batch(p, X, Y, S0, ws)[0]
    loss, cache = cell.forward_batch(params, X, Y, S0, ws)
    grads, _ = cell.backward_batch(params, cache)
    for k, v in params.items():
        num = np.empty_like(v)
        for i in np.ndindex(v.shape):
            old = v[i]
            v[i] = old + 1e-5
            up = loss_of(params)
            v[i] = old - 1e-5
            down = loss_of(params)
            v[i] = old
            num[i] = (up - down) / 2e-5
        err = np.linalg.norm(grads[k] - num) / max(np.linalg.norm(grads[k]), np.linalg.norm(num), 1e-12)
        assert err < 1e-6, (k, err)
    ws.keep[...] = 1.0                                      # all kept: the loss without dropout
    no_drop = cell.workspace(B, T, K, m) if name != "rnn" else workspace(name, B, T, K, m)
    assert cell.forward_batch(params, X, Y, S0, ws)[0] == pytest.approx(cell.forward_batch(params, X, Y, S0, no_drop)[0],
                                                                        rel=1e-12)
