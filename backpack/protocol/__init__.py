"""Sans-I/O Backpack protocol core.

Frames and clock values go in; typed events and actions come out. Nothing in this package awaits,
opens a socket, reads the wall clock or imports cryptofeed, so replay, property tests and parity can
drive it directly and deterministically.
"""
