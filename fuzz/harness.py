"""What every byte-mutation fuzz target shares: the mutations, the bounded random loop run when
atheris is not installed, and the entry point that prefers atheris when it is.

A target defines its seed corpus, its tokens and ``test_one_input(data)`` (raising on a
finding), then calls :func:`main`.  Targets import this module after putting its folder on
``sys.path`` (the fuzz folder is not a package).
"""

from __future__ import annotations

import importlib
import os
import random
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from typing import Any

Check = Callable[[bytes], None]


def mutate(
    data: bytes, rng: random.Random, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    """One to six random edits of ``data``: a bit flipped, a token inserted, up to 32 bytes
    deleted, a slice of up to 128 bytes repeated, a byte replaced, or its tail replaced by
    another seed's."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        position = rng.randint(0, len(buffer))
        action = rng.randrange(6)
        if action == 0 and position < len(buffer):
            buffer[position] ^= 1 << rng.randrange(8)
        elif action == 1:
            buffer[position:position] = rng.choice(tokens)
        elif action == 2:
            del buffer[position : position + rng.randint(1, 32)]
        elif action == 3:
            start = rng.randint(0, len(buffer))
            buffer[position:position] = buffer[start : start + rng.randint(1, 128)]
        elif action == 4 and position < len(buffer):
            buffer[position] = rng.randrange(256)
        else:
            other = rng.choice(seeds)
            buffer[position:] = other[rng.randint(0, len(other)) :]
    return bytes(buffer)


def run_random(
    check: Check,
    seeds: Sequence[bytes],
    tokens: Sequence[bytes],
    iterations: int,
    seed: int = 0,
    *,
    extra: Sequence[bytes] = (),
) -> int:
    """Run ``check`` on the seeds and ``extra`` inputs, then on ``iterations`` mutations of the
    seeds; returns the number of inputs run.  A finding is printed to stderr with its input,
    then raised."""
    rng = random.Random(seed)
    for data in (*seeds, *extra):
        check(data)
    for iteration in range(iterations):
        data = mutate(rng.choice(seeds), rng, seeds, tokens)
        try:
            check(data)
        except Exception:
            traceback.print_exc()
            print(f"iteration {iteration}: crashing input {data!r}", file=sys.stderr)
            raise
    return iterations + len(seeds) + len(extra)


def main(argv: list[str], check: Check, run: Callable[[int, int], int], iterations: int) -> None:
    """Fuzz ``check`` with atheris when available (libFuzzer flags in ``argv``), else call
    ``run(iterations, seed)``, the target's bounded loop (``argv``: [iterations] [seed])."""
    try:
        atheris = importlib.import_module("atheris")
    except ImportError:
        count = run(
            int(argv[1]) if len(argv) > 1 else iterations, int(argv[2]) if len(argv) > 2 else 0
        )
        print(f"atheris not installed; {count} inputs passed")
        return
    fuzz_with_atheris(atheris, argv, check, seeds_of(run))


def seeds_of(run: Callable[[int, int], int]) -> Sequence[bytes]:
    """The seed corpus of the target whose bounded loop is ``run`` (its module's ``SEEDS`` or
    ``seeds()``; none when it has neither)."""
    module = sys.modules.get(getattr(run, "__module__", "") or "")
    found = getattr(module, "SEEDS", None)
    if found is None and callable(getattr(module, "seeds", None)):
        found = module.seeds()  # type: ignore[union-attr]
    return tuple(found or ())


def fuzz_with_atheris(atheris: Any, argv: list[str], check: Check, seeds: Sequence[bytes]) -> None:
    """Coverage-guided fuzzing of ``check`` by atheris (libFuzzer flags in ``argv``).

    Every module already imported is instrumented (``atheris.instrument_all``), so that the
    project's parsers, not only the target, guide the search; when ``argv`` names no corpus
    folder, one is made with the target's ``seeds`` (the draft examples and valid messages),
    so that the search starts from documents that parse rather than from empty input.
    """
    atheris.instrument_all()
    argv = list(argv)
    if seeds and not any(os.path.isdir(arg) for arg in argv[1:] if not arg.startswith("-")):
        corpus = tempfile.mkdtemp(prefix="ppsp-fuzz-corpus-")
        for number, data in enumerate(seeds):
            with open(os.path.join(corpus, f"seed-{number:04d}"), "wb") as handle:
                handle.write(data)
        argv.append(corpus)
    atheris.Setup(argv, check)
    atheris.Fuzz()
