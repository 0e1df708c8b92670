"""A recording behind the loopback server: ``serve --recording`` (session index, book rebuild, playback)."""

from harness.loopback.recorded.session import RecordedSession, load_session
from harness.loopback.recorded.source import ANSWER_HEADER, END_CODE, END_REASON, RecordingSource

__all__ = ["ANSWER_HEADER", "END_CODE", "END_REASON", "RecordedSession", "RecordingSource", "load_session"]
