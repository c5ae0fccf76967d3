"""Where the course's files live: package data, the notebooks, the slide assets and the user cache.

The same code runs from a clone (an editable install) and from an installed wheel:

- package data (``rlhf_edu/data``): the tiny model and tokenizer, the offline corpus, the model card;
- the notebooks and the offline slide assets: ``notebooks/`` and ``slides/vendor/`` in a clone;
  the wheel carries the same files as ``rlhf_edu/notebooks`` and ``rlhf_edu/slides_vendor``;
- anything the package writes (a rebuilt model) goes to a user cache directory,
  ``$RLHF_EDU_CACHE`` (default ``$XDG_CACHE_HOME/rlhf-edu``, else ``~/.cache/rlhf-edu``), never
  into ``site-packages``.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

PACKAGE_DIR = Path(str(files("rlhf_edu")))
DATA_DIR = PACKAGE_DIR / "data"
SHIPPED_TINY_DIR = DATA_DIR / "tiny"
CORPUS_FILE = DATA_DIR / "rotten_tomatoes_corpus_full.csv.bz2"
TEACHER_CORPUS_FILE = DATA_DIR / "teacher_reviews.jsonl.bz2"
TEACHER_CONTINUATIONS_FILE = DATA_DIR / "teacher_continuations.jsonl.bz2"

CLONE_DIR = PACKAGE_DIR.parent
IN_CLONE = (CLONE_DIR / "pyproject.toml").is_file() and (CLONE_DIR / "notebooks").is_dir()
"""True when running from a source checkout (notebooks/ and slides/ beside the package)."""

NOTEBOOKS_DIR = CLONE_DIR / "notebooks" if IN_CLONE else PACKAGE_DIR / "notebooks"
VENDOR_DIR = CLONE_DIR / "slides" / "vendor" if IN_CLONE else PACKAGE_DIR / "slides_vendor"
WORK_DIR = CLONE_DIR if IN_CLONE else Path.cwd()
"""Default root for what the CLI writes (build/course, homework/, slides/): the clone, else the cwd."""


def cache_dir() -> Path:
    """The user cache: ``$RLHF_EDU_CACHE``, else ``$XDG_CACHE_HOME/rlhf-edu``, else ``~/.cache/rlhf-edu``."""
    if os.environ.get("RLHF_EDU_CACHE"):
        return Path(os.environ["RLHF_EDU_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlhf-edu"


def tiny_model_dir() -> Path:
    """The tiny model to load: ``$RLHF_EDU_TINY_DIR`` (e.g. a model rebuilt by ``rlhf-edu pretrain``),
    else the shipped one."""
    return Path(os.environ["RLHF_EDU_TINY_DIR"]).expanduser() if os.environ.get("RLHF_EDU_TINY_DIR") \
        else SHIPPED_TINY_DIR
