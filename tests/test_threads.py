"""Threads: OpenMP inside kernels, Python threads around them, and fork.

What is and is not thread-safe (also in ``LayerModule``'s docstring):

- OpenMP: a kernel's outer loop runs in threads when its work is at least
  ``layerc.compiler.codegen.PARALLEL_MIN_WORK`` (131072) elements. Results with N
  threads match 1 thread (elementwise kernels exactly; reductions combine
  per-thread partials in thread order, so they match to rounding).
  ``OMP_NUM_THREADS`` is the default; ``LayerModule.set_threads(n)`` overrides
  it for the compiled library (every module of the same spec and sizes, in
  every Python thread of the process).
- Several Python threads may call ``forward`` of one module at once under
  ``layerc.runtime.tensor.no_grad()`` (inference): the call releases the GIL, each
  call gets its own output buffers, the parameters are only read.
- Not thread-safe: ``module.backward()`` runs on the state the latest
  ``forward()`` (with gradients enabled) left on the module, so forward/backward
  pairs from several threads on one module mix each other's activations; and
  parameter gradients (``param.grad``) accumulate without a lock, including
  through the tape (``loss.backward()``). Train one module from one thread
  (or give each thread its own module). Changing parameters while another
  thread runs ``forward`` is a data race as well.
- fork: GNU libgomp is not fork-safe. Once the parent has run a parallel
  kernel (libgomp's thread pool exists), a parallel kernel in a child made by
  ``fork`` (``multiprocessing``'s default start method on Linux) would hang
  forever, so in a child forked from a process that had loaded a layer, every
  layer library runs on one thread (runtime/threads.py): those loaded before
  the fork, those the child loads first (a new spec, the other dtype, the
  variant ``eval()`` selects), and ``set_threads(n)`` there stays at one, with
  a warning. For parallel kernels in children use the 'spawn' (or
  'forkserver') start method: ``multiprocessing.get_context("spawn")``; a
  spawned child compiles nothing (the build cache is on disk). Both are
  tested below, with timeouts.
"""
import multiprocessing
import os
import queue as queue_module
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from layerc import Input, Param, Sequential, layer, nn, ops
from layerc.compiler.codegen import PARALLEL_MIN_WORK
from layerc.runtime.tensor import Tensor, no_grad

N, C = 1024, 320                # N * C = 327680 >= 2 * PARALLEL_MIN_WORK: the parallel path
assert N * C >= 2 * PARALLEL_MIN_WORK


@layer
class ThreadPReLU:
    x = Input("N", "C")
    alpha = Param("C", init=0.25)

    def forward(x, alpha):
        return ops.maximum(x, 0) + alpha * ops.minimum(x, 0)


@layer
class ThreadNorm:
    """Reductions over both axes: a row softmax, then a column mean, weighted."""
    x = Input("N", "C")
    w = Param("C", init=0.5)

    def forward(x, w):
        p = ops.softmax(x * w, axis=-1)
        return ops.sum(p * x, axis=0) + ops.mean(ops.tanh(x), axis=0)


def inputs(seed=0, n=N):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, C)).astype(np.float32)


def run(module, x, threads):
    """Forward and backward with ``threads`` OpenMP threads; returns copies."""
    module.set_threads(threads)
    try:
        module.zero_grad()
        y = module.forward(x)
        gy = np.cos(np.arange(y.numpy().size, dtype=np.float32)).reshape(y.shape)
        gx = module.backward(gy)
        (p,) = module.parameters()
        return y.numpy().copy(), gx.numpy().copy(), p.grad.copy()
    finally:
        module.set_threads(0)


@pytest.mark.parametrize("spec", [ThreadPReLU, ThreadNorm])
@pytest.mark.parametrize("threads", [2, 3, 4])
def test_set_threads_matches_one_thread(spec, threads):
    m = spec.build(C=C)
    x = inputs()
    one = run(m, x, 1)
    many = run(m, x, threads)
    for a, b, what in zip(one, many, ("output", "input gradient", "parameter gradient")):
        assert np.isfinite(a).all(), what
        # reductions combine per-thread partials: equal up to float32 rounding
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(a).max())), err_msg=what)
    if spec is ThreadPReLU:      # elementwise forward: bit-identical
        np.testing.assert_array_equal(many[0], one[0])


