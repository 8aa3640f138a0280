"""Timed transcripts: the words of a Praat TextGrid (BEAT2's word alignments), silences dropped."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

SILENCE_MARKS = frozenset({"", "sil", "sp", "<eps>"})  # aligner labels for non-speech intervals


class TextGridError(ValueError):
    """A TextGrid that cannot be used: empty, malformed, or without an interval tier."""


class Word(NamedTuple):
    """One aligned word: text and its [start, end) interval in seconds."""

    word: str
    start: float
    end: float


def read_textgrid(path: str | Path, tier: str | None = None) -> list[Word]:
    """Words of the `tier` (default: the one named 'words', else the first interval tier), silences dropped."""
    import textgrid

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: TextGrid not found")
    if not path.read_bytes().strip():
        raise TextGridError(f"{path}: empty TextGrid file")
    try:
        grid = textgrid.TextGrid.fromFile(str(path))
    except Exception as error:  # the parser raises many types for bad input
        raise TextGridError(f"{path}: malformed TextGrid ({type(error).__name__}: {error})") from error
    interval_tiers = [t for t in grid.tiers if isinstance(t, textgrid.IntervalTier)]
    if not interval_tiers:
        raise TextGridError(f"{path}: no interval tier (tiers: {[t.name for t in grid.tiers]})")
    by_name = {t.name: t for t in interval_tiers}
    if tier is not None and tier not in by_name:
        raise TextGridError(f"{path}: no interval tier named {tier!r} (interval tiers: {list(by_name)})")
    chosen = by_name[tier] if tier is not None else by_name.get("words", interval_tiers[0])
    words = [Word(str(iv.mark).strip(), float(iv.minTime), float(iv.maxTime)) for iv in chosen]
    words = [w for w in words if w.word.lower() not in SILENCE_MARKS and w.end > w.start]
    return sorted(words, key=lambda w: w.start)


def check_words_fit(words: list[Word], seconds: float, textgrid: str | Path, audio: str | Path,
                    tolerance_s: float = 1.0) -> None:
    """A TextGrid of another recording (words past the audio's end by more than `tolerance_s`) is an error."""
    end = max((w.end for w in words), default=0.0)
    if end > seconds + tolerance_s:
        raise TextGridError(f"{textgrid}: its words run to {end:.2f} s but {audio} lasts {seconds:.2f} s; "
                            "is it the TextGrid of another recording?")
