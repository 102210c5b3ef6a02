"""Small positive / negative word lists per language, written for hublens, and a lexicon score.

The lists are short on purpose (common everyday evaluative words, with the inflected forms a
continuation is likely to use); they score a continuation as ``#positive - #negative`` word
matches. Chinese is matched as substrings (no spaces between words); the other languages as
whole lower-cased words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

POSITIVE: dict[str, tuple[str, ...]] = {
    "en": (
        "good",
        "great",
        "happy",
        "love",
        "loved",
        "wonderful",
        "excellent",
        "beautiful",
        "nice",
        "best",
        "enjoy",
        "enjoyed",
        "amazing",
        "fantastic",
        "glad",
        "perfect",
        "fun",
        "pleasant",
        "better",
        "like",
        "liked",
        "brilliant",
        "delightful",
        "awesome",
    ),
    "zh": (
        "好",
        "棒",
        "喜欢",
        "开心",
        "高兴",
        "快乐",
        "美丽",
        "漂亮",
        "精彩",
        "优秀",
        "满意",
        "幸福",
        "愉快",
        "美好",
        "享受",
        "爱",
        "出色",
        "不错",
        "舒服",
        "有趣",
        "感动",
        "完美",
    ),
    "es": (
        "bueno",
        "buena",
        "buenos",
        "buenas",
        "bien",
        "excelente",
        "excelentes",
        "feliz",
        "felices",
        "encanta",
        "encantó",
        "maravilloso",
        "maravillosa",
        "hermoso",
        "hermosa",
        "genial",
        "mejor",
        "alegre",
        "divertido",
        "divertida",
        "perfecto",
        "perfecta",
        "agradable",
        "increíble",
        "fantástico",
        "fantástica",
        "gusta",
        "gustó",
        "amor",
    ),
    "fr": (
        "bon",
        "bonne",
        "bons",
        "bonnes",
        "bien",
        "excellent",
        "excellente",
        "heureux",
        "heureuse",
        "adore",
        "adoré",
        "aime",
        "aimé",
        "merveilleux",
        "merveilleuse",
        "beau",
        "belle",
        "génial",
        "géniale",
        "meilleur",
        "meilleure",
        "agréable",
        "parfait",
        "parfaite",
        "formidable",
        "magnifique",
        "super",
        "joie",
        "plaisir",
        "content",
    ),
}

NEGATIVE: dict[str, tuple[str, ...]] = {
    "en": (
        "bad",
        "terrible",
        "awful",
        "sad",
        "hate",
        "hated",
        "horrible",
        "worst",
        "boring",
        "poor",
        "ugly",
        "angry",
        "disappointing",
        "disappointed",
        "worse",
        "annoying",
        "unpleasant",
        "fail",
        "failed",
        "pain",
        "painful",
        "dislike",
        "wrong",
        "sorry",
    ),
    "zh": (
        "坏",
        "差",
        "糟",
        "讨厌",
        "难过",
        "伤心",
        "失望",
        "痛苦",
        "无聊",
        "可怕",
        "生气",
        "恶心",
        "糟糕",
        "难看",
        "烦",
        "恨",
        "悲伤",
        "不好",
        "不满",
        "遗憾",
        "害怕",
        "愤怒",
    ),
    "es": (
        "malo",
        "mala",
        "malos",
        "malas",
        "mal",
        "terrible",
        "terribles",
        "horrible",
        "horribles",
        "triste",
        "tristes",
        "odio",
        "peor",
        "aburrido",
        "aburrida",
        "feo",
        "fea",
        "decepción",
        "decepcionante",
        "desagradable",
        "pésimo",
        "pésima",
        "dolor",
        "miedo",
        "enojado",
        "fracaso",
        "lamentable",
    ),
    "fr": (
        "mauvais",
        "mauvaise",
        "mauvaises",
        "mal",
        "terrible",
        "terribles",
        "horrible",
        "horribles",
        "triste",
        "tristes",
        "déteste",
        "détesté",
        "pire",
        "ennuyeux",
        "ennuyeuse",
        "laid",
        "laide",
        "déçu",
        "déçue",
        "décevant",
        "décevante",
        "désagréable",
        "nul",
        "nulle",
        "affreux",
        "affreuse",
        "peur",
        "douleur",
        "colère",
    ),
}

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class LexiconScore:
    """Word matches of one text.

    Attributes:
        positive: Number of positive-word matches.
        negative: Number of negative-word matches.
    """

    positive: int
    negative: int

    @property
    def score(self) -> int:
        """``positive - negative``."""
        return self.positive - self.negative


def lexicon_score(text: str, language: str) -> LexiconScore:
    """Count positive and negative words of ``language`` in ``text``.

    Chinese: substring counts, longest words first and negative before positive, each match
    blanked out (不好 counts as negative only, 美好 as one positive). Other languages: whole
    lower-cased words.

    Args:
        text: The text.
        language: ``"en"``, ``"zh"``, ``"es"`` or ``"fr"``.

    Returns:
        The counts.

    Raises:
        ValueError: No word list for ``language``.

    Example:
        >>> lexicon_score("这部电影很好，但结局不好。", "zh").score
        0
    """
    if language not in POSITIVE:
        raise ValueError(
            f"language={language!r}: word lists exist for {', '.join(sorted(POSITIVE))}."
        )
    if language == "zh":
        rest = text
        counts = {"neg": 0, "pos": 0}
        # Longest words first, negative before positive; each match is blanked out so that
        # 不好 counts once as negative and 美好 once as positive.
        for kind, lexicon in (("neg", NEGATIVE["zh"]), ("pos", POSITIVE["zh"])):
            for word in sorted(lexicon, key=len, reverse=True):
                counts[kind] += rest.count(word)
                rest = rest.replace(word, " ")
        return LexiconScore(counts["pos"], counts["neg"])
    tokens = [w.lower() for w in _WORD.findall(text)]
    positive, negative = set(POSITIVE[language]), set(NEGATIVE[language])
    return LexiconScore(sum(w in positive for w in tokens), sum(w in negative for w in tokens))
