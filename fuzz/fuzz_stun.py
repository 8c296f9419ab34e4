"""Fuzz harness for the STUN codec (:mod:`ppsp.codecs.stun`) and the Binding transaction that
reads what arrives on a peer's UDP socket (:mod:`ppsp.peer.nat.binding`).

Properties checked on every input:

* :func:`~ppsp.codecs.stun.decode_message` raises nothing but
  :class:`~ppsp.errors.StunFormatError`, and whatever it accepts is written back to a message
  that decodes to the same value;
* :meth:`~ppsp.peer.nat.binding.BindingTransaction.receive` raises nothing: a datagram either
  ends the transaction or is dropped and counted.

Run with atheris when it is installed (``python fuzz/fuzz_stun.py [libFuzzer flags]``);
otherwise a bounded random-mutation loop over valid seed messages runs
(``python fuzz/fuzz_stun.py [iterations] [seed]``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from ppsp.codecs.stun import decode_message, encode_message
from ppsp.errors import StunFormatError
from ppsp.peer.nat.binding import BindingTransaction
from ppsp.wire.stun import StunClass, StunMessage, StunMethod

TID = bytes(range(12))

SEEDS: tuple[bytes, ...] = (
    encode_message(StunMessage(StunClass.REQUEST, StunMethod.BINDING, TID, fingerprint=True)),
    encode_message(
        StunMessage(
            StunClass.SUCCESS,
            StunMethod.BINDING,
            TID,
            mapped=("203.0.113.7", 40000),
            software="coturn",
            fingerprint=True,
        )
    ),
    encode_message(
        StunMessage(StunClass.SUCCESS, StunMethod.BINDING, TID, mapped=("2001:db8::1", 9))
    ),
    encode_message(
        StunMessage(StunClass.ERROR, StunMethod.BINDING, TID, error=(420, "Unknown Attribute"))
    ),
)
"""Valid messages: the mutation loop's corpus."""

TOKENS = (
    b"\x21\x12\xa4\x42", b"\x80\x28\x00\x04", b"\x00\x20\x00\x08", b"\x00\x08\x00\x14",
    b"\x00\x00", b"\xff\xff", b"\x01\x01",
)  # fmt: skip


def test_one_input(data: bytes) -> None:
    """Check the properties on one input; any other exception is a finding."""
    try:
        message = decode_message(data)
    except StunFormatError:
        message = None
    if message is not None and decode_message(encode_message(message)) != message:
        raise AssertionError(f"a decoded message does not survive a round trip: {data!r}")
    transaction = BindingTransaction(TID, 0.0)
    if not transaction.receive(data) and transaction.dropped != 1:
        raise AssertionError(f"a datagram neither answered nor was counted: {data!r}")


def run_random(iterations: int = 5_000, seed: int = 0) -> int:
    """The bounded loop over this target's corpus (:func:`harness.run_random`)."""
    return harness.run_random(test_one_input, SEEDS, TOKENS, iterations, seed)


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 5_000)
