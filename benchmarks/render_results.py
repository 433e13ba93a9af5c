"""Write ``docs/results.md`` from the tables the benchmarks saved under ``docs/results/*.json``.

    python benchmarks/render_results.py           # rewrite docs/results.md
    python benchmarks/render_results.py --check   # exit 1 if docs/results.md is not what the JSON gives

Each table is stamped with the command that made it, the commit, the model and the machine, so a table
older than the code it describes shows itself. The order of the sections is ``ORDER``, then the rest by
name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from results_table import FORMAT, RESULTS, ROOT

OUT = ROOT / "docs" / "results.md"
ORDER = ("quality_lsun100", "quality_lsun100_4706bce", "quality_cbsd68", "speed", "domain", "ablate")
HEADER = """# Measured results

Written by `python benchmarks/render_results.py` from the JSON files in `docs/results/`; do not edit by
hand. Each table says the command that made it, the commit it ran at (`+` marks uncommitted changes), the
model and the machine. A benchmark that saves a table again rewrites its file; run the renderer after it.
"""


def cell(value: object, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def section(data: dict) -> str:
    if data.get("format") != FORMAT:
        raise ValueError(f"{data.get('name')}: format {data.get('format')!r}, expected {FORMAT}")
    digits = int(data.get("digits", 2))
    commit = data["commit"] + ("+" if data.get("dirty") else "")
    lines = [
        f"## {data['title']}",
        "",
        f"`{data['command']}`",
        "",
        f"Commit {commit}, model {data['model']}, {data['machine']}, {data['date']}.",
        "",
        "| " + " | ".join(data["columns"]) + " |",
        "|" + "---|" * len(data["columns"]),
    ]
    lines += ["| " + " | ".join(cell(v, digits) for v in row) + " |" for row in data["rows"]]
    if data.get("notes"):
        lines += ["", data["notes"]]
    return "\n".join(lines) + "\n"


def render(directory: Path = RESULTS) -> str:
    tables = {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}
    names = [n for n in ORDER if n in tables] + sorted(n for n in tables if n not in ORDER)
    return "\n".join([HEADER, *(section(tables[n]) for n in names)])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(
                f"{OUT.relative_to(ROOT)} is stale: run python benchmarks/render_results.py", file=sys.stderr
            )
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
