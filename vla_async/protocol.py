"""Wire protocol, public names: frame 0 is a msgpack header, frames 1..n are raw C-contiguous arrays.

Header: `{"v": version, "type": name, "meta": {...}, "arrays": [[name, dtype, shape], ...]}`.
Everything that comes off the network is untrusted: the header is unpacked with strict size, depth
and element limits, dtypes come from an allow-list (never `object`), every shape and byte count is
checked with integer arithmetic (against the spec agreed at handshake when one is given) before
arrays are built with `np.frombuffer`, and error texts quote attacker data only as bounded excerpts.
Nothing is ever unpickled. Images may travel as JPEG (dtype tag "jpeg"), checked from the JPEG
header against the agreed spec before decoding.

The implementation lives in `vla_async.wire` (codec, validation, builders, decoder); this module
is the stable import path.
"""

from vla_async.wire.codec import DTYPES, FLOAT_DTYPES, IMAGE_PREFIX, JPEG, DecodeLimits, encode
from vla_async.wire.decoder import decode
from vla_async.wire.errors import ProtocolError, excerpt
from vla_async.wire.validation import ArraySpec, ExpectedArray, largest_frame_bytes

__all__ = ["DTYPES", "FLOAT_DTYPES", "IMAGE_PREFIX", "JPEG", "ArraySpec", "DecodeLimits", "ExpectedArray",
           "ProtocolError", "decode", "encode", "excerpt", "largest_frame_bytes"]
