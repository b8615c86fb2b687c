"""Conversation-type detector for the dispatcher pane: a small multinomial naive Bayes, stdlib only.

* Training data: the ``train`` split of ``aurora_tui/catalogue/messages.jsonl`` (the ``test`` split is
  never read here; it is only for the tests and benchmarks).
* Features: lower-cased, punctuation stripped (``_`` and ``-`` kept), whitespace collapsed, digit runs
  folded to ``0``; word unigrams, word bigrams (with a start-of-message marker) and character 3–5-grams
  taken inside word boundaries.  Each feature group is length-normalised (L2, scaled by a group
  weight) so long messages do not get ever more extreme scores.
* Confidence: the NB log-posteriors go through a temperature-scaled softmax.  The temperature is
  fitted, by minimising log loss, on a held-out slice of TRAIN (every 3rd training message of each
  type, each scored leave-one-out by a model trained on all other training messages).  A 1% uniform
  mixture keeps every probability strictly inside (0, 1).  Hyper-parameters were chosen by 5-fold
  cross-validation on the train split (see ``messages.README.md``).
* Empty, whitespace-only or unrecognisable input is ``general_chat`` with a low confidence; input longer
  than :data:`MAX_CHARS` is truncated first.  ``detect`` never raises for a string.
"""
from __future__ import annotations

import json
import math
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from typing import Iterable, Sequence

__all__ = [
    "CONVERSATION_TYPES",
    "MAX_CHARS",
    "ConversationDetector",
    "Detection",
    "DetectorConfig",
    "featurize",
    "load_messages",
    "normalize",
]

CONVERSATION_TYPES: tuple[str, ...] = (
    "code_generation", "debugging", "explanation", "architecture", "optimization",
    "testing", "general_chat", "question_answering", "analysis", "refactoring",
)
MAX_CHARS = 4000
_FALLBACK = "general_chat"


@dataclass(frozen=True)
class Detection:
    """The detected type, its calibrated probability and the probability of every type."""

    type: str
    confidence: float
    scores: dict[str, float] = field(default_factory=dict, hash=False)

    @property
    def score(self) -> int:
        """The confidence as the 1–10 figure shown to the operator."""
        return int(round(1 + 9 * self.confidence))


@dataclass(frozen=True)
class DetectorConfig:
    """Hyper-parameters.  The defaults were picked by 5-fold cross-validation on the train split."""

    alpha: float = 0.03          # additive (Lidstone) smoothing
    w_word: float = 1.0          # L2 mass of the word-unigram group
    w_bigram: float = 1.0        # L2 mass of the word-bigram group (with a start marker)
    w_first: float = 0.5         # L2 mass of the "first word" feature (imperatives carry the intent)
    w_char: float = 0.5          # L2 mass of the character n-gram group
    char_min: int = 3
    char_max: int = 5
    uniform_prior: bool = True   # ignore class frequencies (the data set over-represents commands)
    epsilon: float = 0.01        # uniform mixture so no probability is exactly 0 or 1
    calib_every: int = 3         # every n-th training message per type forms the calibration slice


# --------------------------------------------------------------------------------------------------
# text -> features

_APOSTROPHES = re.compile(r"['\u2019\u2018`\u00b4]")
_NOT_WORD = re.compile(r"[^\w\s-]+")
_DIGITS = re.compile(r"\d+")


def normalize(text: str) -> str:
    """Lower case, apostrophes dropped, other punctuation (except ``_``/``-``) to spaces, digits to 0."""
    if not isinstance(text, str):
        return ""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower()
    text = _APOSTROPHES.sub("", text)
    text = _NOT_WORD.sub(" ", text)
    text = _DIGITS.sub("0", text)
    return " ".join(text.split())


def _tokens(norm: str) -> list[str]:
    return [t for t in norm.split() if t.strip("-_")]


