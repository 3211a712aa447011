"""Students' names as the grader shows them and as it names their feedback files.

A student's name comes from a file or folder name, which may hold anything but `/`
and NUL: control characters (a newline would forge a line of the console summary),
right-to-left overrides, letters of any script, bytes that are not UTF-8.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter

MAX_STEM = 80  # characters of a feedback file's name before ".md"


def printable(text: str) -> str:
    """`text` with every control, format or separator character other than the
    space escaped (`\\n`, `\\x1b`, `\\u202e`), so that printing it cannot start a line,
    move the cursor or reorder what follows."""
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] == "C" or (category[0] == "Z" and ch != " "):
            out.append(ascii(ch)[1:-1])
        else:
            out.append(ch)
    return "".join(out)


def _readable(student: str) -> str:
    text = unicodedata.normalize("NFC", student)
    kept = "".join(
        ch if ch in "-_." or unicodedata.category(ch)[0] in "LNM" else "_"
        for ch in text
    )
    kept = re.sub(r"_{2,}", "_", kept).strip("._-")[:MAX_STEM]
    return kept or "student"


def _tag(student: str) -> str:
    data = student.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:8]


def feedback_names(students: list[str]) -> dict[str, str]:
    """A distinct, readable file name (`<name>.md`) for each student.

    Letters and digits of every script are kept (`zoé.md`, `王伟.md`), anything else
    becomes `_`. Names that would clash (also when they differ only in letter case,
    for case-insensitive file systems) get a tag computed from the full name, the
    same in every run: `alice_smith-3f2a9c1d.md`.
    """
    stems = {s: _readable(s) for s in students}
    counts = Counter(stem.casefold() for stem in stems.values())
    names = {}
    for student, stem in stems.items():
        if counts[stem.casefold()] > 1:
            stem = f"{stem}-{_tag(student)}"
        names[student] = stem + ".md"
    taken = Counter(name.casefold() for name in names.values())
    for student, name in names.items():  # a tagged name equal to a plain one
        if taken[name.casefold()] > 1:
            names[student] = f"{name[:-3]}-{_tag(student + '/')}.md"
    return names
