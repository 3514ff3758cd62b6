"""Server-sent events decoder: bytes in, events out (pure).

Follows the WHATWG "event stream interpretation" rules: lines end in CRLF, LF or CR (a CR at the
end of one chunk and an LF at the start of the next are one line break); ``data`` lines are
joined by LF; ``:`` lines are comments; a field with no colon has an empty value; one space after
the colon is stripped; one leading UTF-8 BOM is ignored; ``retry`` and unknown fields are ignored;
an event with no ``data`` is not dispatched; ``id`` sets the last event ID, which persists across
events (``id:`` with no value resets it to ``""``; a value containing NUL is ignored).

Bytes are split into lines with ``bytes.splitlines`` (which knows exactly CR, LF and CRLF), and
each line is decoded on its own, so a multi-byte character split across chunks is whole again;
invalid UTF-8 becomes U+FFFD, never an exception.

Memory is bounded: a partial line, or the data of one event, larger than ``max_event_bytes`` makes
the decoder drop that event (it skips to the next blank line) and carry on.

End of stream: per the spec, an event still pending when the stream ends (no final blank line) is
discarded, not dispatched, so :meth:`SSEDecoder.flush` returns ``[]`` and resets the decoder. The
providers we parse always end their events with a blank line; a stream cut mid-event is
incomplete anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True, frozen=True)
class SSEEvent:
    """One dispatched event: its type, its data lines joined by LF, and the last event ID."""

    event: str = "message"
    data: str = ""
    id: str | None = None


class SSEDecoder:
    """Incremental decoder: feed it chunks as they arrive; it returns the completed events."""

    __slots__ = (
        "_at_start",
        "_buffer",
        "_data",
        "_data_size",
        "_dropping",
        "_event",
        "_last_id",
        "_max",
        "_skip_lf",
        "_skipping_line",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buffer = bytearray()  # the current partial line, without its line break
        self._skip_lf = False  # the last chunk ended in CR: an LF starting the next is its pair
        self._at_start = True  # no line seen yet: a BOM may still come
        self._event = ""
        self._data: list[str] = []
        self._data_size = 0
        self._dropping = False  # the current event overflowed: skip it up to its blank line
        self._skipping_line = False  # inside an overlong line: skip it up to its line break
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode one chunk; return the events it completed (often none). Never raises."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if self._skipping_line:
            chunk = self._skip_long_line(chunk)
        if not chunk:
            return []
        if b"\n" not in chunk and b"\r" not in chunk:
            self._extend_partial(chunk)
            return []
        if self._buffer:
            chunk = bytes(self._buffer) + chunk
            self._buffer.clear()
        lines = chunk.splitlines(keepends=True)
        partial = b"" if lines[-1].endswith((b"\n", b"\r")) else lines.pop()
        self._skip_lf = chunk.endswith(b"\r")
        events: list[SSEEvent] = []
        for line in lines:
            event = self._line(line.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        if partial:
            self._extend_partial(partial)
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: discard any pending event (per the spec) and reset. Returns ``[]``."""
        self._buffer.clear()
        self._skip_lf = False
        self._skipping_line = False
        self._at_start = True
        self._reset_event()
        return []

    def _extend_partial(self, piece: bytes) -> None:
        self._buffer += piece
        if len(self._buffer) > self._max:
            self._buffer.clear()
            self._skipping_line = True
            self._drop_event()

    def _skip_long_line(self, chunk: bytes) -> bytes:
        """Drop the rest of an overlong line, its line break included; return what follows."""
        ends = [i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0]
        if not ends:
            return b""
        end = min(ends)
        self._skipping_line = False
        if chunk[end : end + 2] == b"\r\n":
            return chunk[end + 2 :]
        self._skip_lf = end == len(chunk) - 1 and chunk[end:] == b"\r"
        return chunk[end + 1 :]

    def _drop_event(self) -> None:
        self._data.clear()
        self._data_size = 0
        self._dropping = True

    def _reset_event(self) -> None:
        self._event = ""
        self._data.clear()
        self._data_size = 0
        self._dropping = False

    def _line(self, line: bytes) -> SSEEvent | None:
        if self._at_start:
            self._at_start = False
            if line.startswith(_BOM):
                line = line[3:]
        if not line:
            return self._dispatch()
        if self._dropping or line[:1] == b":":
            return None
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        self._field(name, value)
        return None

    def _field(self, name: bytes, value: bytes) -> None:
        if name == b"data":
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                self._drop_event()
            else:
                self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._last_id = value.decode("utf-8", "replace")

    def _dispatch(self) -> SSEEvent | None:
        if self._dropping or not self._data:
            self._reset_event()
            return None
        data = "\n".join(self._data)
        event = SSEEvent(event=self._event or "message", data=data, id=self._last_id)
        self._reset_event()
        return event
