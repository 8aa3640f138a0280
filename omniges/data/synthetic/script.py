"""The script of a clip: phrases of words of syllables on the audio sample grid, the source of every stream.

Every word of the fixed vocabulary is a list of syllables with a consonant class, a vowel and a stress mark;
the audio, the TextGrid and the motion are all rendered from the same script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from omniges.constants import SAMPLE_RATE as SR
from omniges.data.synthetic.iconic import ICONIC_WORDS
from omniges.data.synthetic.speakers import SpeakerStyle

# word: syllables as <consonant class><vowel><stress>; consonant classes - s f t k n h, vowels a e i o u @.
_LEXICON = """
big:ti1 huge:hu1 small:sa1 little:ti1.t@0 i:-a1 me:ni1 my:na1 you:-u1 up:-@1 down:ta1 no:no1 never:ne1.f@0
yes:-e1 stop:so1 everyone:-e1.f@0.-i0.n@0 all:-o1 together:t@0.ke1.f@0
the:-@0 a:-@0 and:-a0 to:tu0 of:-@0 it:-i0 is:-i0 was:-o0 we:-i1 they:-e1 this:si1 that:ta1 here:hi1
there:-e1 think:ti1 know:no1 really:ni1.-i0 very:fe1.-i0 people:ti1.t@0 time:ta1 way:-e1 good:ku1 great:ke1
make:ne1 go:ko1 come:ka1 see:si1 want:-o1 because:ti0.ko1 something:sa1.fi0 thing:fi1 always:-o1.-e0
maybe:ne1.ti0 today:t@0.te1 tomorrow:t@0.no1.-o0 important:-i0.to1.t@0 beautiful:ti1.tu0.f@0
amazing:-@0.ne1.si0 story:so1.-i0 music:ni1.si0 family:fa1.n@0.-i0 friend:fe1 work:-o1 life:-a1 world:-o1
idea:-a0.ti1.-@0 question:ke1.s@0 answer:-a1.s@0 problem:to1.t@0 feel:fi1 love:-a1 happy:ha1.ti0 day:te1
start:sa1 change:se1 move:nu1 help:he1 try:ta1 talk:to1 hard:ha1 easy:-i1.si0 first:f@1 last:-a1 next:ne1
home:ho1 place:te1
"""
LEXICON: dict[str, tuple[tuple[str, str, int], ...]] = {
    word: tuple((s[0], s[1], int(s[2])) for s in spec.split("."))
    for word, spec in (item.split(":") for item in _LEXICON.split())
}
VOCABULARY: list[str] = list(LEXICON)
_FUNCTION_WORDS = ("the", "a", "and", "to", "of", "it", "is", "we", "this", "that")

VOWELS = "aeiou@"
CONSONANTS = "-sftknh"
VOWEL_OPENNESS = np.array([1.0, 0.6, 0.3, 0.7, 0.35, 0.5])  # jaw opening per vowel, order VOWELS
_CONSONANT_S = {"-": 0.0, "s": 0.085, "f": 0.07, "t": 0.05, "k": 0.055, "n": 0.06, "h": 0.06}


@dataclass
class Script:
    """Phrases of words of syllables on the sample grid: the single source of the audio, text and motion."""

    words: list[tuple[str, int, int, int]] = field(default_factory=list)  # word, start, end, stressed onset
    phrases: list[tuple[int, int]] = field(default_factory=list)
    syllables: list[tuple[int, int, int, int, int, int, float]] = field(default_factory=list)
    # (start, vowel onset, end, vowel index, consonant index, stressed, loudness)

    def column(self, index: int) -> np.ndarray:
        return np.array([s[index] for s in self.syllables])


def _samples(seconds: float) -> int:
    """Seconds -> samples on a 0.5 ms grid: TextGrid times are exact in seconds and in samples."""
    return 8 * int(round(seconds * SR / 8))


def _word_sampler(vocabulary: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Word probabilities (iconic words 20 % together, function words 3x the others) and the iconic mask."""
    iconic = np.array([w in ICONIC_WORDS for w in vocabulary])
    weight = np.where(np.isin(vocabulary, _FUNCTION_WORDS), 3.0, 1.0)
    if iconic.any() and not iconic.all():
        weight = np.where(iconic, 0.2 * weight / weight[iconic].sum(), 0.8 * weight / weight[~iconic].sum())
    return weight / weight.sum(), iconic


def phrase_words(vocabulary: Sequence[str], rng: np.random.Generator) -> list[str]:
    """The words of one phrase: 3-7, never two iconic ones in a row."""
    prob, iconic = _word_sampler(vocabulary)
    indices: list[int] = []
    for _ in range(int(rng.integers(3, 8))):
        choice = int(rng.choice(len(vocabulary), p=prob))
        while indices and iconic[indices[-1]] and iconic[choice] and not iconic.all():
            choice = int(rng.choice(len(vocabulary), p=prob))
        indices.append(choice)
    return [vocabulary[i] for i in indices]


def _phrase(style: SpeakerStyle, start: int, vocabulary: Sequence[str], rng: np.random.Generator
            ) -> list[tuple[str, list[tuple[int, int, int, int, int, int, float]]]]:
    """One phrase's words laid out as syllables from sample `start`."""
    chosen = phrase_words(vocabulary, rng)
    gain, tempo, cursor = rng.uniform(0.75, 1.0), style.syllable_s / 0.2, start
    words = []
    for position, word in enumerate(chosen):
        syllables = []
        for k, (consonant, vowel, stress) in enumerate(LEXICON[word]):
            final = position == len(chosen) - 1 and k == len(LEXICON[word]) - 1
            duration = style.syllable_s * (1.3 if stress else 0.8) * rng.uniform(0.85, 1.15)
            duration *= 1.35 if final else 1.0
            onset = cursor + _samples(_CONSONANT_S[consonant] * tempo)
            end = max(cursor + _samples(duration), onset + _samples(0.09))
            loud = gain * (1.0 if stress else 0.45) * rng.lognormal(0.0, 0.12)
            loud *= 1.15 if word in ICONIC_WORDS else 1.0  # iconic words are emphasised
            kinds = VOWELS.index(vowel), CONSONANTS.index(consonant)
            syllables.append((cursor, onset, end, *kinds, stress, loud))
            cursor = end
        words.append((word, syllables))
    return words


def plan_script(style: SpeakerStyle, n_samples: int, vocabulary: Sequence[str], rng: np.random.Generator
            ) -> Script:
    """Phrases separated by pauses, filling the clip up to a trailing silence of at least 0.4 s."""
    script = Script()
    cursor, limit = _samples(rng.uniform(0.4, 0.8)), n_samples - _samples(0.4)
    while True:
        planned = _phrase(style, cursor, vocabulary, rng)
        complete = len(planned)
        while planned and planned[-1][1][-1][2] > limit:
            planned.pop()
        if not planned:
            return script
        for word, syllables in planned:
            apex = next((syl[1] for syl in syllables if syl[5]), syllables[0][1])
            script.words.append((word, syllables[0][0], syllables[-1][2], apex))
            script.syllables.extend(syllables)
        script.phrases.append((planned[0][1][0][0], planned[-1][1][-1][2]))
        if len(planned) < complete:
            return script
        cursor = script.phrases[-1][1] + _samples(style.pause_s * rng.uniform(0.6, 1.6))



def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation, sigma in frames."""
    pad = int(4 * sigma) + 1
    white = rng.standard_normal((shape[0] + 2 * pad, shape[1]))
    return gaussian_filter1d(white, sigma, axis=0)[pad:-pad] * np.sqrt(2 * np.sqrt(np.pi) * sigma)
