"""Rebuild the tiny base model from scratch: ``rlhf-edu pretrain``.

1. Train a byte-level BPE tokenizer (8,192 tokens) with the ``tokenizers`` library on the
   training split (reviews and plot summaries, formatted ``"<movie>: <text>"``).
2. Pretrain a 4-layer, width-256 ``GPT2LMHeadModel`` on 128-token blocks of that text with
   AdamW and cosine decay, deterministically under the seed.
3. Round the weights to bf16, save safetensors + tokenizer to ``rlhf_edu/data/tiny`` (``make pretrain``; plain ``rlhf-edu pretrain`` writes to the user cache), and write the model
   card ``rlhf_edu/data/README.md`` (training time, held-out perplexity of the shipped weights next to a
   unigram baseline on the same held-out split, 5 sample continuations).

Every ``checkpoint_every`` steps the whole training state (weights, optimizer, data order, RNG,
history) is saved atomically (:mod:`rlhf_edu.checkpoint`) to ``state_path``; an interrupted
rebuild resumes from it and ends with the same weights as an uninterrupted one. The final model
directory is also written atomically, so ``rlhf_edu/data/tiny`` (``make pretrain``; plain ``rlhf-edu pretrain`` writes to the user cache) is never left half-written.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ._checks import check_instance, check_int, check_nonnegative, check_positive
from .checkpoint import load_state, save_pretrained_atomic, save_state
from .config import seed_everything
from .resources import cache_dir
from .data import format_document, lm_documents, load_splits, make_prompts, pack_blocks  # noqa: F401 (pack_blocks: re-export)
from .generation import sample
from .gold import english_words, lowercase_words, repeated_bigram_rate
from .teacher_corpus import load_teacher_corpus
from .models import n_parameters

EOS = "<|endoftext|>"


@dataclass
class PretrainConfig:
    """Settings of the tiny base model's pretraining."""

    seed: int = 0
    """Seed for the data order and the initialisation."""
    vocab_size: int = 8192
    """BPE vocabulary size, special token included."""
    n_layer: int = 4
    """Transformer blocks."""
    n_embd: int = 256
    """Width."""
    n_head: int = 4
    """Attention heads."""
    block_size: int = 128
    """Tokens per training sequence (also the model's context length)."""
    batch_size: int = 16
    """Sequences per step."""
    steps: int = 2000
    """Optimizer steps (about 15 minutes on 2 quiet CPU cores)."""
    teacher: bool = True
    """Add the teacher reviews (:mod:`rlhf_edu.teacher_corpus`) to the critic snippets (v2); False gives v1's data."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    warmup: int = 30
    """Linear warm-up steps before the cosine decay."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    threads: int = 2
    """torch threads."""
    out_dir: str = field(default_factory=lambda: str(cache_dir() / "tiny"))
    """Where the checkpoint and tokenizer go: the user cache (load it with ``RLHF_EDU_TINY_DIR``).
    Maintainers rebuild the shipped model with ``make pretrain`` (``--out rlhf_edu/data/tiny``)."""
    checkpoint_every: int = 100
    """Save the training state every this many steps (0: never)."""
    state_path: str = field(default_factory=lambda: str(cache_dir() / "pretrain_state.pt"))
    """Training-state checkpoint; resumed from if it matches this config, deleted at the end."""

    def __post_init__(self):
        for name in ("vocab_size", "n_layer", "n_embd", "n_head", "block_size", "batch_size", "steps", "threads"):
            check_int(name, getattr(self, name))
        if self.n_embd % self.n_head:
            raise ValueError(f"n_head: expected a divisor of n_embd={self.n_embd}, got {self.n_head}")
        check_positive("lr", self.lr)
        check_int("warmup", self.warmup, 0), check_int("checkpoint_every", self.checkpoint_every, 0)
        check_nonnegative("weight_decay", self.weight_decay)


