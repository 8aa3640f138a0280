"""Embedded mini-corpus in the exact BEAT2 layout: speech-like audio, word TextGrids, SMPL-X motion.

Every clip is a script of phrases of words (`script`); the script drives both streams, so a model can learn
their coupling:

- `speech`: band-limited glottal pulses at a speaker-specific f0 (phrase declination, pitch accents on stress)
  shaped by per-vowel formant resonators, consonant noise bursts, silent pauses between phrases;
- `motion`: the gesture programme (beat strokes on stressed vowels, `iconic` gestures for a set of words, head
  nods, jaw and mouth following the voice, blinks, weight shifts and drift), built in the normalised,
  BEAT2-calibrated `pose_space` per speaker (`speakers`);
- `corpus`: clips and the atomic writer of the BEAT2 files.
"""

from omniges.constants import FPS
from omniges.data.synthetic.corpus import SyntheticClip, synthesize_clip, synthesize_corpus, write_clip
from omniges.data.synthetic.iconic import HAND_SHAPES, ICONIC_GESTURES, ICONIC_WORDS, IconicGesture
from omniges.data.synthetic.motion import BLINK_EXPRESSION, MOUTH_EXPRESSIONS
from omniges.data.synthetic.pose_space import BEAT2_MEAN_VEL
from omniges.data.synthetic.script import LEXICON, SR, VOCABULARY
from omniges.data.synthetic.speakers import SpeakerStyle, speaker_styles

__all__ = [
    "BEAT2_MEAN_VEL", "BLINK_EXPRESSION", "FPS", "HAND_SHAPES", "ICONIC_GESTURES", "ICONIC_WORDS", "LEXICON",
    "MOUTH_EXPRESSIONS", "SR", "VOCABULARY", "IconicGesture", "SpeakerStyle", "SyntheticClip", "speaker_styles",
    "synthesize_clip", "synthesize_corpus", "write_clip",
]
