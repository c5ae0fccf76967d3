"""Tests for rlhf_edu.fdpg against exact enumeration, closed forms and scipy."""

import math

import pytest
import scipy.optimize
import scipy.stats
import torch

from rlhf_edu import fdpg as F
from rlhf_edu.divergences import kl_categorical

DIVS = F.DIVERGENCE_NAMES


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tables are tiny: a second thread only adds synchronisation overhead."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def world():
    return F.make_exact_world(vocab_size=4, length=3, beta=0.5, seed=1, good_bias=-1.0)


def _grad(policy, scalar):
    policy.zero_grad()
    scalar.backward()
    return torch.cat([t.grad.reshape(-1).clone() for t in policy.tables])


def _random_policy(world, seed=3):
    return F.TabularPolicy.random(world.base.vocab_size, world.base.length, scale=1.0, seed=seed)


# ---------------------------------------------------------------- pseudo-rewards (the table)

def test_pseudo_rewards_match_lecture_table():
    ratio = torch.tensor([0.05, 0.3, 0.9, 1.7, 6.0, 40.0], dtype=torch.float64)  # p/π
    lr = -ratio.log()  # log(π/p)
    table = {  # Lecture 6, Fig. 15: R = -f'(π/p) as a function of p/π
        "forward_kl": ratio,
        "reverse_kl": ratio.log() - 1.0,
        "tv": torch.where(ratio > 1, 0.5, -0.5).double(),
        "js": torch.log1p(ratio) - math.log(2.0),
    }
    for name, expected in table.items():
        torch.testing.assert_close(F.pseudo_reward(lr, name), expected)


def test_pseudo_reward_where_p_is_zero_uses_f_prime_inf():
    lr = torch.tensor([math.inf, 0.2], dtype=torch.float64)
    assert F.pseudo_reward(lr, "forward_kl")[0] == 0.0
    assert F.pseudo_reward(lr, "tv")[0] == -0.5
    assert F.pseudo_reward(lr, "js")[0] == pytest.approx(-math.log(2))
    assert F.pseudo_reward(lr, "reverse_kl")[0] == -math.inf
    assert F.pseudo_reward(lr, "reverse_kl", max_log_ratio=10.0)[0] == pytest.approx(-11.0)


@pytest.mark.parametrize("bad", ["chi2", "KL", None, 3])
def test_unknown_divergence_rejected(bad):
    with pytest.raises(ValueError, match="divergence"):
        F.pseudo_reward(torch.zeros(3), bad)
    with pytest.raises(ValueError, match="divergence"):
        F.estimate_f_divergence(torch.zeros(3), bad)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="words"):
        F.GDCBinaryTask(words=())


# ---------------------------------------------------------------- targets and Z

def test_targets_closed_form(world):
    log_P = world.rlkl_log_target()
    torch.testing.assert_close(log_P, world.log_a + world.reward / world.beta)
    log_G = world.gdc_log_target()
    assert torch.isneginf(log_G[world.constraint == 0]).all()
    torch.testing.assert_close(log_G[world.constraint == 1], world.log_a[world.constraint == 1])
    # Z for GDC is a's probability of satisfying the constraint
    z = float(F.exact_log_partition(log_G).exp())
    assert z == pytest.approx(float(world.log_a.exp() @ world.constraint), rel=1e-12)
    assert float(F.normalise_log_target(log_P).exp().sum()) == pytest.approx(1.0, abs=1e-12)


def test_tabular_policy_is_a_distribution_and_samples_it(world):
    pi = _random_policy(world)
    lp_all = pi.log_prob_all()
    assert float(lp_all.detach().exp().sum()) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(pi.log_prob(world.sequences), lp_all)
    x = pi.sample(20000, torch.Generator().manual_seed(0))
    counts = torch.bincount(pi.index(x), minlength=len(lp_all)).double()
    p = scipy.stats.chisquare(counts.numpy(), (lp_all.exp() * 20000).detach().numpy()).pvalue
    assert p > 1e-4


@pytest.mark.parametrize("target", ["rlkl", "gdc"])
def test_z_estimate_converges_to_true_z(world, target):
    log_P = world.rlkl_log_target() if target == "rlkl" else world.gdc_log_target()
    true_z = float(F.exact_log_partition(log_P).exp())
    g = torch.Generator().manual_seed(0)
    running, errors = F.RunningLogZ(), []
    for batch in range(10):
        x = world.base.sample(2000, g)
        log_q, lP = world.base.log_prob(x), log_P[world.base.index(x)]
        est = math.exp(running.update(lP, log_q))
        errors.append(abs(est - true_z))
    w = (log_P - world.log_a).exp()  # weights P/a over every x
    sd = math.sqrt(float(world.log_a.exp() @ (w - true_z) ** 2))  # exact sd of one weight under a
    assert errors[-1] < 4 * sd / math.sqrt(20000)
    assert errors[-1] < errors[0] or errors[0] < 4 * sd / math.sqrt(2000)
    # a single batch from another proposal also estimates Z
    pi = _random_policy(world)
    x = pi.sample(20000, g)
    one = float(F.estimate_log_z(log_P[pi.index(x)], pi.log_prob(x).detach()).exp())
    assert one == pytest.approx(true_z, rel=0.05)


