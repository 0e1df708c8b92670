"""The recording: one timeline of WS frames and REST exchanges per session (format, writer, reader).

``format`` defines every key, ``writer`` writes (and redacts), ``reader`` streams back and reports
damage; ``docs/recording-format.md`` is the prose specification.
"""
