"""Hypothesis strategies for RFC 7574 (PPSPP) datagrams, shared by its codec tests and fuzzing.

:func:`parameters` draws what a channel negotiated; :func:`datagrams` draws a channel's
parameters with a valid datagram for them: every message type, a HANDSHAKE only first (the
messages after it are read with the parameters it announces), a DATA shorter than the chunk
size only last.  :func:`encoded` gives the bytes of such a datagram, the seeds of the
truncation and mutation properties.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import strategies as st

from ppsp.codecs.ppspp import EncoderProfile, encode_datagram
from ppsp.wire.ppspp import (
    MAX_CHANNEL_ID,
    MAX_SUPPORTED_MESSAGES_BYTES,
    MAX_TIMESTAMP,
    VARIABLE_CHUNK_SIZE,
    Ack,
    Bin,
    Cancel,
    ChannelParameters,
    Choke,
    ChunkAddressing,
    ChunkRange,
    ChunkSpec,
    ContentIntegrity,
    Data,
    Datagram,
    Handshake,
    Have,
    Integrity,
    MerkleHashFunction,
    Message,
    PexReq,
    PexResCert,
    PexResV4,
    PexResV6,
    Request,
    SignedIntegrity,
    SupportedMessages,
    Unchoke,
)

channel_ids = st.integers(min_value=0, max_value=MAX_CHANNEL_ID)
timestamps = st.integers(min_value=0, max_value=MAX_TIMESTAMP)
ports = st.integers(min_value=0, max_value=0xFFFF)


@st.composite
def parameters(draw: st.DrawFn) -> ChannelParameters:
    """A channel's negotiated parameters, small chunk sizes included."""
    return ChannelParameters(
        chunk_addressing=draw(st.sampled_from(ChunkAddressing)),
        merkle_hash=draw(st.sampled_from(MerkleHashFunction)),
        chunk_size=draw(st.one_of(st.integers(1, 64), st.just(VARIABLE_CHUNK_SIZE))),
        signature_length=draw(st.one_of(st.none(), st.integers(1, 96))),
    )


def chunk_specs(params: ChannelParameters) -> st.SearchStrategy[ChunkSpec]:
    """A chunk specification in the channel's chunk addressing method."""
    top = params.chunk_addressing.max_value
    values = st.one_of(st.integers(0, top), st.sampled_from((0, 1, top - 1, top)))
    if params.chunk_addressing.is_bin:
        return st.builds(Bin, number=values)
    return st.tuples(values, values).map(lambda pair: ChunkRange(start=min(pair), end=max(pair)))


