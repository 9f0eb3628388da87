"""Each mutated module's killed / total, read from mutmut's results in mutants/ (`make mutate` prints it).

mutmut 3 prints one total for the whole run; the targets (docs/testing.md) are per module, so this reads the
per-file results it leaves in mutants/<path>.meta. `--survivors` adds the surviving mutants by function, the
list to work through (`mutmut show NAME` prints a mutant's diff).

    .venv-mutate/bin/python bench/mutation_score.py [--survivors]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

try:
    from mutmut.stats import status_by_exit_code  # mutmut >= 3.8
except ImportError:
    from mutmut.__main__ import status_by_exit_code

MUTANTS = Path("mutants")  # where mutmut leaves them: under the directory it ran in, the project's root
# ivr.core.flow.x__say__mutmut_3 (a function) or ivr.core.rules.xǁRulesǁprompt__mutmut_1 (a method)
NAME = re.compile(r"^(?P<module>.+?)\.x(?:_(?P<function>.+)|ǁ(?P<cls>[^ǁ]+)ǁ(?P<method>.+))__mutmut_\d+$")
KILLED = {"killed", "timeout", "caught by type check"}  # a timeout is a mutant that never finished: caught


def function_of(mutant: str) -> str:
    m = NAME.match(mutant)
    if not m:
        return mutant
    return m["function"] or f"{m['cls']}.{m['method']}"


def results(mutants: Path = MUTANTS) -> dict[str, dict[str, str]]:
    """{module path: {mutant name: status}} for every module mutmut mutated."""
    found = {}
    for meta in sorted(mutants.glob("**/*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            found[str(meta.relative_to(mutants))[:-len(".meta")]] = {k: status_by_exit_code[v] for k, v in codes.items()}
    return found


def table(found: dict[str, dict[str, str]]) -> list[str]:
    lines = [f"{'module':<28} {'killed / total':>15} {'score':>7} {'survived':>9} {'no tests':>9} {'timeout':>8} "
             f"{'not run':>8}"]
    for path, statuses in found.items():
        n = Counter(statuses.values())
        killed = sum(n[s] for s in KILLED)
        total = len(statuses)
        other = total - killed - n["survived"] - n["no tests"]
        lines.append(f"{path:<28} {f'{killed:,} / {total:,}':>15} {100 * killed / total:>6.1f}% {n['survived']:>9} "
                     f"{n['no tests']:>9} {n['timeout']:>8} {other:>8}")
    return lines


def survivors(found: dict[str, dict[str, str]]) -> list[str]:
    lines = []
    for path, statuses in found.items():
        left = [k for k, s in statuses.items() if s in ("survived", "no tests")]
        by_function = Counter(function_of(k) for k in left)
        for function, count in by_function.most_common():
            names = sorted(k for k in left if function_of(k) == function)
            lines.append(f"{path} {function}: {count} ({', '.join(n.rsplit('_', 1)[1] for n in names)})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survivors", action="store_true", help="list surviving and untested mutants by function")
    args = parser.parse_args(argv)
    found = results()
    if not found:
        print("no mutmut results in mutants/: run `make mutate` first", file=sys.stderr)
        return 1
    print("\n".join(table(found)))
    if args.survivors:
        print("\n".join(["", "surviving (or untested) mutants by function; `mutmut show NAME` prints one:"]
                        + survivors(found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
