"""The mutation score tool over mutmut's result files (``make mutation``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from tools.mutation_score import main
from tools.mutation_score import read_scores


def write_meta(root: Path, module: str, exit_codes: dict[str, int | None]) -> None:
    path = root / (module + ".meta")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code_by_key": exit_codes, "durations_by_key": {}}), encoding="utf-8")


def test_scores_count_killed_and_timeouts_as_detected_and_the_rest_as_alive(tmp_path: Path) -> None:
    write_meta(tmp_path, "sanscouture/oidc/pkce.py", {
        "sanscouture.oidc.pkce.x_s256__mutmut_1": 1,
        "sanscouture.oidc.pkce.x_s256__mutmut_2": 3,
        "sanscouture.oidc.pkce.x_s256__mutmut_3": 36,
        "sanscouture.oidc.pkce.x_s256__mutmut_4": 0,
        "sanscouture.oidc.pkce.x_s256__mutmut_5": 33,
        "sanscouture.oidc.pkce.x_s256__mutmut_6": None,
    })
    write_meta(tmp_path, "sanscouture/oidc/__init__.py", {})

    [score] = read_scores(tmp_path)

    assert score.module == "sanscouture/oidc/pkce.py"
    assert (score.killed, score.timeout, score.other, score.total, score.detected) == (2, 1, 1, 6, 3)
    assert score.survived == ("sanscouture.oidc.pkce.x_s256__mutmut_4",)
    assert score.no_tests == ("sanscouture.oidc.pkce.x_s256__mutmut_5",)


def test_report_prints_the_score_per_module_and_overall_and_the_unexplained_survivors(tmp_path: Path) -> None:
    mutants = tmp_path / "mutants"
    write_meta(mutants, "sanscouture/oidc/pkce.py", {
        "sanscouture.oidc.pkce.x_s256__mutmut_1": 1,
        "sanscouture.oidc.pkce.x_s256__mutmut_2": 0,
        "sanscouture.oidc.pkce.x_s256__mutmut_3": 0,
    })
    write_meta(mutants, "sanscouture/entra_policy.py", {"sanscouture.entra_policy.x_f__mutmut_1": 1})
    explained = tmp_path / "mutation.md"
    explained.write_text("| `sanscouture.oidc.pkce.x_s256__mutmut_2` | a log message |\n", encoding="utf-8")
    out = io.StringIO()

    assert main(["--mutants", str(mutants), "--explained", str(explained)], out) == 0

    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["module", "killed", "total", "score", "survived", "explained", "no", "tests",
                                "not", "run"]
    assert lines[1].split() == ["sanscouture/entra_policy.py", "1", "1", "100.0", "%", "0", "0", "0", "0"]
    assert lines[2].split() == ["sanscouture/oidc/pkce.py", "1", "3", "33.3", "%", "2", "1", "0", "0"]
    assert lines[3].split() == ["overall", "2", "4", "50.0", "%", "2", "1", "0", "0"]
    assert lines[-1].strip() == "sanscouture.oidc.pkce.x_s256__mutmut_3"
    assert "sanscouture.oidc.pkce.x_s256__mutmut_2\n" not in out.getvalue()


def test_without_results_it_says_to_run_mutmut_first(tmp_path: Path) -> None:
    out = io.StringIO()
    assert main(["--mutants", str(tmp_path / "mutants")], out) == 1
    assert "make mutation" in out.getvalue()