def _leaf(params: ChannelParameters) -> st.SearchStrategy[ChunkSpec]:
    top = params.chunk_addressing.max_value
    if params.chunk_addressing.is_bin:
        return st.integers(0, top // 2).map(lambda i: Bin(number=2 * i))
    return st.integers(0, top).map(lambda i: ChunkRange(start=i, end=i))


@st.composite
def data_messages(draw: st.DrawFn, params: ChannelParameters, *, last: bool) -> Data:
    """A DATA for the channel: whole chunks anywhere, a shorter last chunk only ``last``."""
    timestamp = draw(timestamps)
    if params.chunk_addressing == ChunkAddressing.BYTE_RANGE_64:
        start = draw(st.integers(0, params.chunk_addressing.max_value - 64))
        payload = draw(st.binary(min_size=1, max_size=64))
        chunk = ChunkRange(start=start, end=start + len(payload) - 1)
        return Data(chunk=chunk, timestamp=timestamp, data=payload)
    size = params.chunk_size
    if size == VARIABLE_CHUNK_SIZE:
        payload = draw(st.binary(min_size=1, max_size=80))
    elif last:
        payload = draw(st.binary(min_size=1, max_size=size))
    else:
        payload = draw(st.binary(min_size=size, max_size=size))
    return Data(chunk=draw(_leaf(params)), timestamp=timestamp, data=payload)


def handshakes(*, closing: bool | None = None) -> st.SearchStrategy[Handshake]:
    """A HANDSHAKE with any combination of its options (syntax only)."""

    @st.composite
    def build(draw: st.DrawFn) -> Handshake:
        def maybe(strategy: st.SearchStrategy[object]) -> object:
            return draw(st.one_of(st.none(), strategy))

        version = maybe(st.integers(1, 255))
        low = maybe(st.integers(1, version if isinstance(version, int) else 255))
        addressing = maybe(st.sampled_from(ChunkAddressing))
        window = None
        if isinstance(addressing, ChunkAddressing):
            window = maybe(st.integers(0, addressing.max_value))
        if closing is None:
            source = draw(channel_ids)
        else:
            source = 0 if closing else draw(st.integers(1, MAX_CHANNEL_ID))
        return Handshake(
            source_channel=source,
            version=version,  # type: ignore[arg-type]
            min_version=low,  # type: ignore[arg-type]
            swarm_id=maybe(st.binary(min_size=1, max_size=80)),  # type: ignore[arg-type]
            content_integrity=maybe(st.sampled_from(ContentIntegrity)),  # type: ignore[arg-type]
            merkle_hash=maybe(st.sampled_from(MerkleHashFunction)),  # type: ignore[arg-type]
            live_signature=maybe(st.integers(0, 255)),  # type: ignore[arg-type]
            chunk_addressing=addressing,  # type: ignore[arg-type]
            live_discard_window=window,  # type: ignore[arg-type]
            supported_messages=maybe(  # type: ignore[arg-type]
                st.builds(
                    SupportedMessages,
                    bitmap=st.binary(max_size=MAX_SUPPORTED_MESSAGES_BYTES),
                )
            ),
            chunk_size=maybe(st.one_of(st.integers(1, 64), st.just(VARIABLE_CHUNK_SIZE))),  # type: ignore[arg-type]
        )

    return build()


def messages(params: ChannelParameters) -> st.SearchStrategy[Message]:
    """Any message but HANDSHAKE and DATA, for a channel with ``params``."""
    specs = chunk_specs(params)
    kinds: list[st.SearchStrategy[Message]] = [
        st.builds(Ack, chunk=specs, delay=timestamps),
        st.builds(Have, chunk=specs),
        st.builds(
            Integrity,
            chunk=specs,
            hash=st.binary(min_size=params.hash_length, max_size=params.hash_length),
        ),
        st.builds(PexResV4, address=st.builds(IPv4Address, st.integers(0, 2**32 - 1)), port=ports),
        st.just(PexReq()),
        st.builds(Request, chunk=specs),
        st.builds(Cancel, chunk=specs),
        st.just(Choke()),
        st.just(Unchoke()),
        st.builds(PexResV6, address=st.builds(IPv6Address, st.integers(0, 2**128 - 1)), port=ports),
        st.builds(PexResCert, certificate=st.binary(max_size=64)),
    ]
    if params.signature_length is not None:
        length = params.signature_length
        kinds.append(
            st.builds(
                SignedIntegrity,
                chunk=specs,
                timestamp=timestamps,
                signature=st.binary(min_size=length, max_size=length),
            )
        )
    return st.one_of(kinds)


@st.composite
def datagrams(draw: st.DrawFn) -> tuple[ChannelParameters, Datagram]:
    """A channel's parameters and a valid datagram for them (keep-alives included)."""
    params = draw(parameters())
    channel = draw(st.one_of(st.just(0), channel_ids))
    body: list[Message] = []
    effective = params
    if channel == 0 or draw(st.booleans()):
        handshake = draw(handshakes())
        body.append(handshake)
        effective = params.with_handshake(handshake)
    body += draw(st.lists(messages(effective), max_size=6))
    if draw(st.booleans()):
        count = draw(st.integers(1, 3))
        for index in range(count):
            # With variable chunk sizes a DATA runs to the datagram's end: it comes last.
            last = index == count - 1 or effective.chunk_size == VARIABLE_CHUNK_SIZE
            body.append(draw(data_messages(effective, last=last)))
            if last:
                break
    return params, Datagram(channel=channel, messages=tuple(body))


@st.composite
def encoded(draw: st.DrawFn) -> tuple[ChannelParameters, bytes]:
    """A channel's parameters and the bytes of a valid datagram for them."""
    params, datagram = draw(datagrams())
    return params, encode_datagram(datagram, params, profile=EncoderProfile.PLAIN)
