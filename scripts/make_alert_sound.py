"""Writes static/sounds/alert.wav, the alert chime: two short tones, generated rather
than downloaded. Run from the checkout: `scripts/uv run python scripts/make_alert_sound.py`."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 16000  # Hz, 16-bit mono PCM: plays in every browser, about 11 KB
TONES = ((880, 0.12), (1320, 0.22))  # (frequency Hz, seconds)


def main() -> None:
    frames = bytearray()
    for freq, seconds in TONES:
        n = int(RATE * seconds)
        for i in range(n):
            envelope = min(1.0, i / (0.01 * RATE)) * math.exp(-4.0 * i / n)
            frames += struct.pack("<h", int(0.35 * 32767 * envelope * math.sin(2 * math.pi * freq * i / RATE)))
    target = Path(__file__).resolve().parent.parent / "static" / "sounds" / "alert.wav"
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(frames))


if __name__ == "__main__":
    main()