def cosine_lr(step: int, lr: float, warmup: int, steps: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 10% of ``lr`` at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def teacher_documents() -> list[str]:
    """The teacher reviews and continuations (:mod:`rlhf_edu.teacher_corpus`) as LM documents
    ``"<movie>: <text>"``."""
    return [format_document(r["movie"], r["text"]) for r in load_teacher_corpus()]


def train_tokenizer(docs: list[str], vocab_size: int = 8192):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``docs`` (EOS = pad = bos)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast


    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(docs, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS,
                                   unk_token=EOS, pad_token=EOS)


@torch.no_grad()
def perplexity(model, blocks: torch.Tensor, batch_size: int = 32) -> float:
    """exp(mean next-token NLL) over all predicted tokens of ``blocks`` (N, T)."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        x = blocks[i : i + batch_size]
        out = model(input_ids=x, labels=x)
        n = x[:, 1:].numel()
        total += out.loss.item() * n
        count += n
    model.train()
    return math.exp(total / count)


def unigram_perplexity(train_blocks: torch.Tensor, eval_blocks: torch.Tensor, vocab_size: int) -> float:
    """Perplexity of add-one-smoothed unigram frequencies, on the same tokens as :func:`perplexity`."""
    counts = torch.bincount(train_blocks.flatten(), minlength=vocab_size).double() + 1.0
    logp = (counts / counts.sum()).log()
    targets = eval_blocks[:, 1:].flatten()
    return math.exp(-logp[targets].mean().item())


def word_stats(texts: list[str]) -> dict:
    """Pooled English-word rate of the lowercase words (50k most frequent English words) and
    mean repeated-bigram rate of ``texts`` (the definitions of :mod:`rlhf_edu.gold`)."""
    lower = [w for t in texts for w in lowercase_words(t)]
    return {"english_word_rate": sum(w in english_words() for w in lower) / max(1, len(lower)),
            "repeated_bigram_rate": sum(repeated_bigram_rate(t) for t in texts) / max(1, len(texts)),
            "lowercase_words": len(lower)}


@torch.no_grad()
def word_perplexity(model, tokenizer, ds) -> float:
    """exp(total NLL of the review texts / their number of words), each text scored after its
    ``"<EOS><movie>:"`` prefix (the prompt is not scored). Comparable across tokenizers, unlike a
    per-token perplexity. ``ds``: a split with ``text`` and ``movie``."""
    total, words = 0.0, 0
    for movie, text in zip(ds["movie"], ds["text"]):
        prefix = [tokenizer.eos_token_id] + tokenizer(f"{movie}:", add_special_tokens=False)["input_ids"]
        body = tokenizer(f" {text}", add_special_tokens=False)["input_ids"][: model.config.n_positions - len(prefix)]
        ids = torch.tensor([prefix + body])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        nll = -logp[torch.arange(len(prefix) - 1, ids.shape[1] - 1), ids[0, len(prefix):]]
        total += nll.sum().item()
        words += len(tokenizer.decode(body).split())
    return math.exp(total / words)


def evaluate_base_model(model, tokenizer, n_prompts: int = 256, max_new_tokens: int = 32, seed: int = 0,
                        train_docs: list[str] | None = None) -> dict:
    """The model card's numbers on the *test* split (movies never trained on): continuations of
    ``n_prompts`` test prompts (safe sampler), their word statistics, and test perplexities; with
    ``train_docs``, also the unigram baseline (fitted on them) on the same test tokens."""
    test = load_splits(seed=0)["test"]
    prompts = make_prompts(test, n=n_prompts, seed=seed)["prompt"]
    texts = sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed).texts
    blocks = pack_blocks(tokenizer, lm_documents(test), model.config.n_positions)
    m = {**word_stats(texts), "test_ppl": perplexity(model, blocks), "test_tokens": int(blocks.numel()),
         "test_word_ppl": word_perplexity(model, tokenizer, test), "samples": list(zip(prompts, texts))}
    if train_docs is not None:
        train_blocks = pack_blocks(tokenizer, train_docs, model.config.n_positions)
        m["unigram_test_ppl"] = unigram_perplexity(train_blocks, blocks, len(tokenizer))
    return m


def pretrain(cfg: PretrainConfig | None = None, write_card: bool = True, compare_dir: str | None = None) -> dict:
    """Run the whole rebuild; returns a metrics dict (also written into the model card).

    ``compare_dir``: a previous model (for example v1) evaluated beside the new one in the card.
    """
    from tqdm.auto import tqdm
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    cfg = check_instance("cfg", PretrainConfig() if cfg is None else cfg, PretrainConfig)
    g = seed_everything(cfg.seed, threads=cfg.threads)
    t0 = time.perf_counter()
    splits = load_splits(seed=0)
    train_docs = lm_documents(splits["train"]) + (teacher_documents() if cfg.teacher else [])
    val_docs = lm_documents(splits["validation"])
    tokenizer = train_tokenizer(train_docs, cfg.vocab_size)
    train_blocks = pack_blocks(tokenizer, train_docs, cfg.block_size)  # (N, T)
    val_blocks = pack_blocks(tokenizer, val_docs, cfg.block_size)
    t_tok = time.perf_counter() - t0

    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))

    history = {"step": [], "loss": [], "val_ppl_step": [], "val_ppl": []}
    order = torch.randperm(len(train_blocks), generator=g)
    pos, start = 0, 0
    state_path = Path(cfg.state_path)
    fingerprint = {"config": asdict(cfg) | {"state_path": "", "checkpoint_every": 0, "threads": 0},
                   "vocab": len(tokenizer), "train_tokens": int(train_blocks.numel())}
    if state_path.is_file():
        state = load_state(state_path)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            g.set_state(state["generator"])
            order, pos, start, history = state["order"], state["pos"], state["step"], state["history"]
            print(f"pretrain: resuming from step {start} ({state_path})")

    def checkpoint(step: int) -> None:
        save_state(state_path, {"fingerprint": fingerprint, "model": model.state_dict(),
                                "optimizer": opt.state_dict(), "generator": g.get_state(), "order": order,
                                "pos": pos, "step": step, "history": history})

    t1 = time.perf_counter()
    for step in tqdm(range(start, cfg.steps), desc="pretrain", mininterval=5, initial=start, total=cfg.steps):
        if pos + cfg.batch_size > len(order):
            order, pos = torch.randperm(len(train_blocks), generator=g), 0
        x = train_blocks[order[pos : pos + cfg.batch_size]]  # (B, T)
        pos += cfg.batch_size
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history["step"].append(step)
        history["loss"].append(loss.item())
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            history["val_ppl_step"].append(step + 1)
            history["val_ppl"].append(perplexity(model, val_blocks[:256]))
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            checkpoint(step + 1)
    train_seconds = time.perf_counter() - t1

    model = model.to(torch.bfloat16).to(torch.float32)  # the shipped weights are bf16
    metrics = {"train_seconds": round(train_seconds, 1), "tokenizer_seconds": round(t_tok, 1),
               "train_tokens": int(train_blocks.numel()), "val_tokens": int(val_blocks.numel()),
               "val_ppl": round(perplexity(model, val_blocks), 1),
               "unigram_val_ppl": round(unigram_perplexity(train_blocks, val_blocks, len(tokenizer)), 1),
               "n_params": n_parameters(model), "history": history, "config": asdict(cfg)}
    out = Path(cfg.out_dir)
    save_pretrained_atomic(out, model.to(torch.bfloat16), tokenizer)
    model.to(torch.float32)
    state_path.unlink(missing_ok=True)
    prompts = ["Titanic: The film", "Shrek: A", "The Matrix: It is", "Amelie: This movie", "Jaws: The worst"]
    metrics["samples"] = list(zip(prompts, sample(model, tokenizer, prompts, max_new_tokens=30, seed=cfg.seed).texts))
    if write_card:
        model.eval()
        metrics["eval"] = evaluate_base_model(model, tokenizer, seed=cfg.seed, train_docs=train_docs)
    if compare_dir:
        old = GPT2LMHeadModel.from_pretrained(compare_dir, dtype=torch.float32).eval()
        old_tok = PreTrainedTokenizerFast.from_pretrained(compare_dir)
        metrics["baseline"] = evaluate_base_model(old, old_tok, seed=cfg.seed, train_docs=lm_documents(splits["train"]))
        metrics["baseline"]["n_params"] = n_parameters(old)
    if write_card:
        write_model_card(out.parent / "README.md", metrics)
    return metrics


def write_model_card(path: Path, m: dict) -> None:
    """Write the tiny model's card (markdown) from :func:`pretrain`'s metrics."""
    c, e, b = m["config"], m["eval"], m.get("baseline")
    curve = ", ".join(f"{s}: {v:.0f}" for s, v in zip(m["history"]["val_ppl_step"], m["history"]["val_ppl"]))

    def row(name, key, fmt):
        return f"| {name} | " + (f"{b[key]:{fmt}} | " if b else "") + f"**{e[key]:{fmt}}** |"

    head = "| | v1 (previous) | v2 (this model) |\n|---|---|---|" if b else "| | this model |\n|---|---|"
    table = "\n".join([head, row("English-word rate of sampled lowercase words (50k list)", "english_word_rate", ".1%"),
                       row("repeated-bigram rate of the samples", "repeated_bigram_rate", ".3f"),
                       row("test perplexity per token (own tokenizer)", "test_ppl", ".1f"),
                       row("unigram baseline per token, same tokens", "unigram_test_ppl", ".1f"),
                       row("test perplexity per word (tokenizer-free)", "test_word_ppl", ".1f")])

    def sample_table(ev):
        cells = [(p, repr(t.strip()).replace("|", "\\|")) for p, t in ev["samples"][:20]]  # a | would end the cell
        return "| prompt | continuation |\n|---|---|\n" + "\n".join(f"| `{p}` | {t} |" for p, t in cells)

    teacher = ("plus the synthetic teacher corpus of [`TEACHER.md`](TEACHER.md) (short review sentences, and continuations "
               "of training snippets' first words, written by SmolLM2-135M-Instruct)") if c["teacher"] else ""
    text = f"""# rlhf_edu/data: the tiny base model (v2)

`rlhf_edu/data/tiny/` (package data) holds the CPU-scale base model of rlhf-edu: a `GPT2LMHeadModel` with
{c['n_layer']} layers, width {c['n_embd']}, {c['n_head']} heads, context {c['block_size']}, and a
byte-level BPE tokenizer of {c['vocab_size']:,} tokens, both trained from scratch on the
training split (80% of movies) of the Rotten Tomatoes critic snippets (formatted `"<movie>: <text>"`)
{teacher}. Weights are stored in bf16 safetensors. No test-split movie is named in its training data.

Rebuild it from scratch (deterministic under the seed on the same machine):

    make teacher-corpus  # optional: regenerate the teacher corpus (resumable; see TEACHER.md)
    make pretrain        # = rlhf-edu pretrain --out rlhf_edu/data/tiny --card

| | |
|---|---|
| parameters | {m['n_params']:,} |
| training tokens per epoch | {m['train_tokens']:,} |
| optimizer | AdamW, lr {c['lr']} (warm-up {c['warmup']}, cosine to 10%), batch {c['batch_size']}x{c['block_size']}, {c['steps']} steps, seed {c['seed']} |
| training time | {m['train_seconds']:.0f} s wall on {c['threads']} CPU threads (tokenizer: {m['tokenizer_seconds']:.0f} s) |
| validation perplexity per token (shipped bf16 weights; unigram baseline) | {m['val_ppl']:.1f} ({m['unigram_val_ppl']:.1f}) |
| validation perplexity during training (step: ppl, first 256 blocks) | {curve} |

## Measured on the test split (movies never trained on)

{e['lowercase_words']:,} lowercase words in {len(e['samples'])} continuations of test prompts (`"<movie>: <first 4 words>"`,
safe sampler: temperature 1, top_k 0, top_p 1, {32} new tokens, seed {c['seed']}). The English-word list and the
repeated-bigram rate are those of the gold judge (`rlhf_edu/gold.py`). Per-token perplexities depend on
the tokenizer; the per-word perplexity (total NLL over whitespace words) compares the two models fairly.

{table}

## Samples of this model (the first 20 of those continuations)

{sample_table(e)}
""" + (f"""
## Samples of v1 (same prompts, same seed)

{sample_table(b)}
""" if b else "") + """
The corpus files beside this card are described in [`CORPUS.md`](CORPUS.md) and [`TEACHER.md`](TEACHER.md).
A plain `rlhf-edu pretrain` (for example from an installed wheel) writes its model to the user cache
(`$RLHF_EDU_CACHE`, default `~/.cache/rlhf-edu/tiny`); load it with `RLHF_EDU_TINY_DIR=<that dir>`.
"""
    path.write_text(text)
