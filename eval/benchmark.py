"""The evaluator's entry point: the same options as `assistant eval`.

python eval/benchmark.py [--gold FILE] [--out DIR] [--systems assistant,langchain-baseline] [--top-k N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.cli import main

if __name__ == "__main__":
    main(["eval", *sys.argv[1:]], prog_name="python eval/benchmark.py")
