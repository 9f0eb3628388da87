"""Write tests/golden/caller_app.json: what the caller app (`ivr.wsgi:callers`, built by create_app(part=
"callers")) answers and spools for every route and key path (tests/caller_golden.py). Run it from the code
whose behaviour is the reference, commit its output; tests/test_caller_app_golden.py holds every later
version of the app to the same bytes.

    .venv/bin/python tests/golden/make_caller_golden.py
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: conftest, caller_golden

import caller_golden  # noqa: E402


def main() -> None:
    from ivr.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        results = caller_golden.scenarios(lambda cfg: create_app(cfg, part="callers"), Path(folder))
    caller_golden.GOLDEN.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    n = sum(len(v) for v in results.values())
    print(f"{n} answers written to {caller_golden.GOLDEN}")


if __name__ == "__main__":
    main()
