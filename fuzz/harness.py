"""What every fuzz target shares: the bounded random-mutation loop run when atheris is not
installed, and the entry point that prefers atheris when it is.

A target defines its seed corpus, its tokens and ``test_one_input(data)`` (raising on a
finding), then calls :func:`main`.
"""

from __future__ import annotations

import importlib
import random
import sys
import traceback
from collections.abc import Callable, Sequence

Check = Callable[[bytes], None]


def mutate(
    data: bytes, rng: random.Random, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    """A few random edits of ``data``: a byte changed, a token inserted, bytes deleted, or
    its tail replaced by another seed's."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        position = rng.randint(0, len(buffer))
        action = rng.randrange(4)
        if action == 0 and position < len(buffer):
            buffer[position] = rng.randrange(256)
        elif action == 1:
            buffer[position:position] = rng.choice(tokens)
        elif action == 2:
            del buffer[position : position + rng.randint(1, 8)]
        else:
            other = rng.choice(seeds)
            buffer[position:] = other[rng.randint(0, len(other)) :]
    return bytes(buffer)


def run_random(
    check: Check, seeds: Sequence[bytes], tokens: Sequence[bytes], iterations: int, seed: int = 0
) -> int:
    """Run ``check`` on the seeds, then on ``iterations`` mutations of them; returns the number
    of inputs run.  A finding is printed to stderr with its input, then raised."""
    rng = random.Random(seed)
    for data in seeds:
        check(data)
    for iteration in range(iterations):
        data = mutate(rng.choice(seeds), rng, seeds, tokens)
        try:
            check(data)
        except Exception:
            traceback.print_exc()
            print(f"iteration {iteration}: crashing input {data!r}", file=sys.stderr)
            raise
    return iterations + len(seeds)


def main(argv: list[str], check: Check, seeds: Sequence[bytes], tokens: Sequence[bytes]) -> None:
    """Fuzz ``check`` with atheris when available (libFuzzer flags in ``argv``), else run the
    bounded loop (``argv``: [iterations] [seed])."""
    try:
        atheris = importlib.import_module("atheris")
    except ImportError:
        iterations = int(argv[1]) if len(argv) > 1 else 5_000
        seed = int(argv[2]) if len(argv) > 2 else 0
        count = run_random(check, seeds, tokens, iterations, seed)
        print(f"atheris not installed; {count} inputs passed")
        return
    atheris.Setup(argv, check)
    atheris.Fuzz()