def raw_groups(text: str, config: DetectorConfig = DetectorConfig()) -> list[tuple[float, dict[str, float]]]:
    """(group weight, raw counts) for each feature group of ``text``."""
    toks = _tokens(normalize(text))
    if not toks:
        return []
    words = toks
    groups: list[tuple[float, dict[str, float]]] = []
    uni: dict[str, float] = {}
    for t in words:
        uni["w:" + t] = uni.get("w:" + t, 0.0) + 1.0
    groups.append((config.w_word, uni))
    if config.w_bigram > 0:
        bi: dict[str, float] = {}
        prev = "<s>"
        for t in words:
            key = "b:" + prev + " " + t
            bi[key] = bi.get(key, 0.0) + 1.0
            prev = t
        groups.append((config.w_bigram, bi))
    if config.w_first > 0:
        groups.append((config.w_first, {"f:" + words[0]: 1.0}))
    if config.w_char > 0:
        ch: dict[str, float] = {}
        for t in toks:
            padded = " " + t + " "
            for n in range(config.char_min, config.char_max + 1):
                for i in range(len(padded) - n + 1):
                    key = "c:" + padded[i:i + n]
                    ch[key] = ch.get(key, 0.0) + 1.0
        groups.append((config.w_char, ch))
    return groups


def featurize(text: str, config: DetectorConfig = DetectorConfig()) -> dict[str, float]:
    """Weighted, length-normalised feature vector of ``text`` (sparse dict)."""
    return _vectorize(raw_groups(text, config))


def _vectorize(groups: list[tuple[float, dict[str, float]]]) -> dict[str, float]:
    """Each group L2-normalised to its weight, so message length does not inflate the scores."""
    out: dict[str, float] = {}
    for weight, counts in groups:
        if not counts or weight <= 0:
            continue
        scale = weight / math.sqrt(sum(v * v for v in counts.values()))
        for k, v in counts.items():
            out[k] = v * scale
    return out


# --------------------------------------------------------------------------------------------------
# data


