"""The rates every part of Omniges shares (BEAT2's): motion frames and speech samples per second."""

FPS = 30  # motion frames per second (BEAT2 smplxflame_30)
SAMPLE_RATE = 16000  # speech samples per second (BEAT2 wave16k)
