"""Speech from eSpeak NG: real phonetics and prosody, with every phoneme's time read off the synthesiser.

`espeakng-loader` ships eSpeak NG's library and its voice data on PyPI (eSpeak NG is GPL-3.0; it is loaded at
run time with ctypes and never bundled). Each phrase of the script is spoken by the speaker's eSpeak voice and
placed on the clip's sample grid; its syllables (consonant onset, vowel onset, end, vowel class, stress,
loudness measured on the audio) come from eSpeak's phoneme events, so the motion follows the voice one hears.
"""

from __future__ import annotations

import _ctypes
import ctypes
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

from omniges.data.synthetic.script import CONSONANTS, SR, Script, _samples, phrase_words
from omniges.data.synthetic.speakers import SpeakerStyle
from omniges.data.synthetic.speech import to_pcm16

_EVENT_WORD, _EVENT_PHONEME = 1, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS, _INITIALIZE_DONT_EXIT = 0x0001, 0x8000
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_VOWEL_START = "aAeEiIoOuUV@30"
_VOWEL_CLASS = {"a": 0, "A": 0, "V": 0, "e": 1, "E": 1, "i": 2, "I": 2, "o": 3, "O": 3, "u": 4, "U": 4, "@": 5, "0": 3,
                "3": 5}
_CONSONANT_CLASS = {**dict.fromkeys(("s", "z", "S", "Z", "tS", "dZ"), "s"), **dict.fromkeys("fvTD", "f"),
                    **dict.fromkeys("tdpb", "t"), **dict.fromkeys("kgx", "k"), **dict.fromkeys("nmNlrjw", "n"),
                    "h": "h"}
_MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
_FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")
_ACCENTS = ("en-us", "en", "en-us", "en-gb-x-rp", "en-029", "en-gb-scotland")


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Phoneme:
    sample: int  # onset on the 16 kHz grid, from the start of the utterance
    name: str  # eSpeak mnemonic, stress mark (' primary, , secondary) included; "_" a pause inside the phrase
    word: int  # index of the word it belongs to


class _Engine:
    """The process's one eSpeak NG instance (the library keeps global state): synchronous synthesis."""

    _lock = threading.Lock()
    _instance: _Engine | None = None

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise RuntimeError("data.synthetic.speech = espeak needs the espeakng-loader package "
                               "(pip install espeakng-loader==0.2.4)") from error
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.libc = ctypes.CDLL(None)  # the process's C library: the rand() eSpeak calls
        data = espeakng_loader.get_data_path().encode()
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data,
                                               _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise from {data.decode()}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, str]] = []
        self._callback = _CALLBACK(self._collect)  # kept alive as long as the engine
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _Engine:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @classmethod
    def fresh(cls) -> _Engine:
        """A newly loaded library: eSpeak keeps state from one utterance to the next (its glottal flutter phase
        moves phoneme boundaries by a few samples), so a clip is only repeatable when it starts from a fresh one."""
        with cls._lock:
            if cls._instance is not None:
                cls._instance.lib.espeak_Terminate()
                _ctypes.dlclose(cls._instance.lib._handle)
                cls._instance = None
        return cls.get()

    def _collect(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:
            event = events[i]
            name = event.id.split(b"\0")[0].decode("ascii", "replace") if event.type == _EVENT_PHONEME else ""
            self._events.append((event.type, event.text_position, event.sample, name))
            i += 1
        return 0

    def speak(self, text: str, voice: str, *, rate: int, pitch: int, pitch_range: int, volume: int
              ) -> tuple[np.ndarray, list[tuple[int, int, int, str]]]:
        """Int16 samples at `self.rate` and (type, text position, sample, phoneme name) events of `text`."""
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r}")
            for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range), (_VOLUME, volume)):
                self.lib.espeak_SetParameter(parameter, int(value), 0)
            self._chunks, self._events = [], []
            # eSpeak draws noise (breath) from its own generator, seeded from the clock, and calls the C library's
            # rand(): both reseeded per utterance (the state it keeps between utterances is reset per clip: fresh)
            self.lib.espeak_ng_SetRandSeed(ctypes.c_long(1))
            self.libc.srand(1)
            data = text.encode()
            self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            wave = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return wave, list(self._events)


def voice_of(style: SpeakerStyle) -> dict[str, int | str]:
    """The speaker's eSpeak voice: accent and variant from the speaker id, pitch from f0, rate from tempo."""
    rng = np.random.default_rng([style.speaker_id, 41])
    female = style.f0_hz > 160
    variant = rng.choice(_FEMALE_VARIANTS if female else _MALE_VARIANTS)
    low, high = (190.0, 235.0) if female else (90.0, 125.0)
    return {"voice": f"{rng.choice(_ACCENTS)}+{variant}",
            "pitch": int(np.clip(35 + 30 * (style.f0_hz - low) / (high - low), 20, 75)),
            "pitch_range": int(rng.uniform(35, 85)),
            "rate": int(np.clip(175 * 0.2 / style.syllable_s, 120, 230))}


