"""The compiled kernels (charrnn/jit.py) against NumPy's path, their reference: the rational tanh against
the true one, the GRU's float32 forward and backward with and without the kernels, Adam bit for bit, a
short training run both ways, the switch CHARRNN_JIT=0, and the package without numba."""
import os
import subprocess
import sys

import numpy as np
import pytest

from charrnn import jit, optim
from charrnn.config import TrainConfig
from charrnn.corpus import Corpus
from charrnn.models import get_cell
from charrnn.trainer import train

needs_numba = pytest.mark.skipif(jit.numba is None, reason="numba is not installed")


@pytest.fixture
def numpy_path():
    """A function that runs f() with the kernels switched off (jit.numpy_only) and returns its result."""
    def off(f):
        with jit.numpy_only():
            assert not jit.enabled(np.float32)
            return f()
    return off


@needs_numba
def test_tanh_is_within_4e_7_everywhere_and_keeps_nan():
    x = np.concatenate([np.linspace(-12, 12, 1_000_001), [0.0, -0.0, 1e-30, -1e-20, 8.99, 9.0, 9.01, 50.0,
                                                          np.inf, -np.inf]]).astype(np.float32)
    out = np.empty_like(x)
    jit.tanh(x, out)
    true = np.tanh(x.astype(np.float64))
    assert np.abs(out - true).max() <= 4e-7
    assert np.abs(out).max() <= 1.0                                   # never past +-1, so 1 - n^2 >= 0
    small = np.abs(x) < 1e-3
    np.testing.assert_allclose(out[small], true[small], rtol=1e-6, atol=0)   # relative accuracy near 0
    assert np.array_equal(np.signbit(out[x == 0]), np.signbit(x[x == 0]))
    nan = np.array([np.nan], np.float32)
    jit.tanh(nan, nan)
    assert np.isnan(nan[0])                                           # a diverged run stays visible


def gru_case(name, K=23, m=40, B=6, T=17, seed=3):
    cell = get_cell(name)
    rng = np.random.default_rng(seed)
    params = cell.init_params(K, m, sigma=0.3, seed=seed, dtype=np.float32)
    for k in ("b", "b2"):                                             # gates away from 1/2
        if k in params:
            params[k] = (0.5 * rng.standard_normal(params[k].shape)).astype(np.float32)
    ids = rng.integers(0, K, (B, T + 1)).astype(np.uint8)
    S0 = np.tanh(rng.standard_normal((B, cell.state_size(m)))).astype(np.float32)
    return cell, params, ids[:, :-1], ids[:, 1:], S0


def forward_backward(cell, params, X, Y, S0):
    B, T = X.shape
    K, m = params["V"].shape
    ws = cell.workspace(B, T, K, m, np.float32)
    loss, cache = cell.forward_batch(params, X, Y, S0, ws)
    final = cell.final_state(cache)
    grads, S_T = cell.backward_batch(params, cache)
    return loss, grads, S_T, final, ws


@needs_numba
@pytest.mark.parametrize("name", ["gru", "gru2"])
def test_kernels_agree_with_numpy(name, numpy_path):
    cell, params, X, Y, S0 = gru_case(name)
    loss, grads, S_T, final, ws = forward_backward(cell, params, X, Y, S0)
    ref_loss, ref_grads, ref_S_T, ref_final, ref_ws = numpy_path(lambda: forward_backward(cell, params, X, Y, S0))
    layers = (ws.low, ws.up) if name == "gru2" else (ws,)
    assert all(w.XT is not None for w in layers)                      # the kernels ran
    assert all(w.XT is None for w in ((ref_ws.low, ref_ws.up) if name == "gru2" else (ref_ws,)))
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for k in params:
        assert grads[k].dtype == np.float32
        scale = np.abs(ref_grads[k]).max()
        assert scale > 0, k
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=0, atol=2e-5 * scale, err_msg=k)
    np.testing.assert_allclose(final, ref_final, rtol=0, atol=2e-6)
    np.testing.assert_allclose(S_T, ref_S_T, rtol=0, atol=2e-6)


