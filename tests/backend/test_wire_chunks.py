"""Parts above the receiver's max_frame_bytes travel as chunks and are joined on arrival."""
from __future__ import annotations

import numpy as np
import pytest

from stillflow.errors import ProtocolError
from stillflow.link.messages import unpack_header
from stillflow.link.parts import read_parts
from stillflow.link.protocol import REQUEST_OPS, Limits, Message, decode, encode

CHUNKED = Limits(max_part_bytes=1 << 20, max_frame_bytes=1000)


def _message() -> Message:
    rng = np.random.default_rng(3)
    return Message("submit", body={}, req="r", parts={"image": rng.random((20, 30, 3), dtype=np.float32),
                                                      "empty": np.zeros((0,), np.uint8),
                                                      "mask": rng.integers(0, 256, (20, 30), dtype=np.uint8)})


def test_parts_round_trip_in_chunks_of_the_advertised_size() -> None:
    sent = _message()
    frames = encode(sent, CHUNKED.max_frame_bytes)
    assert len(frames) == 1 + 8 + 1 + 1 and max(memoryview(f).nbytes for f in frames[1:]) == 1000
    got = decode([bytes(f) for f in frames], limits=CHUNKED, ops=REQUEST_OPS)
    for name, array in sent.parts.items():
        assert np.array_equal(got.parts[name], array) and got.parts[name].dtype == array.dtype
        assert not got.parts[name].flags.writeable


def test_a_receiver_without_a_frame_cap_reads_only_whole_parts() -> None:
    frames = [bytes(f) for f in encode(_message(), 1000)]
    with pytest.raises(ProtocolError, match="part image declares 7200 bytes but its frames hold 1000"):
        decode(frames, limits=Limits(max_part_bytes=1 << 20), ops=REQUEST_OPS)


def test_chunks_must_add_up_to_their_part() -> None:
    frames = [bytes(f) for f in encode(_message(), 1000)]
    del frames[3]
    with pytest.raises(ProtocolError, match="part image declares 7200 bytes but its frames hold 6200"):
        decode(frames, limits=CHUNKED, ops=REQUEST_OPS)


def test_more_frames_than_the_limits_allow_are_refused_unread() -> None:
    limits = Limits(max_part_bytes=4000, max_frame_bytes=1000)  # 16 parts + 8 chunks of a full message
    frames = [bytes(f) for f in encode(Message("ping", req="r"))] + [b""] * (limits.max_data_frames + 1)
    with pytest.raises(ProtocolError, match="carries 25 part frames; at most 24 accepted"):
        decode(frames, limits=limits, ops=REQUEST_OPS)


def test_consumed_chunks_are_dropped_as_they_are_joined() -> None:
    sent = _message()
    frames = encode(sent, 1000)
    header_frames, data = frames[:1], [bytes(f) for f in frames[1:]]
    parts = read_parts(unpack_header(header_frames[0], CHUNKED), data, CHUNKED, consume=True)
    assert data[:8] == [None] * 8 and data[8:] != [None] * 3  # whole-part frames stay: their arrays view them
    assert np.array_equal(parts["image"], sent.parts["image"])