def utterance(text: str, voice: dict[str, int | str], volume: int = 100) -> tuple[np.ndarray, list[Phoneme]]:
    """`text` spoken: float wave at 16 kHz ending with the last phoneme, and its phonemes (pauses dropped)."""
    engine = _Engine.get()
    wave, events = engine.speak(text, str(voice["voice"]), rate=int(voice["rate"]), pitch=int(voice["pitch"]),
                                pitch_range=int(voice["pitch_range"]), volume=volume)
    scale = SR / engine.rate
    starts = sorted({position for kind, position, _, _ in events if kind == _EVENT_WORD})
    spoken = [(position, sample, name) for kind, position, sample, name in events if kind == _EVENT_PHONEME and name]
    last = max((k for k, (_, _, name) in enumerate(spoken) if not name.startswith("_")), default=None)
    if last is None:
        raise ValueError(f"eSpeak NG produced no phonemes for {text!r}")
    # the utterance ends at the pause after its last phoneme (eSpeak may pause between words too: kept inside)
    end = next((sample for _, sample, name in spoken[last + 1:] if name.startswith("_")), len(wave))
    phonemes = [Phoneme(int(round(sample * scale)), "_" if name.startswith("_") else name,
                        max(0, int(np.searchsorted(starts, position, "right")) - 1))
                for position, sample, name in spoken[:last + 1]]
    while phonemes[0].name == "_":
        phonemes.pop(0)
    audio = resample_poly(wave[: end + int(0.03 * engine.rate)].astype(np.float64) / 32768.0, SR, engine.rate)
    return audio, phonemes


def _is_vowel(name: str) -> bool:
    return name.lstrip("',")[:1] in _VOWEL_START


def syllables(phonemes: Sequence[Phoneme], n_words: int, end: int, audio: np.ndarray
              ) -> list[list[tuple[int, int, int, int, int, int, float]]]:
    """Per word, its syllables (start, vowel onset, end, vowel, consonant class, stressed, loudness): one per
    vowel phoneme, the consonants before a vowel its onset, a word's final consonants its last syllable's coda.
    Loudness is the RMS of the vowel's audio (raw; normalised per clip by the caller)."""
    by_word: list[list[Phoneme]] = [[] for _ in range(n_words)]
    for phoneme in phonemes:
        if phoneme.name != "_":
            by_word[min(phoneme.word, n_words - 1)].append(phoneme)
    samples = [p.sample for p in phonemes]
    words = []
    for group in by_word:
        if not group:
            words.append([])
            continue
        # a word ends where the next phoneme after its last one starts: the next word, or a pause eSpeak made
        word_end = next((s for s in samples if s > group[-1].sample), end)
        out, onset_start, consonant = [], group[0].sample, "-"
        for i, phoneme in enumerate(group):
            if not _is_vowel(phoneme.name):
                if consonant == "-":
                    bare = phoneme.name.lstrip("',")
                    consonant = _CONSONANT_CLASS.get(bare, _CONSONANT_CLASS.get(bare[:1], "-"))
                continue
            name = phoneme.name.lstrip("',")
            vowel_end = group[i + 1].sample if i + 1 < len(group) else word_end
            span = audio[phoneme.sample:max(vowel_end, phoneme.sample + 1)]
            loud = float(np.sqrt(np.mean(span**2))) if len(span) else 0.0
            out.append([onset_start, phoneme.sample, word_end, _VOWEL_CLASS.get(name[0], 5),
                        CONSONANTS.index(consonant), int(phoneme.name.startswith("'")), loud])
            onset_start, consonant = None, "-"
        if not out:  # a word of consonants only: one syllable on its first phoneme
            out.append([group[0].sample, group[0].sample, word_end, 5, 0, 0, 0.0])
        for a, b in zip(out, out[1:], strict=False):  # a syllable ends where the next one's onset starts
            b[0] = next((p.sample for p in group if a[1] < p.sample <= b[1]), b[1])
            a[2] = b[0]
        words.append([tuple(s) for s in out])
    return words


def plan_script_espeak(style: SpeakerStyle, n_samples: int, vocabulary: Sequence[str], rng: np.random.Generator
                       ) -> tuple[Script, np.ndarray]:
    """Phrases of 3-7 words spoken by the speaker's voice, separated by pauses, filling the clip up to a trailing
    silence of at least 0.4 s; the script (syllable loudness normalised so stressed vowels ~ 0.9) and the audio."""
    voice = voice_of(style)
    _Engine.fresh()  # the clip sounds the same whichever clips were spoken before it
    script, audio = Script(), np.zeros(n_samples)
    cursor, limit = _samples(rng.uniform(0.4, 0.8)), n_samples - _samples(0.4)
    while True:
        words = phrase_words(vocabulary, rng)
        gain = rng.uniform(0.75, 1.0)
        wave, phonemes = utterance(" ".join(words), voice, volume=int(round(100 * gain)))
        if cursor + len(wave) > limit:
            return _normalise_loudness(script), to_pcm16(audio, rng)
        per_word = syllables(phonemes, len(words), len(wave), wave)
        audio[cursor:cursor + len(wave)] += wave
        first = None
        for word, syls in zip(words, per_word, strict=True):
            if not syls:
                continue
            shifted = [(s[0] + cursor, s[1] + cursor, s[2] + cursor, *s[3:]) for s in syls]
            apex = next((s[1] for s in shifted if s[5]), shifted[0][1])
            script.words.append((word, shifted[0][0], shifted[-1][2], apex))
            script.syllables.extend(shifted)
            first = shifted[0][0] if first is None else first
        script.phrases.append((first if first is not None else cursor, cursor + len(wave)))
        cursor += len(wave) + _samples(style.pause_s * rng.uniform(0.6, 1.6))


def _normalise_loudness(script: Script) -> Script:
    """Syllable loudness relative to the clip's median stressed vowel (-> 0.9), capped at 1.5."""
    if not script.syllables:
        return script
    loud = np.array([s[6] for s in script.syllables])
    stressed = np.array([s[5] for s in script.syllables]) == 1
    reference = np.median(loud[stressed]) if stressed.any() else np.median(loud)
    scaled = np.clip(0.9 * loud / max(reference, 1e-9), 0.0, 1.5)
    script.syllables = [(*s[:6], float(v)) for s, v in zip(script.syllables, scaled, strict=True)]
    return script
