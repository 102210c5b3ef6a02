"""Semantic-hub analyses built on :mod:`hublens.hooks` captures."""

from hublens.analyses.translation import TranslationReadout, translation_readout

__all__ = ["TranslationReadout", "translation_readout"]
