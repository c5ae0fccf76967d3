"""Cell constructors shared by the notebook generator scripts in this folder.

Each generator builds a list of cells with ``md(...)`` / ``code(...)`` and writes the
unexecuted notebook; ``slide`` is the reveal.js slide type used by ``rlhf-edu slides``.
"""

from textwrap import dedent

import nbformat as nbf


def cell_adders(cells: list):
    """Return ``md(src, slide="-")`` and ``code(src, slide="-")`` that append to ``cells``."""

    def md(src, slide="-"):
        c = nbf.v4.new_markdown_cell(dedent(src).strip())
        c.metadata["slideshow"] = {"slide_type": slide}
        cells.append(c)

    def code(src, slide="-"):
        c = nbf.v4.new_code_cell(dedent(src).strip())
        c.metadata["slideshow"] = {"slide_type": slide}
        cells.append(c)

    return md, code