def load_messages(split: str | None = None) -> list[dict]:
    """The labelled operator messages (optionally one split: ``"train"`` or ``"test"``)."""
    path = resources.files("aurora_tui.catalogue").joinpath("messages.jsonl")
    rows = []
    with path.open("r", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                row = json.loads(line)
                if split is None or row.get("split") == split:
                    rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# the model


class ConversationDetector:
    """Multinomial naive Bayes over word and character n-grams with temperature-scaled confidences."""

    _default: "ConversationDetector | None" = None
    _default_lock = threading.Lock()

    def __init__(self, examples: Iterable[tuple[str, str]] | None = None,
                 config: DetectorConfig = DetectorConfig(), *, calibrate: bool = True) -> None:
        started = time.perf_counter()
        self.config = config
        self.types = CONVERSATION_TYPES
        if examples is None:
            examples = [(r["text"], r["type"]) for r in load_messages("train")]
        data = [(featurize(text, config), self.types.index(label)) for text, label in examples
                if label in self.types]
        self._counts: dict[str, list[float]] = {}
        self._totals = [0.0] * len(self.types)
        self._docs = [0] * len(self.types)
        for feats, y in data:
            self._add(feats, y, 1.0)
        self._vocab = len(self._counts)
        n_docs = sum(self._docs)
        k = len(self.types)
        if config.uniform_prior or n_docs == 0:
            self._log_prior = [0.0] * k
        else:
            self._log_prior = [math.log((d + 1) / (n_docs + k)) for d in self._docs]
        self._log_cache: dict[str, tuple[float, ...]] = {}
        self.temperature = 1.0
        if calibrate and data:
            self.temperature = self._fit_temperature(data)
        self.train_ms = (time.perf_counter() - started) * 1000.0
        self.n_train = len(data)

    # -- training -----------------------------------------------------------------------------------

    def _add(self, feats: dict[str, float], y: int, sign: float) -> None:
        k = len(self.types)
        for f, v in feats.items():
            row = self._counts.get(f)
            if row is None:
                row = self._counts[f] = [0.0] * k
            row[y] += sign * v
            self._totals[y] += sign * v
        self._docs[y] += int(sign)

    def _logs(self, f: str) -> tuple[float, ...] | None:
        logs = self._log_cache.get(f)
        if logs is None:
            row = self._counts.get(f)
            if row is None:
                return None
            alpha = self.config.alpha
            logs = self._log_cache[f] = tuple(math.log(n + alpha) for n in row)
        return logs

    def _raw_scores(self, feats: dict[str, float], exclude: tuple[dict[str, float], int] | None = None
                    ) -> tuple[list[float], float]:
        """Unnormalised NB log-posteriors and the share of the feature mass seen in training.

        ``exclude=(feats, y)`` scores leave-one-out, as if that document were not in the counts: only
        class ``y``'s statistics change, so the cached log table is reused and ``y`` is corrected.
        """
        alpha = self.config.alpha
        k = len(self.types)
        scores = list(self._log_prior)
        mass = known = 0.0
        own, y = exclude if exclude is not None else ({}, -1)
        fix = 0.0  # leave-one-out correction of class y
        for f, v in feats.items():
            mass += v
            logs = self._logs(f)
            if logs is None:
                continue
            if exclude is not None:
                own_v = own.get(f, 0.0)
                row = self._counts[f]
                if sum(row) - own_v <= 1e-9:
                    continue  # only this document had the feature: unseen once it is left out
                fix += v * (math.log(max(row[y] - own_v, 0.0) + alpha) - logs[y])
            known += v
            scores = [s + v * lg for s, lg in zip(scores, logs)]
        vocab_alpha = alpha * max(self._vocab, 1)
        totals = list(self._totals)
        if exclude is not None:
            scores[y] += fix
            totals[y] = max(totals[y] - sum(own.values()), 0.0)
        for c in range(k):
            scores[c] -= known * math.log(totals[c] + vocab_alpha)
        return scores, (known / mass if mass else 0.0)

    def _probabilities(self, scores: Sequence[float], temperature: float) -> list[float]:
        top = max(scores)
        exps = [math.exp((s - top) / temperature) for s in scores]
        z = sum(exps)
        eps = self.config.epsilon
        k = len(scores)
        return [(1.0 - eps) * e / z + eps / k for e in exps]

    def _fit_temperature(self, data: list[tuple[dict[str, float], int]]) -> float:
        """Temperature minimising log loss on a held-out slice of the training data (leave-one-out)."""
        every = max(2, self.config.calib_every)
        seen = [0] * len(self.types)
        held: list[tuple[list[float], int]] = []
        for feats, y in data:
            seen[y] += 1
            if seen[y] % every == 0 and self._docs[y] > 1:
                scores, _ = self._raw_scores(feats, exclude=(feats, y))
                held.append((scores, y))
        if not held:
            return 1.0

        def nll(log_t: float) -> float:
            t = math.exp(log_t)
            return -sum(math.log(self._probabilities(s, t)[y]) for s, y in held) / len(held)

        lo, hi = math.log(0.01), math.log(100.0)  # golden-section search on log T
        g = (math.sqrt(5) - 1) / 2
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        fa, fb = nll(a), nll(b)
        for _ in range(40):
            if fa < fb:
                hi, b, fb = b, a, fa
                a = hi - g * (hi - lo)
                fa = nll(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + g * (hi - lo)
                fb = nll(b)
        return math.exp((lo + hi) / 2)

    # -- inference ----------------------------------------------------------------------------------

    @classmethod
    def default(cls) -> "ConversationDetector":
        """The detector trained on the packaged train split, built once per process."""
        if cls._default is None:
            with cls._default_lock:
                if cls._default is None:
                    cls._default = cls()
        return cls._default

    def _low_confidence(self) -> Detection:
        k = len(self.types)
        scores = {t: (0.8 / (k - 1)) for t in self.types}
        scores[_FALLBACK] = 0.2
        return Detection(_FALLBACK, 0.2, scores)

    def detect(self, text: str) -> Detection:
        """Classify one message.  Never raises for a string; non-strings count as empty."""
        if not isinstance(text, str):
            return self._low_confidence()
        feats = featurize(text[:MAX_CHARS], self.config)
        if not feats:
            return self._low_confidence()
        scores, coverage = self._raw_scores(feats)
        if coverage < 0.35 and not any(f.startswith("w:") and f in self._counts for f in feats):
            return self._low_confidence()  # nothing we recognise: keyboard mash, another language ...
        probs = self._probabilities(scores, self.temperature)
        best = max(range(len(probs)), key=probs.__getitem__)
        return Detection(self.types[best], probs[best], dict(zip(self.types, probs)))

    def predict_proba(self, text: str) -> dict[str, float]:
        return self.detect(text).scores