@needs_numba
def test_kernels_follow_the_fast_path_through_dropout(numpy_path):
    from charrnn.models import output
    cell, params, X, Y, S0 = gru_case("gru2")
    B, T = X.shape
    K, m = params["V"].shape
    keep = (np.random.default_rng(1).random((B * T, m)) > 0.3).astype(np.float32) / 0.7

    def go():
        ws = cell.workspace(B, T, K, m, np.float32)
        output.dropout_buffers(ws, B * T, m, np.float32)
        ws.keep[...] = keep
        loss, cache = cell.forward_batch(params, X, Y, S0, ws)
        return loss, cell.backward_batch(params, cache)[0]
    loss, grads = go()
    ref_loss, ref_grads = numpy_path(go)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for k in params:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=0, atol=2e-5 * np.abs(ref_grads[k]).max(), err_msg=k)


def adam_steps(seed, dtype=np.float32):
    """Five Adam steps on a flat vector, one with gradients far past the clip; every array after each."""
    rng = np.random.default_rng(seed)
    n = 10_001
    state, work, seen = optim.init_state("adam", n, dtype), np.empty(n, dtype), []
    for t in range(1, 6):
        g = (rng.standard_normal(n) * (30.0 if t == 2 else 0.1)).astype(dtype)
        optim.adam_step(g, state, work, eta=2e-3, eps=1e-8, clip=5.0, beta1=0.9, beta2=0.999, t=t)
        seen += [g.copy(), work.copy(), state["M"].copy(), state["S"].copy()]
    return seen


@needs_numba
@pytest.mark.parametrize("seed", [0, 1])
def test_adam_kernel_gives_numpys_bits(seed, numpy_path):
    fused, ref = adam_steps(seed), numpy_path(lambda: adam_steps(seed))
    assert np.abs(fused[4]).max() == 5.0                              # the second step's gradient was clipped
    for a, b in zip(fused, ref):
        assert a.dtype == np.float32
        assert np.array_equal(a, b)


@needs_numba
def test_training_with_kernels_follows_numpy(numpy_path):
    words = ["the cat", "a dog", "sat on", "the mat", "ran far", "and then", "slept."]
    text = " ".join(np.random.default_rng(0).choice(words, 1500))
    corpus = Corpus.from_text(text)
    config = TrainConfig(cell="gru2", m=24, batch_size=4, seq_length=16, dtype="float32", n_updates=60,
                         optimizer="adam", eta=3e-2, objective="mean", sample_length=0, log_every=1, seed=2)
    fused = train(corpus, config)
    ref = numpy_path(lambda: train(corpus, config))
    losses, ref_losses = np.array(fused.loss), np.array(ref.loss)
    assert len(losses) == len(ref_losses) == 60
    assert ref_losses[-1] < ref_losses[0] - 5                        # it learnt something
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-3)
    for k, v in ref.params.items():
        np.testing.assert_allclose(fused.params[k], v, rtol=0, atol=1e-3 * np.abs(v).max(), err_msg=k)


def test_switch_and_dtype():
    assert not jit.enabled(np.float64)                                # float64 (gradient checks) stays on NumPy
    env = dict(os.environ, CHARRNN_JIT="0")
    out = subprocess.run([sys.executable, "-c", "import numpy as np; from charrnn import jit; "
                          "from charrnn.models import gru; print(jit.enabled(np.float32), "
                          "gru.workspace(2, 3, 4, 5, np.float32).XT is None)"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_package_trains_without_numba():
    code = ("import sys; sys.modules['numba'] = None\n"              # import numba now raises ImportError
            "import numpy as np\n"
            "from charrnn import jit\n"
            "from charrnn.config import TrainConfig\n"
            "from charrnn.corpus import Corpus\n"
            "from charrnn.trainer import train\n"
            "assert jit.numba is None and not jit.enabled(np.float32)\n"
            "c = Corpus.from_text('the cat sat on the mat. ' * 200)\n"
            "h = train(c, TrainConfig(cell='gru2', m=8, batch_size=2, seq_length=8, dtype='float32', n_updates=5,"
            " optimizer='adam', sample_length=0, log_every=1))\n"
            "print(len(h.loss))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5"
