"""The prose never outlives its numbers (STYLE.md 17a).

Every decimal number in a solution notebook's Markdown (`0.83`, `37.7%`, `2.5×`) must
be printed by one of that notebook's stored outputs, at the precision the prose uses
(`0.83` matches a printed `0.8312`; `37.7%` matches `37.7` or `0.377`), or be one of
a few named constants of that lesson. A notebook re-run whose numbers moved makes this
test fail and name the number, its cell and the sentence around it.

Not counted as claims: code (inline and fenced), exercise and section numbers
(`Exercise 4.1`, `sec. 6.1`), arXiv identifiers and software versions (`Gym 0.26`).
The match is by value at the prose's precision, so a rounded number passes and a moved
one fails; a constant that an unrelated output happens to print also passes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))

# Hyperparameters every lesson uses: γ, GAE's λ, the clip range ε.
COMMON_CONSTANTS = {"0.99", "0.95", "0.2"}

# Constants of one lesson: values set in its code or defined by the task, which the
# prose names but no cell needs to print. Keep each entry explained.
LESSON_CONSTANTS: dict[str, dict[str, str]] = {
    "02": {"1.41": "√2, the variance threshold of the importance-weight explorer"},
    "04": {"0.7": "the chain policy's probability of stepping right"},
    "05": {
        "0.25": "(a − μ)² of the worked one-dimensional example",
        "0.125": "½ · 0.25 of the worked one-dimensional example",
        "0.9189": "½ log 2π",
        "0.9": "the histogram's range (−0.9, 0.9)",
    },
    "07": {"0.69": "log 2, the entropy of a uniform policy over two actions"},
    "08": {
        "87.3": "float32's smallest normal exponent, log(1.2e-38) ≈ −87.3",
        "88.7": "log of float32's largest value, log(3.4e38) ≈ 88.7",
        "0.94": "λ of rl-baselines3-zoo's Acrobot entry",
        "0.25": "the clip range Andrychowicz et al. (2021) suggest starting from",
    },
    "09": {
        "9.8": "gravity g = 9.8 m/s² in CartPole's equations",
        "0.5": "CartPole's pole half-length l = 0.5 m",
        "0.1": "CartPole's pole mass m_p = 0.1 kg",
    },
}


FENCED_CODE = re.compile(r"```.*?```", re.DOTALL)
INLINE_CODE = re.compile(r"`[^`]*`")
NOT_CLAIMS = re.compile(
    r"arXiv:\s*\S+"
    r"|\b\d{4}\.\d{4,5}\b"  # an arXiv identifier without its prefix
    r"|Exercises?\s+\d+\.\d+(?:\s*(?:,|and|to|–)\s*\d+\.\d+)*"
    r"|\b(?:version|Gym|Gymnasium)\s+\d+(?:\.\d+)+"
    r"|\b(?:sec|section|eq|appendix|fig|figure)\.?\s+\d+(?:\.\d+)*",
    re.IGNORECASE,
)
PROSE_DECIMAL = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)\.(\d+)(?![\d.]*\d)(%?)")
OUTPUT_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?")


def prose_decimals(markdown: str) -> list[tuple[str, float, int, bool]]:
    """The decimal numbers a Markdown cell states: (as written, value, decimals,
    is a percentage). Code, exercise and section numbers, and arXiv ids are skipped."""
    text = INLINE_CODE.sub(" ", FENCED_CODE.sub(" ", markdown))
    text = NOT_CLAIMS.sub(" ", re.sub(r"\(\s*\)", " ", text))
    found = []
    for match in PROSE_DECIMAL.finditer(text):
        whole, fraction, percent = match.groups()
        value = float(f"{whole.replace(',', '')}.{fraction}")
        found.append((match.group(0), value, len(fraction), bool(percent)))
    return found


def output_text(cell: nbformat.NotebookNode) -> str:
    """All the text a code cell's stored outputs show (streams, plain text, errors)."""
    parts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            parts.append(output["text"])
        data = output.get("data", {})
        parts.extend(
            data[key] for key in ("text/plain", "text/markdown") if key in data
        )
    return "\n".join(str(part) for part in parts)


