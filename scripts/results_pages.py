"""Regenerate the results pages' tables from the committed runs: ``python scripts/results_pages.py``.

Rewrites the generated blocks (see :mod:`metarl.reproduction.pages`) of ``README.md``,
``results/README.md``, ``BENCHMARKS.md`` and the pages in ``docs/`` from the run folders under ``results/`` and the
benchmarks' outputs in ``benchmarks/results/``: every seed's evaluation,
the mean over seeds, the baselines, the paper's checks, iterations, env steps, training
time and CPU. ``--check`` changes nothing and exits 1 naming each block that has drifted
(the test suite runs it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from envs.meta_world.expert_table import expert_table_block
from metarl.cli.arguments import ArgumentParser
from metarl.reproduction.benchmark_tables import benchmark_blocks
from metarl.reproduction.pages import (
    adaptation_block,
    block_names,
    render_blocks,
    stale_blocks,
    training_cost_block,
    update_page,
)
from metarl.system.files import write_atomic

REPOSITORY = Path(__file__).resolve().parents[1]
PAGES = (
    REPOSITORY / "README.md",
    REPOSITORY / "results" / "README.md",
    REPOSITORY / "BENCHMARKS.md",
    *sorted((REPOSITORY / "docs").glob("*.md")),
)


def _folder_blocks(text: str) -> dict[str, str]:
    """The ``adaptation:``, ``meta_world_experts:`` and ``training_cost:`` blocks in ``text``, each from its folder."""
    makers = {
        "adaptation": adaptation_block,
        "meta_world_experts": expert_table_block,
        "training_cost": training_cost_block,
    }
    blocks = {}
    for name in block_names(text):
        kind, _, folder = name.partition(":")
        if kind in makers and folder:
            blocks[name] = makers[kind](REPOSITORY / folder, folder)
    return blocks


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only report blocks that differ from the runs")
    p.add_argument("--root", type=Path, default=REPOSITORY / "results", help="the reproduction's root (results/)")
    args = p.parse_args(argv)
    try:
        benchmarks = benchmark_blocks(REPOSITORY / "benchmarks" / "results")
    except ValueError as error:  # an output that no longer describes what it claims to measure
        print(f"results_pages: {error}", file=sys.stderr)
        return 1
    stale = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = {
            **render_blocks(args.root, page.parent),
            **benchmarks,
            **_folder_blocks(text),
        }
        if args.check:
            stale += [f"{page.relative_to(REPOSITORY)}: {name}" for name in stale_blocks(text, blocks)]
        else:
            new = update_page(text, blocks)
            if new != text:
                write_atomic(page, new)
                print(f"updated {page.relative_to(REPOSITORY)}")
    for line in stale:
        print(f"drifted from the runs: {line} (run scripts/results_pages.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
