"""Print the mutation score per module from mutmut's results (``make mutation``, docs/mutation.md).

    python -m tools.mutation_score [--mutants DIR] [--explained docs/mutation.md]

mutmut 3 keeps one ``<module>.py.meta`` JSON file per mutated module under ``mutants/``, mapping each
mutant's name to the exit code of the tests run against it. A mutant is *killed* when the tests failed
(exit 1 or 3) or ran out of time (the mutant made the code loop: the suite noticed); it *survived* when
the tests passed, and has *no tests* when no selected test reached its function. The score is
killed / total. Survivors named in the explained list (docs/mutation.md, one ``sanscouture.…__mutmut_N``
name per row) are counted apart; the others are printed so that each is either killed or explained.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

# mutmut.stats.status_by_exit_code, reduced to what the score needs.
KILLED_EXIT_CODES = frozenset({1, 3})
TIMEOUT_EXIT_CODES = frozenset({-24, 24, 36, 152, 255})
SURVIVED_EXIT_CODES = frozenset({0})
NO_TESTS_EXIT_CODES = frozenset({5, 33})
MUTANT_NAME = re.compile(r"\bsanscouture\.[\w.]+__mutmut_\d+\b")  # names hold "ǁ" (class methods)


@dataclass(frozen=True)
class ModuleScore:
    module: str
    killed: int
    timeout: int
    survived: tuple[str, ...]
    no_tests: tuple[str, ...]
    other: int  # not checked yet, interrupted, segfault, suspicious

    @property
    def total(self) -> int:
        return self.killed + self.timeout + len(self.survived) + len(self.no_tests) + self.other

    @property
    def detected(self) -> int:
        return self.killed + self.timeout


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "—"


def module_name(meta: Path, root: Path) -> str:
    """``mutants/sanscouture/oidc/token.py.meta`` → ``sanscouture/oidc/token.py``."""
    return meta.relative_to(root).as_posix().removesuffix(".meta")


def read_scores(root: Path) -> list[ModuleScore]:
    scores = []
    for meta in sorted(root.rglob("*.py.meta")):
        exit_codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        if not exit_codes:
            continue
        survived = tuple(sorted(name for name, code in exit_codes.items() if code in SURVIVED_EXIT_CODES))
        no_tests = tuple(sorted(name for name, code in exit_codes.items() if code in NO_TESTS_EXIT_CODES))
        killed = sum(code in KILLED_EXIT_CODES for code in exit_codes.values())
        timeout = sum(code in TIMEOUT_EXIT_CODES for code in exit_codes.values())
        other = len(exit_codes) - killed - timeout - len(survived) - len(no_tests)
        scores.append(ModuleScore(module_name(meta, root), killed, timeout, survived, no_tests, other))
    return scores


def explained_names(documents: Iterable[Path]) -> set[str]:
    names: set[str] = set()
    for document in documents:
        if document.exists():
            names.update(MUTANT_NAME.findall(document.read_text(encoding="utf-8")))
    return names


def report(scores: Sequence[ModuleScore], explained: set[str], out: TextIO) -> int:
    """Print the table and the unexplained survivors; return how many survivors are unexplained."""
    header = ("module", "killed", "total", "score", "survived", "explained", "no tests", "not run")
    rows = []
    unexplained: list[str] = []
    for score in scores:
        alive = (*score.survived, *score.no_tests)
        known = sum(name in explained for name in alive)
        unexplained.extend(name for name in alive if name not in explained)
        rows.append((score.module, str(score.detected), str(score.total), percent(score.detected, score.total),
                     str(len(score.survived)), str(known), str(len(score.no_tests)), str(score.other)))
    detected = sum(score.detected for score in scores)
    total = sum(score.total for score in scores)
    rows.append(("overall", str(detected), str(total), percent(detected, total),
                 str(sum(len(score.survived) for score in scores)),
                 str(sum(name in explained for score in scores for name in (*score.survived, *score.no_tests))),
                 str(sum(len(score.no_tests) for score in scores)), str(sum(score.other for score in scores))))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        out.write("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                            for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip() + "\n")
    if unexplained:
        out.write(f"\n{len(unexplained)} surviving mutant(s) neither killed nor explained in docs/mutation.md "
                  "(see them with `.venv/bin/mutmut show NAME`):\n")
        for name in unexplained:
            out.write(f"  {name}\n")
    return len(unexplained)


def main(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutation_score", description=__doc__.split("\n")[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's working folder")
    parser.add_argument("--explained", type=Path, action="append", default=None,
                        help="document listing the equivalent survivors (default docs/mutation.md)")
    args = parser.parse_args(argv)
    scores = read_scores(args.mutants)
    if not scores:
        out.write(f"No mutmut results under {args.mutants}/: run `make mutation` first.\n")
        return 1
    report(scores, explained_names(args.explained or [Path("docs/mutation.md")]), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
