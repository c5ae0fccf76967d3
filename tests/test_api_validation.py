"""Every public callable of rlhf_edu rejects bad input with a ValueError that names the argument.

The test walks the package (every module, every public function or class *defined* in it) and
requires an entry in :data:`CASES`: a list of bad calls, each with the argument the message must
name. A new public function without a bad-input case fails :func:`test_every_public_callable_has_cases`
until it gets cases or an :data:`EXEMPT` entry with a reason.

Conventions the cases follow (decided here, kept by the package):

* float tensors (log-probs, rewards, logits) accept float16, bfloat16, float32 and float64;
  integer or bool tensors there are rejected;
* token ids / labels must be integer tensors;
* masks accept bool, integer and floating 0/1 tensors (the package and notebooks pass all three);
  only their shape is checked, so masked reductions stay free of GPU syncs;
* configs (dataclasses) validate their fields in ``__post_init__``: the case constructs one with
  a bad field and the field's name must appear in the message;
* the course/CLI back end (``rlhf_edu.course``) raises ``CourseError``, a ``ValueError``; its
  messages name the command-line option (``--only``, ``--out``, ``--scale``) or the offending
  file, which is what a user at the terminal needs, so those cases name that.

A case is ``C(*args, arg=<name>, **kwargs)`` (call the callable with these arguments) or
``M(fn, arg=<name>)`` (run ``fn()``: for a method of a class, or an input that needs a fixture).
Values wrapped in :class:`Lazy` are built at test time (``TOK``: the tiny tokenizer, ``LM``: a
random 11-token GPT-2, ``VM``: a value/reward model on it).
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from pathlib import Path

import pytest
import torch

import rlhf_edu

# --------------------------------------------------------------------------------------------
# case helpers
# --------------------------------------------------------------------------------------------


class Lazy:
    """A value built when the case runs (``fixtures`` holds the session objects)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, fx):
        return self.fn(fx)


class C:
    def __init__(self, *args, arg: str, **kwargs):
        self.args, self.kwargs, self.arg = args, kwargs, arg

    def run(self, fn, fx):
        res = lambda v: v(fx) if isinstance(v, Lazy) else v  # noqa: E731
        return fn(*[res(a) for a in self.args], **{k: res(v) for k, v in self.kwargs.items()})

    def __repr__(self):
        return f"<{self.arg}>"


class M(C):
    def __init__(self, fn, *, arg: str):
        self.fn, self.arg = fn, arg

    def run(self, _callable, fx):
        return self.fn(fx)


