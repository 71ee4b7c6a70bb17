"""The one definition of the Stillflow wire protocol between clients and the backend service.

No torch, no bpy, no cv2: this module and the modules it gathers import only the
standard library, numpy, msgpack and ``stillflow.errors`` / ``stillflow.options``, because the
add-on bundles them. Import every protocol name from here:

- ``messages``: the operation catalogue, ``Message``, the header codec, error messages.
- ``parts``: wire dtypes, ``Limits``, binary parts and the image/mask checks.
- ``wire_options``: ``RenderOptions`` and ``MotionSpec`` to and from plain wire maps.

Convention:
    Transport is DEALER (client) <-> ROUTER (backend). Every message is multipart:
    frame 0 is a msgpack map with string keys only, ``{v, op, req, job, body, parts}``;
    frames 1.. are raw C-order little-endian buffers, one per entry of ``parts``
    (``{name, dtype, shape}``). No pickle, no msgpack extension types. The ROUTER's
    leading identity frame is handled by the server, never here.
    ``req`` is a client-chosen request id echoed in the reply (retries reuse it, and the
    server answers a repeated id from its cache instead of running it twice); ``job`` is
    the backend-chosen job id carried by job events.
"""
from __future__ import annotations

from .messages import (EVENT_OPS, MESSAGE_TYPES, PROTOCOL_VERSION, REQUEST_OPS, SERVER_OPS, Message,
                                check_header, decode, encode, error_from_wire, error_message, peek_ids, peek_raw_ids,
                                unpack_header)
from .wire_options import motion_from_wire, motion_to_wire, options_from_wire, options_to_wire
from .parts import (DEFAULT_MAX_PART_BYTES, MAX_HEADER_BYTES, MAX_HEADER_VALUES, MAX_PARTS, REQUEST_HEADER_BYTES,
                    REQUEST_HEADER_VALUES, WIRE_DTYPES, Limits, check_image,
                    check_mask, check_message_size, read_parts, to_wire_dtype)

__all__ = [
    "PROTOCOL_VERSION",
    "MESSAGE_TYPES",
    "REQUEST_OPS",
    "SERVER_OPS",
    "EVENT_OPS",
    "WIRE_DTYPES",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_VALUES",
    "REQUEST_HEADER_BYTES",
    "REQUEST_HEADER_VALUES",
    "MAX_PARTS",
    "DEFAULT_MAX_PART_BYTES",
    "Limits",
    "Message",
    "encode",
    "decode",
    "unpack_header",
    "peek_ids",
    "peek_raw_ids",
    "check_header",
    "read_parts",
    "error_message",
    "error_from_wire",
    "options_to_wire",
    "options_from_wire",
    "motion_to_wire",
    "motion_from_wire",
    "check_image",
    "check_mask",
    "check_message_size",
    "to_wire_dtype",
]
