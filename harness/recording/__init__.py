"""The recording: one timeline of WS frames and REST exchanges per session (format, writer, reader).

``format`` defines every key, ``redaction`` what never reaches disk, ``writer`` writes independent zstd
frames, ``reader`` streams them back and reports damage; ``docs/recording-format.md`` is the prose
specification.
"""

from .format import FORMAT_NAME, FORMAT_VERSION, REDACTED, Event, FormatError, Header
from .reader import (
    Recording,
    RecordingDamaged,
    RecordingEmpty,
    RecordingError,
    RecordingHeaderError,
    RecordingOpenError,
    RecordingReader,
    RecordingVersionError,
    Summary,
    open_recording,
    read_events,
    read_header,
    read_recording,
    summarize,
)
from .redaction import Redactor, config_secrets
from .writer import RecordingWriter, write_recording

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "REDACTED", "Event", "FormatError", "Header", "Recording",
    "RecordingDamaged", "RecordingEmpty", "RecordingError", "RecordingHeaderError", "RecordingOpenError", "RecordingReader",
    "RecordingVersionError", "RecordingWriter", "Redactor", "Summary", "config_secrets", "open_recording",
    "read_events", "read_header", "read_recording", "summarize", "write_recording",
]