SUBPROCESS = textwrap.dedent("""
    import ctypes, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_threads import ThreadNorm, inputs, run, C
    m = ThreadNorm.build(C=C)
    y, gx, gw = run(m, inputs(), 0)           # 0: OpenMP's default, i.e. OMP_NUM_THREADS
    # the module's kernels use the process's libgomp: report what it was told
    print(ctypes.CDLL("libgomp.so.1").omp_get_max_threads())
    np.savez({out!r}, y=y, gx=gx, gw=gw)
""")


def test_omp_num_threads_in_a_subprocess(tmp_path):
    results = {}
    for threads in (1, 3):
        out = tmp_path / f"t{threads}.npz"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        code = SUBPROCESS.format(tests=os.path.dirname(__file__), out=str(out))
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[-1] == str(threads), proc.stdout
        with np.load(out) as data:
            results[threads] = {k: data[k] for k in data.files}
    for k in results[1]:
        a, b = results[1][k], results[3][k]
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(a).max())), err_msg=k)


def test_a_process_with_spinning_openmp_threads_exits_cleanly():
    """Under OMP_WAIT_POLICY=active, OpenMP's idle threads spin inside libgomp
    until the process ends; closing the layer's library at exit must not
    unmap libgomp under them (the process died with SIGSEGV)."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_threads import ThreadNorm, inputs, run, C
        run(ThreadNorm.build(C=C), inputs(), 2)
        print("ran")
    """)
    env = dict(os.environ, OMP_WAIT_POLICY="active")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.split() == ["ran"], (proc.returncode, proc.stderr[-2000:])


def _child(queue, seed, threads):
    m = ThreadNorm.build(C=C)         # cached on disk: loads the parent's library
    if threads is not None:
        m.set_threads(threads)
    with no_grad():
        queue.put(m.forward(inputs(seed)).numpy().copy())


@pytest.mark.parametrize("method, child_threads", [
    ("spawn", 2),       # the documented way: parallel kernels in the child
    ("fork", None),     # a forked child runs layers on one thread by itself (libgomp is not fork-safe)
])
def test_module_in_a_child_process(method, child_threads):
    """The parent runs parallel kernels first (libgomp's thread pool exists), then starts a child."""
    m = ThreadNorm.build(C=C)
    m.set_threads(2)
    try:
        with no_grad():
            want = m.forward(inputs(7)).numpy().copy()
        ctx = multiprocessing.get_context(method)
        queue = ctx.Queue()
        child = ctx.Process(target=_child, args=(queue, 7, child_threads))
        child.start()
        try:
            got = queue.get(timeout=240)   # before join: the child exits once its result is read
        except queue_module.Empty:
            got = None
        child.join(timeout=60)
        if got is None or child.is_alive():
            child.kill()
            child.join()
            pytest.fail(f"a module called in a child started with {method!r} hung")
        assert child.exitcode == 0
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        # and the parent still runs parallel kernels afterwards
        with no_grad():
            np.testing.assert_array_equal(m.forward(inputs(7)).numpy(), want)
    finally:
        m.set_threads(0)


@pytest.mark.parametrize("spec", [ThreadPReLU, ThreadNorm])
def test_one_module_from_several_python_threads(spec):
    m = spec.build(C=C)
    m.set_threads(2)                  # OpenMP teams inside concurrent calls
    seeds = range(6)
    try:
        with no_grad():
            want = {s: m.forward(inputs(s)).numpy().copy() for s in seeds}
        errors, checked = [], []
        start = threading.Barrier(len(seeds))

        def worker(seed):
            try:
                x = inputs(seed)
                start.wait()
                with no_grad():           # thread-local: each thread enters it
                    for _ in range(20):
                        y = m.forward(x).numpy()
                        if not np.allclose(y, want[seed], rtol=1e-6, atol=1e-6):
                            errors.append((seed, float(np.abs(y - want[seed]).max())))
                        checked.append(seed)
            except Exception as exc:      # noqa: BLE001 (reported below)
                errors.append((seed, repr(exc)))

        threads = [threading.Thread(target=worker, args=(s,)) for s in seeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads), "a thread hung"
        assert not errors, errors
        assert len(checked) == 20 * len(seeds)
    finally:
        m.set_threads(0)


