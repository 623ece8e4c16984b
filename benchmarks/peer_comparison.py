"""metarl's 2D-navigation training against pytorch-maml-rl's, seconds per meta-iteration, in one run.

    .venv/bin/python benchmarks/peer_comparison.py [--rounds 2] [--iterations 12]
        [--peer ../shared/peers/pytorch-maml-rl] [-- metarl overrides]

Alternates, ``--rounds`` times: a short training of metarl's ``2d-navigation`` preset
(``scripts/train.py``, ``--iterations`` meta-iterations, its own ``seconds_per_iteration``
from metrics.csv, the first iteration left out) and the peer's own timing script on its
2d-navigation config (``time.sh 8 1 1``: 8 meta-batches, 1 thread, 1 worker, its best
setting on 2 cores; it prints its median seconds per meta-batch after the first). Both
run alone, one after the other. Prints each round and the medians' ratio. The peer is a
runnable copy of pytorch-maml-rl kept beside the repository (``../shared/peers``); it
builds its own venv under /tmp on first use.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import outputs

ROOT = Path(__file__).resolve().parent.parent


def metarl_seconds(iterations: int, overrides: list[str]) -> float:
    """Median ``seconds_per_iteration`` of a fresh 2d-navigation training, its first iteration left out."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "train.py"),
                "--config",
                "2d-navigation",
                "--num_iterations",
                str(iterations),
                "--tensorboard",
                "false",
                "--no-progress",
                "--out_dir",
                out,
                "--run_name",
                "bench",
                *overrides,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with open(Path(out) / "bench" / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
    return statistics.median(float(r["seconds_per_iteration"]) for r in rows[1:])


def peer_seconds(peer: Path) -> float:
    """The peer's median seconds per meta-batch after the first (``time.sh 8 1 1``)."""
    result = subprocess.run(["bash", str(peer / "time.sh"), "8", "1", "1"], check=True, capture_output=True, text=True)
    match = re.search(r"median_s_per_batch_after_first:\s*([0-9.]+)", result.stdout)
    if match is None:
        raise SystemExit(f"the peer printed no median:\n{result.stdout}\n{result.stderr}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--peer", type=Path, default=ROOT.parent / "shared" / "peers" / "pytorch-maml-rl")
    parser.add_argument("override", nargs="*", help="metarl config overrides after --, e.g. --meta_update exact")
    args = parser.parse_args()
    if not (args.peer / "time.sh").is_file():
        raise SystemExit(f"no peer at {args.peer} (expected its time.sh)")
    ours, theirs = [], []
    for r in range(args.rounds):
        ours.append(metarl_seconds(args.iterations, args.override))
        theirs.append(peer_seconds(args.peer))
        print(f"round {r}: metarl {ours[-1]:.3f} s per meta-iteration, pytorch-maml-rl {theirs[-1]:.3f} s", flush=True)
    mine, peer = statistics.median(ours), statistics.median(theirs)
    outputs.save(
        "peer_comparison",
        {
            "config": "2d-navigation",
            "overrides": args.override,
            "rounds": args.rounds,
            "iterations": args.iterations,
            "peer": "pytorch-maml-rl (time.sh 8 1 1: 8 meta-batches, 1 thread, 1 worker)",
        },
        {
            "metarl_seconds": ours,
            "peer_seconds": theirs,
            "metarl_median": mine,
            "peer_median": peer,
            "speedup": peer / mine,
        },
    )
    print(
        f"medians: metarl 2d-navigation {' '.join(args.override)} {mine:.3f} s, pytorch-maml-rl {peer:.3f} s: "
        f"metarl {peer / mine:.1f}x faster"
    )


if __name__ == "__main__":
    main()
