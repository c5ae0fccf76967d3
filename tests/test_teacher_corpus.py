"""The teacher-corpus builder: deterministic shards, resumption, the kept-sentence filter and the shipped file."""

import pytest

from rlhf_edu import teacher_corpus as tc
from rlhf_edu.data import load_splits


def fake_generate(tok, model, reqs, cfg, shard):
    return [dict(shard=shard, index=i, **r, raw=f"The {r['aspect']} of {r['movie']} is fine. More.",
                 text=tc.clean_review(f"The {r['aspect']} of {r['movie']} is fine. More."))
            for i, r in enumerate(reqs)]


def test_an_interrupted_build_resumes_to_the_same_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(tc, "load_teacher", lambda: (None, None))
    monkeypatch.setattr(tc, "training_movies", lambda: ["alpha", "beta", "gamma"])
    clean = tc.TeacherConfig(n_shards=4, shard_size=5, out_dir=str(tmp_path / "clean"))
    monkeypatch.setattr(tc, "_generate_shard", fake_generate)
    tc.build_teacher_corpus(clean, progress=False)

    calls = []

    def crash_on_third(tok, model, reqs, cfg, shard):
        calls.append(shard)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fake_generate(tok, model, reqs, cfg, shard)

    cfg = tc.TeacherConfig(n_shards=4, shard_size=5, out_dir=str(tmp_path / "resumed"))
    monkeypatch.setattr(tc, "_generate_shard", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        tc.build_teacher_corpus(cfg, progress=False)
    assert sorted(p.name for p in (tmp_path / "resumed").glob("shard_*")) == ["shard_00000.jsonl", "shard_00001.jsonl"]
    assert not list((tmp_path / "resumed").glob(".shard_*"))  # no half-written shard
    calls.clear()
    monkeypatch.setattr(tc, "_generate_shard", lambda *a: calls.append(a[-1]) or fake_generate(*a))
    tc.build_teacher_corpus(cfg, progress=False)
    assert calls == [2, 3]  # only the missing shards ran
    for k in range(4):
        name = f"shard_{k:05d}.jsonl"
        assert (tmp_path / "clean" / name).read_text() == (tmp_path / "resumed" / name).read_text()
    counts = tc.pack_shards(tmp_path / "resumed", tmp_path / "packed.jsonl.bz2")
    assert counts == {"shards": 4, "generated": 20, "kept": 20}
    assert len(tc.load_teacher_reviews(tmp_path / "packed.jsonl.bz2")) == 20


def test_shard_requests_depend_only_on_seed_and_shard():
    movies = [f"m{i}" for i in range(50)]
    a = tc.shard_requests(3, 10, movies, seed=0)
    assert a == tc.shard_requests(3, 10, movies, seed=0)
    assert a != tc.shard_requests(4, 10, movies, seed=0) and a != tc.shard_requests(3, 10, movies, seed=1)
    assert {r["mood"] for r in tc.shard_requests(0, 500, movies)} == set(tc.MOODS)


@pytest.mark.parametrize("raw, kept", [
    ("The acting is warm and the story is simple. Then more text", "The acting is warm and the story is simple."),
    ('"A loud, fun ride from start to end!"', "A loud, fun ride from start to end!"),
    ("Here's a possible review: The film is great fun for all.", None),
    ("Too short.", None),
    ("The *best* movie of the year, with a great cast.", None),
    ("a sentence that never ends and just keeps going on", None),
])
def test_clean_review_keeps_one_plain_sentence(raw, kept):
    assert tc.clean_review(raw) == kept


def test_movie_title_puts_the_article_first():
    assert tc.movie_title("new_guy_the") == "The New Guy" and tc.movie_title("shrek") == "Shrek"


def test_the_shipped_teacher_reviews_name_training_movies_only():
    rows = tc.load_teacher_reviews()
    assert len(rows) > 400
    train = set(load_splits(0)["train"]["movie"])
    assert {r["movie"] for r in rows} <= train
    for r in rows:  # what clean_review keeps: one plain ASCII sentence of 5-32 words, no markup
        text = r["text"]
        assert 5 <= len(text.split()) <= 32 and text.isascii() and text[-1] in ".!?", text
        assert not any(c in text for c in '*#[]{}<>"\n'), text
    assert set(rows[0]) == {"movie", "mood", "aspect", "text"}


def test_continuation_requests_are_deterministic_open_prefixes_of_the_snippets():
    snippets = [("alpha", "A fine film. It works well enough for me."), ("beta", "Slow, dull and far too long for its own good")]
    a = tc.continuation_requests(0, 40, snippets, seed=0)
    assert a == tc.continuation_requests(0, 40, snippets, seed=0) != tc.continuation_requests(1, 40, snippets, seed=0)
    for r in a:  # a prefix of its own snippet, 3-6 words, before the first sentence ends
        text = dict(snippets)[r["movie"]]
        assert text.startswith(r["prefix"]) and 3 <= len(r["prefix"].split()) <= 6
        assert not any(c in r["prefix"] for c in ".!?")
    assert {r["movie"] for r in a} == {"beta"}  # alpha's first sentence is too short to leave open


@pytest.mark.parametrize("prefix, raw, kept", [
    ("Slow, dull and far", " too long for anyone. The end", "Slow, dull and far too long for anyone."),
    ("Slow, dull and far", " too long\n\nfor anyone.", None),  # the sentence does not end on its line
    ("A fine film", ".", None),  # nothing added
    ("A fine film", ' with a "twist" for all of us.', None),  # quotes
    ("A fine film", " that is great.", "A fine film that is great."),
    ("A fine film", " that", None),  # never ends
])
def test_clean_continuation_keeps_the_prefix_and_one_sentence(prefix, raw, kept):
    assert tc.clean_continuation(prefix, raw) == kept


def test_the_shipped_teacher_continuations_continue_training_snippets():
    rows = tc.load_teacher_reviews(tc.KINDS["continue"][1])
    assert len(rows) > 1000
    train = load_splits(0)["train"]
    prefixes = {(m, " ".join(t.split()[:n])) for m, t in zip(train["movie"], train["text"]) for n in range(3, 7)}
    for r in rows:
        assert (r["movie"], r["prefix"]) in prefixes and r["text"].startswith(r["prefix"])
        assert 5 <= len(r["text"].split()) <= 40 and r["text"][-1] in ".!?", r["text"]
    assert set(rows[0]) == {"movie", "prefix", "text"}
