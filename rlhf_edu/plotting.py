"""Seeds and bands: the statistics and the house style shared by every notebook's figures.

The course's evidence rule: a training effect is shown when it exceeds 3 standard errors across
seeds, and its figure draws mean +- SE bands. :func:`run_seeds` runs an experiment once per seed
and stacks the histories; :func:`mean_se` and :func:`band` turn the stack into a band.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray")


def mean_se(runs, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean (sample std with ddof=1, over sqrt(n)) along ``axis``.

    With a single run the SE is 0: there is no spread to show (and no evidence either).
    """
    x = np.asarray(runs, dtype=float)
    n = x.shape[axis]
    se = x.std(axis=axis, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(x.mean(axis=axis))
    return x.mean(axis=axis), se


def smooth(x, k: int = 3) -> np.ndarray:
    """Centred moving average over ``k`` points along the last axis, with edge padding (same length)."""
    x = np.asarray(x, dtype=float)
    if k <= 1:
        return x
    pad = [(0, 0)] * (x.ndim - 1) + [(k // 2, k - 1 - k // 2)]
    c = np.cumsum(np.pad(x, pad, mode="edge"), axis=-1)
    c = np.concatenate([np.zeros(x.shape[:-1] + (1,)), c], axis=-1)
    return (c[..., k:] - c[..., :-k]) / k


def stack_histories(histories: list[dict]) -> dict[str, np.ndarray]:
    """Stack per-seed history dicts into ``{key: array of shape (n_seeds, ...)}``.

    Keys whose values are not numeric, or whose shapes differ between seeds, are left out.
    """
    out = {}
    for key in histories[0]:
        try:
            values = [np.asarray(h[key], dtype=float) for h in histories]
        except (TypeError, ValueError, KeyError):
            continue
        if all(v.shape == values[0].shape for v in values):
            out[key] = np.stack(values)
    return out


def run_seeds(experiment: Callable[[int], dict], seeds: Iterable[int], progress: bool = True) -> dict[str, np.ndarray]:
    """Run ``experiment(seed)`` for every seed and stack the histories it returns (:func:`stack_histories`).

    ``experiment`` must seed everything it uses from its argument (see
    :func:`rlhf_edu.config.seed_everything`), so that the runs differ only by seed.
    """
    from tqdm.auto import tqdm

    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    return stack_histories([experiment(s) for s in tqdm(seeds, desc="seeds", disable=not progress)])


def band(ax, x, runs, label: str | None = None, color: str | None = None, k: int = 1, **kwargs):
    """Draw the mean over seeds (rows of ``runs``) with a shaded mean +- SE band, smoothed over ``k`` points."""
    mean, se = mean_se(smooth(runs, k))
    (line,) = ax.plot(x, mean, label=label, color=color, **kwargs)
    ax.fill_between(x, mean - se, mean + se, color=line.get_color(), alpha=0.25, linewidth=0)
    return line


def house_style() -> None:
    """One look for every figure: readable sizes, light grid, no top/right spines."""
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "font.size": 10, "axes.titlesize": 11,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        "legend.frameon": False, "axes.prop_cycle": mpl.cycler(color=list(COLORS)),
    })


def effect_verdict(a, b, n_se: float = 3.0) -> tuple[float, float, bool]:
    """Difference of means of two sets of per-seed results, its SE (Welch), and whether it exceeds ``n_se`` SE."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = a.mean() - b.mean()
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    return float(diff), se, bool(abs(diff) > n_se * se)
