import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from rlhf_edu.plotting import band, effect_verdict, mean_se, run_seeds, smooth, stack_histories

finite = st.floats(-1e3, 1e3, allow_nan=False)


@given(arrays(float, st.tuples(st.integers(2, 6), st.integers(1, 5)), elements=finite))
def test_mean_se_matches_scipy_sem(x):
    mean, se = mean_se(x)
    np.testing.assert_allclose(mean, x.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(se, stats.sem(x, axis=0), atol=1e-9)


def test_mean_se_of_one_run_is_zero_spread():
    mean, se = mean_se([[1.0, 2.0, 3.0]])
    assert mean.tolist() == [1.0, 2.0, 3.0] and se.tolist() == [0.0, 0.0, 0.0]


@settings(max_examples=50)
@given(arrays(float, st.integers(1, 30), elements=finite), st.integers(1, 7))
def test_smooth_matches_a_brute_force_window_average(x, k):
    padded = np.concatenate([np.full(k // 2, x[0]), x, np.full(k - 1 - k // 2, x[-1])])
    brute = np.array([padded[i : i + k].mean() for i in range(len(x))])
    np.testing.assert_allclose(smooth(x, k), brute, atol=1e-7)


def test_smooth_works_row_by_row_on_a_seed_stack():
    runs = np.arange(20.0).reshape(2, 10) ** 2
    np.testing.assert_allclose(smooth(runs, 5), np.stack([smooth(r, 5) for r in runs]))


def test_stack_histories_keeps_numeric_keys_of_equal_shape():
    hs = [{"loss": [1, 2], "texts": ["a", "b"], "ragged": [1] * (i + 1), "step": [0, 1]} for i in range(3)]
    out = stack_histories(hs)
    assert set(out) == {"loss", "step"} and out["loss"].shape == (3, 2)


def test_run_seeds_stacks_each_seed_in_order_and_is_deterministic():
    def experiment(seed):
        rng = np.random.default_rng(seed)
        return {"x": rng.normal(size=4).tolist()}

    a, b = run_seeds(experiment, [0, 1, 2], progress=False), run_seeds(experiment, [0, 1, 2], progress=False)
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["x"][1], np.random.default_rng(1).normal(size=4))
    with pytest.raises(ValueError, match="^seeds:"):
        run_seeds(experiment, [])


def test_effect_verdict_is_welch_t_statistic_against_3():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.1, 5), rng.normal(0.0, 0.1, 5)
    diff, se, shown = effect_verdict(a, b)
    t = stats.ttest_ind(a, b, equal_var=False).statistic
    assert np.isclose(diff / se, t) and shown
    assert not effect_verdict(a, a + 1e-3 * rng.normal(size=5))[2]


def test_band_draws_the_mean_and_a_band_of_one_se():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]])
    fig, ax = plt.subplots()
    line = band(ax, [0, 1, 2], runs)
    np.testing.assert_allclose(line.get_ydata(), [1, 2, 3])
    verts = ax.collections[0].get_paths()[0].vertices
    assert np.isclose(verts[:, 1].max(), 3 + 1) and np.isclose(verts[:, 1].min(), 1 - 1)
    plt.close(fig)