def output_numbers(text: str) -> list[float]:
    """Every number printed in `text`, signs dropped (prose often says "falls by")."""
    numbers = []
    for whole, fraction, exponent in OUTPUT_NUMBER.findall(text):
        number = whole.replace(",", "") + (f".{fraction}" if fraction else "")
        numbers.append(float(number + (f"e{exponent}" if exponent else "")))
    return numbers


def is_printed(
    value: float, decimals: int, percent: bool, printed: list[float]
) -> bool:
    """True if some printed number, rounded to the prose's precision, is `value` (a
    percentage may also be printed as a fraction)."""
    candidates = [(value, decimals)]
    if percent:
        candidates.append((value / 100, decimals + 2))
    for target, places in candidates:
        tolerance = 0.5 * 10.0**-places + 1e-12
        if any(math.isclose(p, target, abs_tol=tolerance) for p in printed):
            return True
    return False


def stale_numbers(
    nb: nbformat.NotebookNode, allowed: set[str]
) -> list[tuple[int, str, str]]:
    """(cell index, number, context) for each prose number no output prints."""
    printed = output_numbers(
        "\n".join(output_text(c) for c in nb.cells if c.cell_type == "code")
    )
    stale = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for written, value, decimals, percent in prose_decimals(cell.source):
            if written.rstrip("%") in allowed:
                continue
            if not is_printed(value, decimals, percent, printed):
                at = cell.source.find(written)
                context = cell.source[max(0, at - 60) : at + 40].replace("\n", " ")
                stale.append((index, written, context))
    return stale


def lesson(path: Path) -> str:
    return path.name[:2]


# ---- the matcher itself --------------------------------------------------------


def notebook(markdown: str, printed: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print(...)")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), code]
    return nb


def test_a_number_no_output_prints_is_reported():
    nb = notebook("The error falls to 0.84 after training.", "error 0.8312\n")
    assert [(i, n) for i, n, _ in stale_numbers(nb, set())] == [(0, "0.84")]


def test_a_rounded_number_is_found_in_the_output():
    nb = notebook("The error falls to 0.83, or 0.8 in round figures.", "err 0.8312")
    assert stale_numbers(nb, set()) == []


def test_a_percentage_matches_a_percent_or_a_fraction():
    assert stale_numbers(notebook("It clips 37.7% of them.", "37.68"), set()) == []
    assert stale_numbers(notebook("It clips 37.7% of them.", "0.3771"), set()) == []
    stale = stale_numbers(notebook("It clips 33.3% of them.", "0.3771"), set())
    assert [n for _, n, _ in stale] == ["33.3%"]


def test_thousands_separators_negative_signs_and_ratios():
    nb = notebook(
        "About 2.5× less, 1,234.5 steps, a drop of 0.46.", "-0.457 1234.5 2.49"
    )
    assert stale_numbers(nb, set()) == []


def test_code_exercise_numbers_and_arxiv_ids_are_not_claims():
    text = (
        "Exercises 1.1 and 1.2 (sec. 6.1, arXiv:1707.06347) call `f(x=0.37)`.\n"
        "```python\nlr = 2.5e-4\n```"
    )
    assert prose_decimals(text) == []


def test_an_allowed_constant_is_not_reported_and_others_are():
    nb = notebook("With γ = 0.99 and λ = 0.97 the estimate is 0.5.", "0.5")
    assert [n for _, n, _ in stale_numbers(nb, {"0.99"})] == ["0.97"]


# ---- the solution notebooks ----------------------------------------------------


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_every_number_in_the_prose_is_printed_by_an_output(solution):
    key = lesson(solution)
    allowed = COMMON_CONSTANTS | set(LESSON_CONSTANTS.get(key, {}))
    stale = stale_numbers(nbformat.read(solution, as_version=4), allowed)
    message = "\n".join(
        f"cell {i}: {number} is printed by no output (…{context}…)"
        for i, number, context in stale
    )
    assert not stale, (
        f"{solution.name}: numbers in the text that no stored output prints "
        f"(re-check the prose against the outputs, or name a constant):\n{message}"
    )