def test_z_zero_raises_instead_of_nan(world):
    log_P = F.gdc_binary_log_target(world.log_a, torch.zeros_like(world.log_a))
    running = F.RunningLogZ()
    with pytest.raises(ValueError, match="satisf"):
        running.update(log_P[:5], world.log_a[:5])


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("target", ["rlkl", "gdc"])
@pytest.mark.parametrize("name", DIVS)
def test_exact_fdpg_gradient_equals_gradient_of_divergence(world, target, name):
    """Σ π f'(π/p) ∇log π (f-DPG) equals autograd of D_f(π||p) = Σ p f(π/p) (+ f'(∞) π(p=0))."""
    if target == "gdc" and name == "reverse_kl":
        pytest.skip("KL(π||p) is infinite when p has zeros and π does not")
    log_P = world.rlkl_log_target() if target == "rlkl" else world.gdc_log_target()
    log_p = F.normalise_log_target(log_P)
    pi = _random_policy(world)
    g_exact = _grad(pi, F.exact_f_divergence(pi.log_prob_all(), log_p, name))
    g_fdpg = _grad(pi, F.exact_fdpg_surrogate(pi.log_prob_all(), log_p, name))
    torch.testing.assert_close(g_fdpg, g_exact, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", DIVS)
def test_sampled_fdpg_gradient_matches_exact_within_mc_error(world, name):
    log_p = F.normalise_log_target(world.rlkl_log_target())
    pi = _random_policy(world)
    g_exact = _grad(pi, F.exact_f_divergence(pi.log_prob_all(), log_p, name))
    g = torch.Generator().manual_seed(1)
    grads = []
    for _ in range(150):
        x = pi.sample(64, g)
        log_pi = pi.log_prob(x)  # (B,)
        R = F.pseudo_reward((log_pi - log_p[pi.index(x)]).detach(), name)
        loss = F.fdpg_loss(log_pi, R, F.leave_one_out_baseline(R)).losses
        grads.append(_grad(pi, loss.mean()))
    G = torch.stack(grads)  # (M, D)
    mean, se = G.mean(0), G.std(0) / math.sqrt(len(G))
    z = (mean - g_exact) / (se + 1e-12)
    assert z.abs().max() < 5.0, f"max |z| = {z.abs().max():.2f}"
    # the test has power: the same data reject "the gradient is 0"
    assert (g_exact.abs() / (se + 1e-12)).max() > 8.0


def test_reverse_kl_gradient_is_minus_rlkl_policy_gradient_over_beta(world):
    """∇ KL(π||p_RLKL) = -(1/β) ∇ J_RLKL, J = E_π[r - β log(π/a)] (Lecture 6)."""
    log_p = F.normalise_log_target(world.rlkl_log_target())
    pi = _random_policy(world)
    g_fdpg = _grad(pi, F.exact_fdpg_surrogate(pi.log_prob_all(), log_p, "reverse_kl"))
    lp = pi.log_prob_all()
    J = (lp.exp() * (world.reward - world.beta * (lp - world.log_a))).sum()
    g_rl = _grad(pi, J)
    torch.testing.assert_close(g_fdpg, -g_rl / world.beta, rtol=1e-10, atol=1e-12)


def test_leave_one_out_baseline():
    r = torch.tensor([1.0, 2.0, 6.0])
    torch.testing.assert_close(F.leave_one_out_baseline(r), torch.tensor([4.0, 3.5, 1.5]))


# ---------------------------------------------------------------- divergence values

@pytest.mark.parametrize("name", DIVS)
def test_exact_divergence_matches_scipy(world, name):
    log_p = F.normalise_log_target(world.rlkl_log_target())
    lpi = _random_policy(world).log_prob_all().detach()
    p, q = log_p.exp().numpy(), lpi.exp().numpy()
    m = 0.5 * (p + q)
    expected = {"forward_kl": scipy.stats.entropy(p, q), "reverse_kl": scipy.stats.entropy(q, p),
                "tv": 0.5 * abs(p - q).sum(),
                "js": scipy.stats.entropy(p, m) + scipy.stats.entropy(q, m)}[name]
    assert float(F.exact_f_divergence(lpi, log_p, name)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", ["forward_kl", "tv", "js"])
def test_sampled_divergence_estimate_is_unbiased(world, name):
    log_p = F.normalise_log_target(world.gdc_log_target())  # zeros in p: exercises f'(∞)
    pi = _random_policy(world)
    lpi = pi.log_prob_all().detach()
    exact = float(F.exact_f_divergence(lpi, log_p, name))
    x = pi.sample(40000, torch.Generator().manual_seed(2))
    lr = lpi[pi.index(x)] - log_p[pi.index(x)]
    est = float(F.estimate_f_divergence(lr, name))
    assert est == pytest.approx(exact, rel=0.05)
    assert float(F.kl_from_logs(log_p, lpi)) == pytest.approx(float(kl_categorical(log_p.exp(), lpi.exp())), rel=1e-9)


# ---------------------------------------------------------------- GDC distributional

def test_fit_gdc_lambdas_matches_moments_and_brentq(world):
    phi = torch.stack([world.reward, (world.sequences == 2).double().mean(1)], 1)  # (N, 2)
    target = torch.tensor([0.3, 0.2], dtype=torch.float64)
    lam = F.fit_gdc_lambdas(phi, target, log_weights=world.log_a)
    log_p = F.normalise_log_target(F.gdc_distributional_log_target(world.log_a, phi, lam))
    torch.testing.assert_close(log_p.exp() @ phi, target, atol=1e-6, rtol=0)
    # one feature: compare with scipy's root finder on E_λ[φ] = μ̄
    f1 = phi[:, :1]

    def gap(l):
        w = torch.softmax(world.log_a + l * f1[:, 0], 0)
        return float(w @ f1[:, 0]) - 0.3

    lam1 = F.fit_gdc_lambdas(f1, [0.3], log_weights=world.log_a)
    assert float(lam1[0]) == pytest.approx(scipy.optimize.brentq(gap, -20, 20, xtol=1e-12), abs=1e-4)
    with pytest.raises(ValueError, match="target_moments"):
        F.fit_gdc_lambdas(f1, [1.5], log_weights=world.log_a)


# ---------------------------------------------------------------- training in the exact world

@pytest.mark.parametrize("name", ["forward_kl", "js"])
@pytest.mark.parametrize("target", ["rlkl", "gdc"])
def test_exact_training_converges_to_p(world, name, target):
    log_P = world.rlkl_log_target() if target == "rlkl" else world.gdc_log_target()
    _, hist = F.train_exact_fdpg(world, log_P, name, steps=150, batch_size=128, lr=0.05)
    assert hist["kl_p_pi"][0] > 0.1
    assert hist["kl_p_pi"][-1] < 0.05
    assert abs(hist["log_z_hat"][-1] - hist["log_z"][-1]) < 0.05


# ---------------------------------------------------------------- the LM side (no model needed)

def test_lexical_constraint_and_distinct_n():
    task = F.GDCBinaryTask(words=("good", "great"))
    b, log_b = task.score(["a Good film", "goodness no", "great!", ""])
    torch.testing.assert_close(b, torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert torch.isneginf(log_b[1])
    assert F.distinct_n(["a b a b", "a b"], 1) == pytest.approx(2 / 6)
    assert F.distinct_n(["a b a b", "a b"], 2) == pytest.approx(2 / 4)


class _CharTokenizer:
    """Token i <-> letter chr(ord('a') + i - 1); token 0 is EOS (for the random_lm fixture)."""

    eos_token_id = pad_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) - ord("a") + 1 for c in text]}

    def decode(self, ids):
        return " ".join(chr(ord("a") + i - 1) for i in ids if i)


def test_train_fdpg_raises_constraint_rate(random_lm):
    import copy

    policy, base = copy.deepcopy(random_lm).train(), copy.deepcopy(random_lm).eval()
    task = F.GDCBinaryTask(words=("c",))
    cfg = F.FDPGConfig(iterations=12, batch_size=32, lr=3e-2, max_new_tokens=4)
    torch.manual_seed(0)
    hist = F.train_fdpg(policy, base, _CharTokenizer(), ["ab", "ba"], task, "forward_kl", cfg,
                        progress=False)
    assert set(hist) >= {"alignment", "kl_pi_a", "f_div", "log_z"}
    assert all(math.isfinite(v) for v in hist["f_div"] + hist["kl_pi_a"] + hist["log_z"])
    before = F.evaluate_fdpg(base, base, _CharTokenizer(), ["ab", "ba"] * 64, task, cfg)
    after = F.evaluate_fdpg(policy, base, _CharTokenizer(), ["ab", "ba"] * 64, task, cfg)
    assert after["alignment"] > before["alignment"] + 0.1
    assert after["kl_pi_a"] > 0