def test_explicit_backward_uses_the_latest_forward():
    """Why forward/backward pairs from several threads on one module are not safe:
    ``backward()`` takes the activations of the latest ``forward()``, whichever
    thread ran it. (The tape keeps each call's own activations.)"""
    m = ThreadNorm.build(C=C)
    x1, x2 = inputs(1), inputs(2)
    gy = np.ones(C, np.float32)
    m.forward(x1)
    g1 = m.backward(gy).numpy().copy()
    m.forward(x1)
    m.forward(x2)                      # another caller's forward in between
    g_mixed = m.backward(gy).numpy().copy()
    m.forward(x2)
    g2 = m.backward(gy).numpy().copy()
    np.testing.assert_array_equal(g_mixed, g2)
    assert not np.allclose(g_mixed, g1)
    # through the tape, each forward keeps its own activations
    xt = Tensor(x1, requires_grad=True)
    t1 = m.forward(xt)
    m.forward(x2)
    t1.backward(gy)
    np.testing.assert_allclose(xt.grad, g1, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------ libraries a forked child loads itself

def norm_in_child(dtype):
    """A library this process has not loaded yet (the parent ran ThreadPReLU only)."""
    with no_grad():
        return ThreadNorm.build(C=C, dtype=dtype).forward(inputs(3).astype(dtype)).numpy()


def prelu_with_two_threads_in_child():
    import warnings
    m = ThreadPReLU.build(C=C)                 # loaded by the parent before the fork
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.set_threads(2)
    assert any("fork" in str(w.message) for w in caught), [str(w.message) for w in caught]
    with no_grad():
        return m.forward(inputs(3)).numpy()


def conv_bn_model():
    from layerc.runtime import manual_seed
    manual_seed(0)
    return Sequential(nn.Conv2D(3, 8, 3, padding=1), nn.BatchNorm2D(8))


def conv_bn_batch():
    return np.random.default_rng(0).standard_normal((32, 3, 32, 32)).astype(np.float32)


def eval_in_child(model):
    model.eval()                               # the eval variant: a library the child loads first
    with no_grad():
        return model(conv_bn_batch()).numpy()


FORK_CASES = {
    # case: (what the parent loads and runs before the fork, the child's work, what the parent compares with)
    "new spec": ("prelu", "norm_in_child('float32')", "norm32"),
    "other dtype": ("norm32", "norm_in_child('float64')", "norm64"),
    "set_threads(2) in the child": ("prelu", "prelu_with_two_threads_in_child()", "prelu"),
    "eval variant after training": ("train", "eval_in_child(model)", "eval"),
}

FORK_SCRIPT = textwrap.dedent("""
    import multiprocessing, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_threads import *
    from layerc.runtime.tensor import no_grad
    from layerc.runtime.optim import SGD

    def parent(what):
        global model
        if what == "prelu":
            m = ThreadPReLU.build(C=C)
            m.set_threads(2)
            with no_grad():
                return m.forward(inputs(3)).numpy()
        if what.startswith("norm"):
            m = ThreadNorm.build(C=C, dtype="float" + what[4:])
            m.set_threads(2)
            with no_grad():
                return m.forward(inputs(3).astype(m.dtype)).numpy()
        if what == "train":
            model = conv_bn_model()
            optimizer = SGD(model.parameters(), lr=0.1)
            for _ in range(2):
                model.zero_grad()
                (model(conv_bn_batch()) ** 2).mean().backward()
                optimizer.step()
            return None
        return eval_in_child(model)

    def run_child():
        return {child}

    parent({before!r})                        # the parent's OpenMP thread pool now exists
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(run_child).get()
    want = parent({compare!r})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    print("ok", got.shape)
""")


@pytest.mark.parametrize("case", list(FORK_CASES))
def test_a_forked_child_runs_layers_it_loads_itself(case):
    """Every library the child loads after the fork runs on one thread there too:
    before, its first parallel kernel waited forever for libgomp's threads."""
    before, child, compare = FORK_CASES[case]
    # build everything once here: the child then loads from the disk cache within the timeout
    ThreadPReLU.build(C=C), ThreadNorm.build(C=C), ThreadNorm.build(C=C, dtype="float64")
    warm = conv_bn_model()
    warm(conv_bn_batch()).sum().backward()
    warm.eval()(conv_bn_batch())
    code = FORK_SCRIPT.format(tests=os.path.dirname(__file__), before=before, child=child, compare=compare)
    # a session of its own: on a hang the pool's worker is killed with its parent
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{case}: the forked child hung")
    assert proc.returncode == 0, err[-3000:]
    assert out.startswith("ok"), out