def F(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


def I(*shape):  # noqa: E743
    return torch.zeros(shape, dtype=torch.long)


def ones(*shape):
    return torch.ones(shape)


TOK = Lazy(lambda fx: fx["tok"])
LM = Lazy(lambda fx: fx["lm"])
VM = Lazy(lambda fx: fx["vm"])
NAN = float("nan")


def _pairs(n=3):
    from datasets import Dataset

    return Dataset.from_dict({"prompt": ["Jaws:"] * n, "chosen": ["great fun"] * n,
                              "rejected": ["dull"] * n})


def _corpus(n=4):
    from datasets import Dataset

    return Dataset.from_dict({"text": ["a fine film"] * n, "label": ["fresh", "rotten"] * (n // 2),
                              "movie": ["Jaws", "Alien"] * (n // 2)})


def _pair_batch(b_chosen, b_rejected, T=4):
    mk = lambda b: {k: torch.ones(b, T, dtype=torch.long) for k in  # noqa: E731
                    ("input_ids", "attention_mask", "response_mask")}
    return {"chosen": mk(b_chosen), "rejected": mk(b_rejected)}


def _ppo_batch():
    from rlhf_edu.ppo import PPOBatch

    return PPOBatch(I(2, 5), torch.ones(2, 5, dtype=torch.long), ones(2, 3), 2, F(2, 3), F(2, 3),
                    F(2, 3), ["a", "b"], ["p", "q"])


def _nb(cells=()):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def _u():
    from rlhf_edu.reward_collapse import logsigmoid_utility

    return logsigmoid_utility(0.1)


def _seg(end=0):
    from rlhf_edu.rewards import Segment

    return Segment(0, end, "a")


NOTEBOOKS = Path(rlhf_edu.__file__).resolve().parent.parent / "notebooks"

# --------------------------------------------------------------------------------------------
# the table: qualified name -> bad calls
# --------------------------------------------------------------------------------------------

CASES: dict[str, list[C]] = {
    # ---------------------------------------------------------------- bradley_terry
    "rlhf_edu.bradley_terry.preference_probability": [
        C(F(3), F(2), arg="r_rejected"), C(I(3), F(3), arg="r_chosen"), C(F(3, 2), F(3, 2), arg="r_chosen")],
    "rlhf_edu.bradley_terry.bt_loss": [
        C(F(3), F(2), arg="r_rejected"), C(F(3), I(3), arg="r_rejected"), C(F(0), F(0), arg="r_chosen")],
    "rlhf_edu.bradley_terry.margin_loss": [
        C(F(3), F(3), F(2), arg="margin"), C(F(3), F(3), NAN, arg="margin"), C(F(3), F(2), 0.0, arg="r_chosen")],
    "rlhf_edu.bradley_terry.centring_penalty": [
        C(F(3), F(3), -1.0, arg="coef"), C(F(3), F(2), 0.1, arg="r_chosen")],
    "rlhf_edu.bradley_terry.normalise_rewards": [
        C(F(3, 2), arg="rewards"), C(I(3), arg="rewards"), C(F(3), F(2), arg="offset")],
    "rlhf_edu.bradley_terry.pairwise_accuracy": [C(F(3), F(4), arg="r_chosen"), C(I(3), I(3), arg="r_chosen")],
    "rlhf_edu.bradley_terry.calibration": [
        C([0.5, 1.5], [1, 0], arg="p_pred"), C([0.5, 0.5], [2, 0], arg="outcomes"),
        C([0.5], [1, 0], arg="p_pred"), C([0.5], [1], n_bins=0, arg="n_bins")],
    "rlhf_edu.bradley_terry.pair_calibration": [
        C(F(3), F(2), arg="r_chosen"), C(F(3), F(3), n_bins=0, arg="n_bins"), C([0.0], [1.0], arg="r_chosen")],
    "rlhf_edu.bradley_terry.sample_bt_comparisons": [C([1.0], 5, arg="r_star"), C([1.0, 2.0], 0, arg="n_comparisons")],
    "rlhf_edu.bradley_terry.fit_bt_mle": [
        C(1, [0], [1], arg="n_items"), C(3, [0.5], [1], arg="winners"), C(3, [0], [5], arg="losers"),
        C(3, [0], [1], l2=-1.0, arg="l2")],
    "rlhf_edu.bradley_terry.RewardModelConfig": [
        C(lr=0.0, arg="lr"), C(head_lr=-1.0, arg="head_lr"), C(steps=0, arg="steps"), C(batch_size=0, arg="batch_size"),
        C(max_len=1, arg="max_len"), C(freeze_layers=-1, arg="freeze_layers"),
        C(centring_coef=-0.1, arg="centring_coef"), C(grad_clip=0.0, arg="grad_clip"), C(eval_every=0, arg="eval_every")],
    "rlhf_edu.bradley_terry.score_texts": [
        C(VM, TOK, ["a"], ["b", "c"], arg="responses"), C(VM, TOK, ["a"], ["b"], batch_size=0, arg="batch_size"),
        C(VM, TOK, ["a"], ["b"], max_len=1, arg="max_len"), C(VM, TOK, "ab", "cd", arg="prompts")],
    "rlhf_edu.bradley_terry.pair_rewards": [
        C(VM, TOK, {"prompt": ["a"], "chosen": ["b"], "rejected": []}, Lazy(lambda fx: fx["rm_cfg"]), arg="pairs"),
        C(VM, TOK, {"prompt": ["a"], "chosen": ["b"]}, Lazy(lambda fx: fx["rm_cfg"]), arg="pairs"),
        C(VM, TOK, {"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]}, "tiny", arg="config")],
    "rlhf_edu.bradley_terry.evaluate_reward_model": [
        C(VM, TOK, Lazy(lambda fx: _pairs(0)), Lazy(lambda fx: fx["rm_cfg"]), arg="pairs"),
        C(VM, TOK, Lazy(lambda fx: _pairs(2)), {"lr": 1.0}, arg="config")],
    "rlhf_edu.bradley_terry.freeze_lower_layers": [C(VM, 99, arg="n_layers"), C(VM, -1, arg="n_layers")],
    "rlhf_edu.bradley_terry.train_reward_model": [
        C(VM, TOK, Lazy(lambda fx: _pairs(0)), Lazy(lambda fx: _pairs(2)), Lazy(lambda fx: fx["rm_cfg"]),
          arg="train_pairs"),
        C(VM, TOK, Lazy(lambda fx: _pairs(3)), Lazy(lambda fx: _pairs(2)), Lazy(lambda fx: fx["rm_cfg"]),
          margins=[1.0, 2.0], arg="margins"),
        C(VM, TOK, Lazy(lambda fx: _pairs(3)), Lazy(lambda fx: _pairs(2)), None, arg="config")],
    # ---------------------------------------------------------------- checkpoint
    "rlhf_edu.checkpoint.atomic_write": [C("", lambda tmp: None, arg="path"), C("/tmp/x.bin", 5, arg="write"),
                                         C("/tmp", lambda tmp: None, arg="path")],
    "rlhf_edu.checkpoint.save_state": [C("/tmp/never_written.pt", [1, 2], arg="state"), C(5, {}, arg="path")],
    "rlhf_edu.checkpoint.load_state": [C("/nonexistent/state.pt", arg="path"), C(None, arg="path")],
    "rlhf_edu.checkpoint.recover_pretrained_dir": [C("", arg="out_dir")],
    "rlhf_edu.checkpoint.save_pretrained_atomic": [C("/tmp/never_written_dir", arg="objects"),
                                                   C("/tmp/never_written_dir", "model", arg="objects[0]"),
                                                   C(None, LM, arg="out_dir")],
    # ---------------------------------------------------------------- config
    "rlhf_edu.config.Scale": [
        C(name="huge", model_source="x", arg="name"), C(name="tiny", model_source="x", max_prompt_tokens=0,
                                                         arg="max_prompt_tokens"),
        C(name="tiny", model_source="x", rl_batch_size=0, arg="rl_batch_size"),
        C(name="tiny", model_source="x", dtype="int8", arg="dtype")],
    "rlhf_edu.config.gpt2": [C(source=5, arg="source")],
    "rlhf_edu.config.gpt2_weights_available": [C(source=5, arg="source")],
    "rlhf_edu.config.get_scale": [C("huge", verbose=False, arg="name")],
    "rlhf_edu.config.pick_device": [C("nonsense", arg="prefer")],
    "rlhf_edu.config.pick_dtype": [C("nonsense", arg="device"), C("cpu", scale="tiny", arg="scale")],
    "rlhf_edu.config.seed_everything": [C(-1, arg="seed"), C(0, threads=0, arg="threads"), C(1.5, arg="seed")],
    # ---------------------------------------------------------------- course (CLI back end)
    "rlhf_edu.homework.check_outputs": [C([], arg="nb")],
    "rlhf_edu.course.parse_only": [C("x", arg="--only"), C(",", arg="--only")],
    "rlhf_edu.course.find_notebooks": [C(NOTEBOOKS, only="99", arg="--only")],
    "rlhf_edu.course.read_notebook": [C("/nonexistent/x.ipynb", arg="/nonexistent/x.ipynb")],
    "rlhf_edu.course.write_notebook": [C({"a": 1}, "/tmp/never_written.ipynb", arg="nb")],
    "rlhf_edu.course.is_check_cell": [C("print(1)", arg="cell")],
    "rlhf_edu.course.has_solution": [C(None, arg="cell")],
    "rlhf_edu.course.execute_notebook": [
        C(Lazy(lambda fx: _nb()), Path("."), timeout=0, arg="timeout"), C({}, Path("."), arg="nb")],
    "rlhf_edu.course.html_exporter": [C(5, arg="out_dir")],
    "rlhf_edu.course.strip_ansi": [C(5, arg="text")],
    "rlhf_edu.course.run_course": [
        C(scale="huge", notebooks_dir=NOTEBOOKS, arg="--scale"), C(timeout=0, arg="timeout"),
        C(notebooks_dir=NOTEBOOKS, out_dir=NOTEBOOKS, arg="--out"), C(only="x", arg="--only")],
    "rlhf_edu.course.format_table": [C(["a", "b"], [["1"]], arg="rows")],
    "rlhf_edu.homework.find_exercises": [C(None, arg="nb")],
    "rlhf_edu.homework.make_homework": [C([], arg="nb")],
    "rlhf_edu.homework.homework_name": [C(5, arg="path")],
    "rlhf_edu.homework.build_homework": [C(notebooks_dir=NOTEBOOKS, out_dir=NOTEBOOKS, arg="--out"),
                                       C(only="x", out_dir="/tmp/never_written_hw", arg="--only")],
    "rlhf_edu.homework.check_homework": [C("answers.txt", arg="answers.txt"), C("a.ipynb", timeout=0, arg="timeout")],
    "rlhf_edu.homework.format_check": [C([1, 2], arg="results")],
    "rlhf_edu.slides.check_vendor": [C(Path("/nonexistent/vendor"), arg="/nonexistent/vendor")],
    "rlhf_edu.slides.prepare_for_slides": [C("nb", arg="nb")],
    "rlhf_edu.slides.slides_exporter": [C(5, arg="vendor_rel")],
    "rlhf_edu.slides.build_slides": [C(only="x", arg="--only")],
    # ---------------------------------------------------------------- data
    "rlhf_edu.data.format_document": [C(5, "text", arg="movie"), C("Jaws", None, arg="text")],
    "rlhf_edu.data.format_prompt": [C(None, arg="movie")],
    "rlhf_edu.data.load_corpus": [C("web", arg="source")],
    "rlhf_edu.data.split_by_movie": [
        C(Lazy(lambda fx: _corpus()), fractions=(0.5, 0.5), arg="fractions"),
        C(Lazy(lambda fx: _corpus(0)), arg="ds")],
    "rlhf_edu.data.load_splits": [C(source="web", arg="source")],
    "rlhf_edu.data.preference_pairs": [
        C(Lazy(lambda fx: _corpus(0)), arg="ds"), C(Lazy(lambda fx: _corpus()), max_pairs_per_movie=0,
                                                     arg="max_pairs_per_movie"),
        C(Lazy(lambda fx: _corpus()), max_chars=0, arg="max_chars")],
    "rlhf_edu.data.make_prompts": [
        C(Lazy(lambda fx: _corpus()), n_words=-1, arg="n_words"), C(Lazy(lambda fx: _corpus()), n=0, arg="n"),
        C(Lazy(lambda fx: _corpus(0)), arg="ds")],
    "rlhf_edu.data.tokenize_prompt_response": [
        C(TOK, ["a"], ["b", "c"], arg="responses"), C(TOK, ["a"], ["b"], max_len=1, arg="max_len"),
        C(TOK, ["a"], ["b"], max_prompt_tokens=0, arg="max_prompt_tokens"), C(TOK, [], [], arg="prompts"),
        C(TOK, "ab", "cd", arg="prompts")],
    "rlhf_edu.data.PairCollator": [C(TOK, max_len=1, arg="max_len"), C(TOK, max_prompt_tokens=0,
                                                                       arg="max_prompt_tokens")],
    "rlhf_edu.data.lm_documents": [C({"text": ["a"]}, arg="ds")],
    # ---------------------------------------------------------------- divergences
    "rlhf_edu.divergences.check_probabilities": [
        C([0.5, 0.6], arg="p"), C([0.2, 0.2], name="pi", arg="pi"), C([-0.5, 1.5], arg="p"), C([], arg="p")],
    "rlhf_edu.divergences.kl_categorical": [
        C([0.5, 0.5], [1 / 3] * 3, arg="q"), C([0.5, 0.5], p_logits=[0.0, 0.0], q=[0.5, 0.5], arg="p"),
        C([0.9, 0.9], [0.5, 0.5], arg="p"), C(p_logits=[NAN, 0.0], q_logits=[0.0, 0.0], arg="p_logits")],
    "rlhf_edu.divergences.kl_gaussian": [C(0.0, -1.0, 0.0, 1.0, arg="sigma_p"), C(0.0, 1.0, NAN, 1.0, arg="mu_q")],
    "rlhf_edu.divergences.k1": [C(torch.tensor([NAN]), arg="log_ratio"), C("x", arg="log_ratio")],
    "rlhf_edu.divergences.k2": [C(torch.tensor([NAN]), arg="log_ratio")],
    "rlhf_edu.divergences.k3": [C(torch.tensor([NAN]), arg="log_ratio")],
    "rlhf_edu.divergences.per_token_kl": [
        C(F(2, 3, 4), F(2, 3, 5), arg="logits_q"), C(F(2, 3, 4), F(2, 3, 4), mask=ones(2, 4), arg="mask"),
        C(F(2, 3), F(2, 3), arg="logits_p"), C(I(2, 3, 4), I(2, 3, 4), arg="logits_p")],
    "rlhf_edu.divergences.sampled_log_ratio": [
        C(F(2, 3), F(2, 4), arg="logprobs_q"), C(F(2, 3), F(2, 3), mask=ones(3, 3), arg="mask"),
        C(I(2, 3), I(2, 3), arg="logprobs_p")],
    "rlhf_edu.divergences.sequence_kl_estimates": [
        C(F(2, 3), F(2, 4), arg="logprobs_q"), C(F(2, 3), F(2, 3), per_token_exact=F(2, 4), arg="per_token_exact"),
        C(F(2, 3), F(2, 3), mask=ones(2, 2), arg="mask")],
    "rlhf_edu.divergences.kl_estimates_from_logits": [
        C(F(2, 3, 4), F(2, 3, 4), I(2, 2), arg="tokens"), C(F(2, 3, 4), F(2, 3, 4), F(2, 3), arg="tokens"),
        C(F(2, 3, 4), F(2, 3, 4), I(2, 3), mask=ones(2, 4), arg="mask")],
    "rlhf_edu.divergences.FDivergence": [
        C("x", 5, abs, 1.0, arg="f"), C("x", abs, None, 1.0, arg="f_prime"), C("x", abs, abs, NAN, arg="f_prime_inf")],
    "rlhf_edu.divergences.get_f_divergence": [C("bogus", arg="name")],
    "rlhf_edu.divergences.f_divergence": [
        C([0.5, 0.5], [0.5, 0.5], "bogus", arg="name"), C([0.5, 0.5], [0.2, 0.2], "forward_kl", arg="q"),
        C([0.5, 0.5], [1.0], "forward_kl", arg="q")],
    "rlhf_edu.divergences.kl_regularized_objective": [
        C([0.5, 0.5], [0.5, 0.5], [1.0, 0.0], 0.0, arg="beta"),
        C([0.5, 0.5], [0.5, 0.5], [1.0, 0.0, 2.0], 0.1, arg="reward"),
        C([0.5, 0.5], [0.5, 0.6], [1.0, 0.0], 0.1, arg="pi_ref")],
    "rlhf_edu.divergences.kl_regularized_optimum": [
        C([0.5, 0.5], [1.0, 0.0], -1.0, arg="beta"), C([0.5, 0.7], [1.0, 0.0], 0.1, arg="pi_ref")],
    # ---------------------------------------------------------------- dpo
    "rlhf_edu.dpo.dpo_loss": [
        C(F(3), F(3), F(3), F(2), 0.1, arg="ref_rejected_logps"), C(I(3), F(3), F(3), F(3), 0.1,
                                                                    arg="policy_chosen_logps"),
        C(F(3), F(3), F(3), F(3), -1.0, arg="beta"), C(F(3, 1), F(3), F(3), F(3), 0.1, arg="policy_chosen_logps")],
    "rlhf_edu.dpo.length_normalised_nll": [
        C(F(3), torch.tensor([1, 0, 2]), arg="chosen_lengths"), C(F(3), I(2) + 1, arg="chosen_lengths"),
        C(F(3), [1, 2, 3], arg="chosen_lengths")],
    "rlhf_edu.dpo.token_mean_nll": [C(F(2, 3), I(2, 4), arg="chosen_mask"), C(F(2, 3), I(2, 3), arg="chosen_mask"),
                                    C(I(2, 3), ones(2, 3), arg="chosen_token_logps")],
    "rlhf_edu.dpo.dpo_nll_loss": [
        C(F(3), F(3), F(3), F(3), I(3) + 1, 0.1, -1.0, arg="alpha"),
        C(F(3), F(3), F(3), F(3), I(2) + 1, 0.1, 1.0, arg="chosen_lengths"),
        C(F(3), F(3), F(3), F(3), I(3) + 1, 0.0, 1.0, arg="beta")],
    "rlhf_edu.dpo.ipo_loss": [C(F(3), F(3), F(3), F(3), 0.0, arg="beta"), C(F(3), F(2), F(3), F(3), 0.1,
                                                                           arg="policy_rejected_logps")],
    "rlhf_edu.dpo.implicit_reward_accuracy": [C(F(3), F(2), arg="rejected_rewards"), C(I(3), I(3),
                                                                                       arg="chosen_rewards")],
    "rlhf_edu.dpo.pair_logprobs": [C(LM, _pair_batch(3, 2), arg="batch"), C(LM, {"chosen": {}}, arg="batch")],
    "rlhf_edu.dpo.reference_logprobs": [C(LM, TOK, [], arg="pairs"),
                                        C(LM, TOK, Lazy(lambda fx: _pairs()), batch_size=0, arg="batch_size")],
    "rlhf_edu.dpo.DPOConfig": [
        C(beta=-1.0, arg="beta"), C(alpha=NAN, arg="alpha"), C(lr=0.0, arg="lr"), C(batch_size=0, arg="batch_size"),
        C(max_prompt_tokens=0, arg="max_prompt_tokens"), C(n_eval_pairs=0, arg="n_eval_pairs"),
        C(grad_clip=0.0, arg="grad_clip"), C(amp_dtype="float8", arg="amp_dtype")],
    "rlhf_edu.dpo.evaluate_dpo": [
        C(LM, TOK, Lazy(lambda fx: _pairs(3)), Lazy(lambda fx: fx["pair_logps2"]), Lazy(lambda fx: fx["dpo_cfg"]),
          arg="reference"),
        C(LM, TOK, Lazy(lambda fx: _pairs(2)), Lazy(lambda fx: fx["pair_logps2"]), {"beta": 0.1}, arg="config")],
    "rlhf_edu.dpo.train_dpo": [
        C(LM, TOK, Lazy(lambda fx: _pairs(2)), config=Lazy(lambda fx: fx["dpo_cfg"]), arg="train_pairs"),
        C(LM, TOK, Lazy(lambda fx: _pairs(5)), config=Lazy(lambda fx: fx["dpo_cfg"]),
          reference=Lazy(lambda fx: fx["pair_logps2"]), arg="reference"),
        C(LM, TOK, Lazy(lambda fx: _pairs(5)), config="tiny", arg="config")],
    # ---------------------------------------------------------------- fdpg
    "rlhf_edu.fdpg.resolve_divergence": [C("bogus", arg="divergence")],
    "rlhf_edu.fdpg.rlkl_log_target": [C(F(3), F(2), 0.1, arg="reward"), C(F(3), F(3), 0.0, arg="beta")],
    "rlhf_edu.fdpg.gdc_binary_log_target": [C(F(3), torch.tensor([0, 1, 2]), arg="b"), C(F(3), F(2), arg="b")],
    "rlhf_edu.fdpg.gdc_distributional_log_target": [
        C(F(3), F(3, 2), F(3), arg="lambdas"), C(F(3), F(2, 2), F(2), arg="features")],
    "rlhf_edu.fdpg.moments": [C(F(3, 2), log_weights=F(2), arg="log_weights"), C(F(3), arg="features")],
    "rlhf_edu.fdpg.fit_gdc_lambdas": [
        C(torch.tensor([[0.0], [1.0]]), [0.5, 0.5], arg="target_moments"),
        C(torch.tensor([[0.0], [1.0]]), [1.5], arg="target_moments"), C(F(3), [0.5], arg="features")],
    "rlhf_edu.fdpg.exact_log_partition": [C(F(3, 2), arg="log_P"), C(torch.full((3,), -math.inf), arg="log_P")],
    "rlhf_edu.fdpg.normalise_log_target": [C(F(3, 2), arg="log_P")],
    "rlhf_edu.fdpg.estimate_log_z": [C(F(3), F(2), arg="log_q"), C(torch.full((3,), -math.inf), F(3), arg="log_P")],
    "rlhf_edu.fdpg.RunningLogZ": [
        M(lambda fx: rlhf_edu.fdpg.RunningLogZ().update(F(3), F(2)), arg="log_q"),
        M(lambda fx: rlhf_edu.fdpg.RunningLogZ().log_z, arg="log_P")],
    "rlhf_edu.fdpg.log_ratio": [C(F(3), F(2), 0.0, arg="log_P"), C(F(3), F(3), F(3), arg="log_z")],
    "rlhf_edu.fdpg.pseudo_reward": [
        C(F(3), "bogus", arg="divergence"), C(F(3), "reverse_kl", max_log_ratio=0.0, arg="max_log_ratio"),
        C(F(3, 2), "reverse_kl", arg="log_ratio")],
    "rlhf_edu.fdpg.leave_one_out_baseline": [C(F(1), arg="rewards"), C(F(2, 2), arg="rewards")],
    "rlhf_edu.fdpg.fdpg_loss": [C(F(3), F(2), arg="pseudo_rewards"), C(F(3), F(3), F(2), arg="baseline")],
    "rlhf_edu.fdpg.estimate_f_divergence": [C(F(3, 2), "reverse_kl", arg="log_ratio"), C(F(3), "x", arg="divergence")],
    "rlhf_edu.fdpg.exact_f_divergence": [C(F(3), F(2), "reverse_kl", arg="log_p")],
    "rlhf_edu.fdpg.exact_fdpg_surrogate": [C(F(3), F(2), "reverse_kl", arg="log_p"),
                                           C(F(3), F(3), "reverse_kl", max_log_ratio=-1.0, arg="max_log_ratio")],
    "rlhf_edu.fdpg.enumerate_sequences": [C(1, 3, arg="vocab_size"), C(2, 0, arg="length"),
                                          C(10, 10, arg="vocab_size")],
    "rlhf_edu.fdpg.TabularPolicy": [
        C(2, 2, logits=[F(1, 3)], arg="logits"), C(1, 2, arg="vocab_size"), C(2, 0, arg="length"),
        M(lambda fx: rlhf_edu.fdpg.TabularPolicy(2, 2).log_prob(I(3, 3)), arg="seqs")],
    "rlhf_edu.fdpg.make_exact_world": [C(vocab_size=1, arg="vocab_size"), C(beta=0.0, arg="beta")],
    "rlhf_edu.fdpg.kl_from_logs": [C(F(3), F(2), arg="log_q"), C(F(3, 1), F(3, 1), arg="log_p")],
    "rlhf_edu.fdpg.train_exact_fdpg": [
        C(Lazy(lambda fx: fx["world"]), F(5), "reverse_kl", arg="log_P"),
        C(Lazy(lambda fx: fx["world"]), F(4), "reverse_kl", steps=-1, arg="steps"),
        C(Lazy(lambda fx: fx["world"]), F(4), "reverse_kl", batch_size=0, arg="batch_size"),
        C(Lazy(lambda fx: fx["world"]), F(4), "bogus", arg="divergence")],
    "rlhf_edu.fdpg.GDCBinaryTask": [C((), arg="words"), C(("good", ""), arg="words")],
    "rlhf_edu.fdpg.RLKLTask": [C(beta=0.0, arg="beta"), C(reward_fn=5, arg="reward_fn")],
    "rlhf_edu.fdpg.FDPGConfig": [
        C(iterations=0, arg="iterations"), C(batch_size=0, arg="batch_size"), C(lr=0.0, arg="lr"),
        C(max_new_tokens=0, arg="max_new_tokens"), C(max_prompt_tokens=0, arg="max_prompt_tokens"),
        C(max_log_ratio=0.0, arg="max_log_ratio"), C(max_grad_norm=0.0, arg="max_grad_norm"),
        C(eval_samples=0, arg="eval_samples")],
    "rlhf_edu.fdpg.sequence_logprobs": [C(LM, "rollout", arg="rollout")],
    "rlhf_edu.fdpg.train_fdpg": [
        C(LM, LM, TOK, [], Lazy(lambda fx: fx["task"]), "reverse_kl", arg="prompts"),
        C(LM, LM, TOK, ["a"], Lazy(lambda fx: fx["task"]), "bogus", arg="divergence"),
        C(LM, LM, TOK, ["a"], Lazy(lambda fx: fx["task"]), "reverse_kl", config={}, arg="config"),
        C(LM, LM, TOK, ["a"], None, "reverse_kl", arg="task")],
    "rlhf_edu.fdpg.distinct_n": [C(["a b"], 0, arg="n"), C("a b", 1, arg="texts")],
    "rlhf_edu.fdpg.evaluate_policy": [
        C(LM, LM, TOK, [], Lazy(lambda fx: fx["task"]), arg="prompts"),
        C(LM, LM, TOK, ["a"], None, arg="task"), C(LM, LM, TOK, ["a"], Lazy(lambda fx: fx["task"]), config=3,
                                                   arg="config")],
    # ---------------------------------------------------------------- generation
    "rlhf_edu.generation.encode_prompts": [C(TOK, [], arg="prompts"), C(TOK, ["a"], max_prompt_tokens=0,
                                                                        arg="max_prompt_tokens"),
                                           C(TOK, "abc", arg="prompts")],
    "rlhf_edu.generation.sample": [
        C(LM, TOK, ["a"], 0, arg="max_new_tokens"), C(LM, TOK, ["a"], temperature=0.0, arg="temperature"),
        C(LM, TOK, ["a"], top_p=0.0, allow_biased=True, arg="top_p"), C(LM, TOK, ["a"], top_k=5, arg="top_k"),
        C(LM, TOK, ["a"], top_k=-1, allow_biased=True, arg="top_k"),
        C(LM, TOK, ["a"], min_new_tokens=-1, allow_biased=True, arg="min_new_tokens"),
        C(LM, TOK, [], arg="prompts"), C(LM, TOK, "a prompt", arg="prompts"),
        C(LM, TOK, ["a"], max_prompt_tokens=0, arg="max_prompt_tokens")],
    # ---------------------------------------------------------------- logprobs
    "rlhf_edu.logprobs.logprobs_of_labels": [
        C(F(2, 3, 5), I(2, 4), arg="labels"), C(F(2, 3, 5), F(2, 3), arg="labels"), C(I(2, 3, 5), I(2, 3), arg="logits"),
        C(F(2, 3), I(2, 3), arg="logits")],
    "rlhf_edu.logprobs.token_logprobs": [C(F(2, 3, 5), I(2, 4), arg="input_ids"), C(F(2, 3, 5), F(2, 3),
                                                                                     arg="input_ids")],
    "rlhf_edu.logprobs.forward_logits": [C(LM, I(2, 3), I(2, 4), arg="attention_mask"),
                                         C(LM, F(2, 3), I(2, 3), arg="input_ids"), C(LM, I(3), I(3), arg="input_ids")],
    "rlhf_edu.logprobs.model_token_logprobs": [C(LM, I(2, 3), I(2, 4), arg="attention_mask"),
                                               C(LM, F(2, 3), I(2, 3), arg="input_ids")],
    "rlhf_edu.logprobs.masked_token_logprobs": [
        C(LM, I(2, 4), I(2, 4), ones(2, 4), arg="score_mask"), C(LM, F(2, 4), I(2, 4), ones(2, 3), arg="input_ids"),
        C(LM, I(2, 4), I(2, 3), ones(2, 3), arg="attention_mask")],
    "rlhf_edu.logprobs.response_logits": [
        C(LM, I(2, 4), I(2, 4), 0, arg="prompt_length"), C(LM, I(2, 4), I(2, 4), 4, arg="prompt_length"),
        C(LM, I(2, 4), I(2, 3), 2, arg="attention_mask")],
    "rlhf_edu.logprobs.response_logprobs": [C(LM, I(2, 4), I(2, 4), 0, arg="prompt_length"),
                                            C(LM, F(2, 4), I(2, 4), 2, arg="input_ids")],
    "rlhf_edu.logprobs.masked_sum": [C(F(2, 3), ones(2, 4), arg="mask"), C(F(2, 3), [1, 1, 1], arg="mask")],
    "rlhf_edu.logprobs.masked_mean": [C(F(2, 3), ones(2, 4), arg="mask"), C(F(2, 3), F(2, 3), arg="mask"),
                                      C(I(2, 3), ones(2, 3), arg="x")],
    "rlhf_edu.logprobs.masked_var": [C(F(2, 3), ones(2, 4), arg="mask"), C(F(2, 3), torch.tensor([[1, 0, 0], [0, 0, 0]]),
                                                                           arg="mask"), C(I(2, 3), ones(2, 3), arg="x")],
    "rlhf_edu.logprobs.masked_whiten": [C(F(2, 3), ones(2, 4), arg="mask"), C(F(2, 3), ones(2, 3), eps=-1.0, arg="eps")],
    "rlhf_edu.logprobs.sequence_logprob": [
        C(F(2, 3), ones(2, 3), "avg", arg="reduction"), C(F(3), ones(3), "sum", arg="token_logps"),
        C(F(2, 3), ones(2, 4), "sum", arg="mask"), C(F(2, 3), torch.tensor([[1, 1, 0], [0, 0, 0]]), "sum", arg="mask")],
    "rlhf_edu.logprobs.batch_sequence_logprob": [
        C(LM, {"input_ids": I(2, 3), "attention_mask": I(2, 3) + 1, "response_mask": I(2, 3) + 1}, "avg",
          arg="reduction"),
        C(LM, {"input_ids": I(2, 3)}, arg="batch")],
    # ---------------------------------------------------------------- models
    "rlhf_edu.models.load_tokenizer": [C("huge", arg="scale"), C(5, arg="scale")],
    "rlhf_edu.models.load_base_model": [C("huge", arg="scale"), C("tiny", dtype="float32", arg="dtype"),
                                        C("tiny", dtype=torch.long, arg="dtype"), C("tiny", device="nonsense",
                                                                                    arg="device")],
    "rlhf_edu.models.load_policy": [C("huge", arg="scale"), C("tiny", dtype="bf16", arg="dtype")],
    "rlhf_edu.models.frozen_copy": [C(None, arg="model")],
    "rlhf_edu.models.position_ids_from_mask": [C(ones(3), arg="attention_mask")],
    "rlhf_edu.models.ScalarHeadModel": [C(Lazy(lambda fx: fx["lm"].transformer), 0, arg="hidden_size"),
                                        C(None, 16, arg="backbone")],
    "rlhf_edu.models.scalar_head_from_lm": [C(None, arg="lm")],
    "rlhf_edu.models.load_reward_model": [C("huge", arg="scale")],
    "rlhf_edu.models.load_value_model": [C("huge", arg="scale")],
    "rlhf_edu.models.n_parameters": [C(None, arg="model")],
    # ---------------------------------------------------------------- ppo
    "rlhf_edu.ppo.PPOConfig": [
        C(beta=-1.0, arg="beta"), C(gamma=2.0, arg="gamma"), C(lam=-0.1, arg="lam"), C(clip_eps=0.0, arg="clip_eps"),
        C(value_clip_eps=0.0, arg="value_clip_eps"), C(minibatch_size=5, arg="minibatch_size"),
        C(micro_batch_size=3, arg="micro_batch_size"), C(kl_estimator="k2", arg="kl_estimator"),
        C(ptx_coef=-1.0, arg="ptx_coef"), C(lr=0.0, arg="lr"), C(value_lr=-1.0, arg="value_lr"),
        C(iterations=0, arg="iterations"), C(batch_size=0, minibatch_size=1, arg="batch_size"),
        C(max_new_tokens=0, arg="max_new_tokens"), C(ppo_epochs=0, arg="ppo_epochs"),
        C(max_grad_norm=0.0, arg="max_grad_norm"), C(kl_target=0.0, arg="kl_target"),
        C(dtype="int8", arg="dtype"), C(max_prompt_tokens=0, arg="max_prompt_tokens")],
    "rlhf_edu.ppo.gae": [C(F(2, 3), F(2, 3), ones(2, 4), arg="mask"), C(F(2, 3), F(2, 3), ones(2, 3), gamma=2.0,
                                                                       arg="gamma"),
                         C(F(2, 3), F(2, 3), ones(2, 3), lam=-1.0, arg="lam"), C(F(3), F(3), ones(3), arg="rewards")],
    "rlhf_edu.ppo.clipped_policy_loss": [
        C(F(2, 3), F(2, 4), F(2, 3), ones(2, 3), arg="old_logprobs"),
        C(F(2, 3), F(2, 3), F(2, 3), ones(2, 3), clip_eps=0.0, arg="clip_eps"),
        C(F(2, 3), F(2, 3), F(2, 3), ones(2, 2), arg="mask")],
    "rlhf_edu.ppo.clipped_value_loss": [
        C(F(2, 3), F(2, 3), F(3, 3), ones(2, 3), arg="returns"),
        C(F(2, 3), F(2, 3), F(2, 3), ones(2, 3), clip_eps=-1.0, arg="clip_eps")],
    "rlhf_edu.ppo.lm_loss": [C(LM, I(2, 1), arg="input_ids"), C(LM, F(2, 3), arg="input_ids"),
                             C(LM, I(2, 3), I(2, 4), arg="attention_mask")],
    "rlhf_edu.ppo.ppo_ptx_loss": [C(torch.tensor(1.0), torch.tensor(1.0), -1.0, arg="ptx_coef"),
                                  C(torch.tensor(1.0), torch.tensor(1.0), NAN, arg="ptx_coef")],
    "rlhf_edu.ppo.KLController": [C(-1.0, arg="beta"), C(0.1, adaptive=True, target=0.0, arg="target"),
                                  C(0.1, adaptive=True, horizon=0, arg="horizon")],
    "rlhf_edu.ppo.response_values": [C(VM, I(2, 4), I(2, 4), 0, arg="prompt_length"),
                                     C(VM, I(2, 4), I(2, 3), 2, arg="attention_mask")],
    "rlhf_edu.ppo.reward_model_scores": [C(VM, "rollout", arg="rollout")],
    "rlhf_edu.ppo.check_context": [C(LM, 0, 5, arg="prompt_length"), C(LM, 3, 0, arg="max_new_tokens")],
    "rlhf_edu.ppo.make_rollout": [C(LM, LM, VM, TOK, [], Lazy(lambda fx: fx["ppo_cfg"]), arg="prompts"),
                                  C(LM, LM, VM, TOK, ["a"], {"beta": 0.1}, arg="config")],
    "rlhf_edu.ppo.response_logprobs_masked": [C(LM, I(2, 4), I(2, 4) + 1, 2, ones(2, 3), arg="mask"),
                                              C(LM, I(2, 4), I(2, 4) + 1, 0, ones(2, 4), arg="prompt_length")],
    "rlhf_edu.ppo.score_batch": [
        C(Lazy(lambda fx: _ppo_batch()), F(5), 0.1, Lazy(lambda fx: fx["ppo_cfg"]), arg="reward_out"),
        C(Lazy(lambda fx: _ppo_batch()), F(2, 4), 0.1, Lazy(lambda fx: fx["ppo_cfg"]), arg="reward_out"),
        C(Lazy(lambda fx: _ppo_batch()), F(2), -0.1, Lazy(lambda fx: fx["ppo_cfg"]), arg="beta"),
        C(Lazy(lambda fx: _ppo_batch()), F(2), 0.1, None, arg="config"), C("batch", F(2), 0.1, None, arg="batch")],
    "rlhf_edu.ppo.ptx_blocks": [C(TOK, ["a b"], block_tokens=1, arg="block_tokens"),
                                C(TOK, ["a b"], max_blocks=0, arg="max_blocks"), C(TOK, ["a"], arg="texts"),
                                C(TOK, "a long text", arg="texts")],
    "rlhf_edu.ppo.heldout_lm_loss": [C(LM, I(6), arg="blocks"), C(LM, F(2, 4), arg="blocks"),
                                     C(LM, I(2, 4), batch_size=0, arg="batch_size")],
    "rlhf_edu.ppo.evaluate_policy": [C(LM, TOK, ["a"], 0, arg="max_new_tokens"), C(LM, TOK, [], 3, arg="prompts"),
                                     C(LM, TOK, ["a"], 3, reward_fn=5, arg="reward_fn")],
    "rlhf_edu.ppo.ppo_update": [
        C(LM, VM, None, Lazy(lambda fx: _ppo_batch()), "tiny", arg="config"),
        C(LM, VM, None, "batch", Lazy(lambda fx: fx["ppo_cfg"]), arg="batch"),
        C(LM, VM, None, Lazy(lambda fx: _ppo_batch()), Lazy(lambda fx: fx["ppo_cfg"]), arg="batch")],
    "rlhf_edu.ppo.train_ppo": [
        C(Lazy(lambda fx: fx["ppo_cfg"]), LM, LM, VM, TOK, ["a"], len, arg="prompts"),
        C(Lazy(lambda fx: fx["ppo_cfg"].with_(ptx_coef=0.1)), LM, LM, VM, TOK, ["a"] * 8, len, arg="ptx_data"),
        C(Lazy(lambda fx: fx["ppo_cfg"]), LM, LM, VM, TOK, ["a"] * 8, None, arg="reward_fn"),
        C("tiny", LM, LM, VM, TOK, ["a"] * 8, len, arg="config")],
    # ---------------------------------------------------------------- pretrain
    "rlhf_edu.pretrain.PretrainConfig": [
        C(n_head=3, arg="n_head"), C(lr=0.0, arg="lr"), C(steps=0, arg="steps"), C(warmup=-1, arg="warmup"),
        C(vocab_size=1.5, arg="vocab_size")],
    "rlhf_edu.pretrain.train_tokenizer": [C([], arg="docs"), C(["a b"], vocab_size=0, arg="vocab_size"),
                                          C("a b", arg="docs")],
    "rlhf_edu.pretrain.pack_blocks": [C(TOK, ["a b"], 0, arg="block_size"), C(TOK, "a b", 2, arg="docs")],
    "rlhf_edu.pretrain.perplexity": [C(LM, I(6), arg="blocks"), C(LM, F(2, 4), arg="blocks"),
                                     C(LM, I(2, 4), batch_size=0, arg="batch_size")],
    "rlhf_edu.pretrain.unigram_perplexity": [C(I(2, 3), I(2, 3), 0, arg="vocab_size"),
                                             C(F(2, 3), I(2, 3), 11, arg="train_blocks"),
                                             C(I(2, 3), I(2, 3) + 20, 11, arg="eval_blocks"), C(I(2, 3) + 20, I(2, 3), 11, arg="train_blocks")],
    "rlhf_edu.pretrain.sample_continuations": [C(LM, TOK, ["a"], max_new_tokens=0, arg="max_new_tokens"),
                                               C(LM, TOK, [], arg="prompts")],
    "rlhf_edu.pretrain.pretrain": [C("tiny", arg="cfg")],
    "rlhf_edu.pretrain.write_model_card": [C(Path("/tmp/never_written_card.md"), {}, arg="m")],
    # ---------------------------------------------------------------- reward_collapse
    "rlhf_edu.reward_collapse.Utility": [C("bogus", arg="kind"), C("power", 1.5, arg="param"),
                                         C("logsigmoid", 0.0, arg="param")],
    "rlhf_edu.reward_collapse.power_utility": [C(1.5, arg="gamma"), C(0.0, arg="gamma")],
    "rlhf_edu.reward_collapse.inverse_power_utility": [C(-1.0, arg="gamma"), C(NAN, arg="gamma")],
    "rlhf_edu.reward_collapse.logsigmoid_utility": [C(0.0, arg="sigma"), C(-1.0, arg="sigma")],
    "rlhf_edu.reward_collapse.prompt_aware_utility": [C("yes", arg="open_ended")],
    "rlhf_edu.reward_collapse.beta_limit": [C(Lazy(lambda fx: rlhf_edu.reward_collapse.linear_utility()),
                                              arg="utility"), C("power", arg="utility")],
    "rlhf_edu.reward_collapse.total_utility": [C([0.5], Lazy(lambda fx: _u()), arg="rewards"),
                                               C([0.9, 0.1], "log", arg="utility")],
    "rlhf_edu.reward_collapse.gap_gradient_hessian": [C([[0.9, 0.1]], Lazy(lambda fx: _u()), arg="rewards"),
                                                      C([0.9, 0.1], None, arg="utility")],
    "rlhf_edu.reward_collapse.kkt_gap": [C([0.1, 0.5], Lazy(lambda fx: _u()), arg="rewards")],
    "rlhf_edu.reward_collapse.optimal_rewards": [
        C(1, Lazy(lambda fx: _u()), arg="n"), C(3, "linear", arg="utility"), C(3, Lazy(lambda fx: _u()), tol=0.0,
                                                                               arg="tol"),
        C(3, Lazy(lambda fx: _u()), max_steps=0, arg="max_steps")],
    "rlhf_edu.reward_collapse.ks_distance": [C([2.0, 0.5], Lazy(lambda fx: _u()), arg="rewards"),
                                             C([0.9, 0.1], 3, arg="utility")],
    "rlhf_edu.reward_collapse.RankingTask": [C(F(3, 4), torch.zeros(2, dtype=torch.bool), arg="open_ended"),
                                             C(F(3), torch.zeros(3, dtype=torch.bool), arg="quality")],
    "rlhf_edu.reward_collapse.make_ranking_task": [C(3, arg="n_prompts"), C(4, 1, arg="n_completions"),
                                                   C(spread=-1.0, arg="spread")],
    "rlhf_edu.reward_collapse.RankingRewardNet": [C("task", arg="task"),
                                                  C(Lazy(lambda fx: rlhf_edu.reward_collapse.make_ranking_task(2, 2)),
                                                    clip=0.6, arg="clip")],
    "rlhf_edu.reward_collapse.ranking_utility_loss": [
        C(F(3), [], arg="rewards"), C(F(2, 3), Lazy(lambda fx: [_u()]), arg="utilities"),
        C(F(1, 3), Lazy(lambda fx: [_u()]), eps=0.0, arg="eps")],
    "rlhf_edu.reward_collapse.CollapseTrainConfig": [C(steps=0, arg="steps"), C(lr=0.0, arg="lr"),
                                                     C(eps=0.0, arg="eps"), C(snapshot_every=0, arg="snapshot_every")],
    "rlhf_edu.reward_collapse.train_ranking_rewards": [
        C("task", lambda o: _u(), Lazy(lambda fx: rlhf_edu.reward_collapse.CollapseTrainConfig()), arg="task"),
        C(Lazy(lambda fx: rlhf_edu.reward_collapse.make_ranking_task(2, 2)), 5,
          Lazy(lambda fx: rlhf_edu.reward_collapse.CollapseTrainConfig()), arg="utility_for"),
        C(Lazy(lambda fx: rlhf_edu.reward_collapse.make_ranking_task(2, 2)), lambda o: _u(), {"steps": 3},
          arg="config")],
    # ---------------------------------------------------------------- rewards
    "rlhf_edu.rewards.gold_reward": [C("a text", arg="texts"), C([1, 2], arg="texts")],
    "rlhf_edu.rewards.per_token_kl": [C(F(2, 3), F(2, 4), arg="ref_logprobs"), C(F(2, 3), F(2, 3), "k2",
                                                                                 arg="estimator"),
                                      C(I(2, 3), I(2, 3), arg="logprobs")],
    "rlhf_edu.rewards.last_token_index": [C(ones(3), arg="mask"), C(torch.zeros(2, 3), arg="mask")],
    "rlhf_edu.rewards.sequence_to_token_scores": [C(F(3), ones(2, 3), arg="scores"), C(F(2, 1), ones(2, 3),
                                                                                       arg="scores")],
    "rlhf_edu.rewards.kl_shaped_rewards": [
        C(F(2, 3), F(2, 3), F(2, 3), ones(2, 4), 0.1, arg="mask"),
        C(F(2, 3), F(2, 3), F(2, 3), ones(2, 3), -0.1, arg="beta"),
        C(F(2, 3), F(2, 3), F(2, 3), ones(2, 3), 0.1, estimator="k2", arg="estimator")],
    "rlhf_edu.rewards.response_token_strings": [C(TOK, I(2, 3), I(2, 4), arg="mask"),
                                                C(TOK, F(2, 3), I(2, 3), arg="response_ids")],
    "rlhf_edu.rewards.whole_response_segments": [C("abc", arg="tokens")],
    "rlhf_edu.rewards.sentence_segments": [C("abc.", arg="tokens")],
    "rlhf_edu.rewards.span_segments": [C(["a"], 0, arg="size"), C("abc", 2, arg="tokens")],
    "rlhf_edu.rewards.segment_rewards_to_tokens": [
        C([[]], [[], []], 3, arg="values"), C([[_seg(5)]], [[1.0]], 3, arg="segments"),
        C([[_seg(0)]], [[1.0, 2.0]], 3, arg="values"), C([[]], [[]], 0, arg="R")],
    "rlhf_edu.rewards.sentence_sentiment": [C(["p"], [[_seg(0)]], [], arg="tokens"),
                                            C(["p", "q"], [[_seg(0)]], [["a"]], arg="segments")],
    "rlhf_edu.rewards.ngrams_repeated": [C(["a"], 0, 0, n=0, arg="n"), C(["a", "b"], 0, 5, arg="end"),
                                         C(["a", "b"], -1, 1, arg="start")],
    "rlhf_edu.rewards.span_repetition": [C(["p"], [[]], [[]], n=0, arg="n"), C(["p"], [[_seg(0)], []], [["a"]],
                                                                               arg="segments")],
    "rlhf_edu.rewards.text_scorer": [C(5, arg="score_texts")],
    "rlhf_edu.rewards.RewardCategory": [C("x", NAN, len, len, arg="weight"),
                                        C("x", 1.0, 5, len, arg="segmenter"), C("x", 1.0, len, None, arg="scorer")],
    "rlhf_edu.rewards.fine_grained_scores": [
        C([], ["p"], [["a"]], 3, arg="categories"),
        C(Lazy(lambda fx: [fx["category"]]), ["p", "q"], [["a"]], 3, arg="tokens"),
        C(Lazy(lambda fx: [fx["category"]]), ["p"], [["a"]], 0, arg="R")],
    "rlhf_edu.rewards.FineGrainedReward": [C([], TOK, arg="categories"), C([5], TOK, arg="categories")],
}

# Callables with no checkable input. Keep this short and honest.
_RECORD = "a result record the library builds and returns (never user input); its producer validates"
_NO_ARGS = "takes no arguments: nothing to reject"
_CLI = ("CLI entry point: argparse rejects bad argv (usage message, exit status 2), the CLI convention; "
        "the option values reach rlhf_edu.course, whose cases are above, and test_cli_rejects_bad_option "
        "checks the exit status")
EXEMPT: dict[str, str] = {
    "rlhf_edu.cli.main": _CLI,
    "rlhf_edu.cli.build_parser": _NO_ARGS,
    "rlhf_edu.cli.cmd_pretrain": _CLI,
    "rlhf_edu.cli.cmd_course": _CLI,
    "rlhf_edu.cli.cmd_homework": _CLI,
    "rlhf_edu.cli.cmd_check": _CLI,
    "rlhf_edu.cli.cmd_slides": _CLI,
    "rlhf_edu.config.tiny": _NO_ARGS,
    "rlhf_edu.data.corpus_path": _NO_ARGS,
    "rlhf_edu.reward_collapse.log_utility": _NO_ARGS,
    "rlhf_edu.reward_collapse.linear_utility": _NO_ARGS,
    "rlhf_edu.course.CourseError": "the exception class itself (a ValueError subclass)",
    "rlhf_edu.course.NotebookRun": _RECORD,
    "rlhf_edu.homework.Exercise": _RECORD,
    "rlhf_edu.homework.ExerciseResult": _RECORD,
    "rlhf_edu.divergences.SequenceKL": _RECORD,
    "rlhf_edu.dpo.DPOOutput": _RECORD,
    "rlhf_edu.dpo.PairLogprobs": _RECORD,
    "rlhf_edu.fdpg.ExactWorld": _RECORD,
    "rlhf_edu.generation.Rollout": _RECORD,
    "rlhf_edu.ppo.PolicyLoss": _RECORD,
    "rlhf_edu.ppo.ValueLoss": _RECORD,
    "rlhf_edu.ppo.PPOBatch": _RECORD,
    "rlhf_edu.reward_collapse.CollapseSolution": _RECORD,
    "rlhf_edu.rewards.ShapedReward": _RECORD,
    "rlhf_edu.rewards.Segment": _RECORD,
    "rlhf_edu.rewards.FineGrainedOutput": _RECORD,
}


# --------------------------------------------------------------------------------------------
# the walk
# --------------------------------------------------------------------------------------------

def public_callables() -> dict[str, object]:
    """Every public function or class defined in a module of rlhf_edu, by qualified name."""
    found = {}
    for info in pkgutil.iter_modules(rlhf_edu.__path__):
        if info.name.startswith("_"):  # __main__ runs the CLI on import; _private helpers
            continue
        mod = importlib.import_module(f"rlhf_edu.{info.name}")
        for name, obj in vars(mod).items():
            if name.startswith("_") or not callable(obj):  # functions, classes, lru_cache wrappers
                continue
            if getattr(obj, "__module__", None) == mod.__name__:
                found[f"{mod.__name__}.{name}"] = obj
    return found


PUBLIC = public_callables()


def test_the_walk_finds_the_api():
    assert len(PUBLIC) > 150
    for name in ("rlhf_edu.dpo.dpo_loss", "rlhf_edu.ppo.PPOConfig", "rlhf_edu.logprobs.masked_mean"):
        assert name in PUBLIC


def test_every_public_callable_has_cases():
    missing = sorted(set(PUBLIC) - set(CASES) - set(EXEMPT))
    assert not missing, f"public callables without bad-input cases (add them to CASES): {missing}"
    stale = sorted((set(CASES) | set(EXEMPT)) - set(PUBLIC))
    assert not stale, f"entries for names that are not public callables any more: {stale}"
    both = sorted(set(CASES) & set(EXEMPT))
    assert not both, f"both exempt and tested: {both}"
    assert all(CASES[k] for k in CASES), "every entry needs at least one case"
    assert len(EXEMPT) <= 30


def test_course_error_is_a_value_error():
    from rlhf_edu.course import CourseError

    assert issubclass(CourseError, ValueError)


def test_cli_rejects_bad_option(capsys):
    from rlhf_edu.cli import main

    assert main(["course", "--only", "x"]) == 2
    assert "--only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


@pytest.fixture(scope="module")
def fx(tiny_tokenizer, random_lm):
    from rlhf_edu.bradley_terry import RewardModelConfig
    from rlhf_edu.dpo import DPOConfig, PairLogprobs
    from rlhf_edu.fdpg import GDCBinaryTask, make_exact_world
    from rlhf_edu.models import scalar_head_from_lm
    from rlhf_edu.ppo import PPOConfig
    from rlhf_edu.rewards import RewardCategory, whole_response_segments

    torch.manual_seed(0)
    return {
        "tok": tiny_tokenizer, "lm": random_lm, "vm": scalar_head_from_lm(random_lm),
        "rm_cfg": RewardModelConfig(steps=1, batch_size=2, show_progress=False),
        "dpo_cfg": DPOConfig(steps=1, batch_size=4),
        "pair_logps2": PairLogprobs(F(2), F(2), I(2) + 1),
        "ppo_cfg": PPOConfig(iterations=1, batch_size=8, minibatch_size=4),
        "world": make_exact_world(vocab_size=2, length=2),
        "task": GDCBinaryTask(("good",)),
        "category": RewardCategory("c", 1.0, whole_response_segments, lambda p, s, t: [[0.0] * len(x) for x in s]),
    }


ALL_CASES = [(name, i, case) for name, cases in CASES.items() for i, case in enumerate(cases)]


@pytest.mark.parametrize("name,i,case", ALL_CASES, ids=[f"{n.removeprefix('rlhf_edu.')}[{i}]-{c.arg}"
                                                        for n, i, c in ALL_CASES])
def test_bad_input_raises_value_error_naming_the_argument(name, i, case, fx, monkeypatch):
    def no_kernel(*a, **k):  # a missing check must fail here, not run the course for minutes
        raise AssertionError("the bad input reached notebook execution")

    monkeypatch.setattr("rlhf_edu.course._make_client", no_kernel)
    fn = PUBLIC.get(name)
    if fn is None:
        pytest.fail(f"{name} is not a public callable of rlhf_edu (stale CASES entry)")
    with pytest.raises(ValueError) as exc:
        case.run(fn, fx)
    assert case.arg in str(exc.value), f"{name}: message does not name {case.arg!r}: {exc.value}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_valid_dtypes_stay_accepted(dtype):
    """The checks reject integer tensors where floats are needed and float token ids, never a valid
    dtype: every float dtype for values, bool / integer / float 0-1 masks, int32 or int64 token ids."""
    from rlhf_edu import bradley_terry, divergences, dpo, logprobs, ppo, rewards

    x = torch.zeros(2, 3, dtype=dtype)  # (B, T)
    for m in (torch.ones(2, 3, dtype=torch.bool), torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=dtype)):
        logprobs.masked_sum(x, m)
        logprobs.masked_mean(x, m)
        logprobs.masked_whiten(x, m)
        logprobs.sequence_logprob(x, m, "sum")
        ppo.clipped_policy_loss(x, x, x, m)
        ppo.clipped_value_loss(x, x, x, m)
        rewards.kl_shaped_rewards(x, x, x, m, 0.1)
        divergences.sampled_log_ratio(x, x, m)
        dpo.token_mean_nll(x, m)
    b = torch.zeros(3, dtype=dtype)  # (B,)
    dpo.dpo_loss(b, b, b, b, 0.1)
    dpo.dpo_nll_loss(b, b, b, b, torch.ones(3, dtype=torch.long), 0.1, 1.0)
    bradley_terry.bt_loss(b, b)
    for ids in (torch.zeros(2, 3, dtype=torch.int32), torch.zeros(2, 3, dtype=torch.long)):
        logprobs.logprobs_of_labels(torch.zeros(2, 3, 5, dtype=dtype), ids)
        logprobs.token_logprobs(torch.zeros(2, 3, 5, dtype=dtype), ids)
