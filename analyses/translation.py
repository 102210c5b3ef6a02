"""Compatibility re-export: the one-prompt readout lives in :mod:`hublens.prompt_lens`."""

from hublens.prompt_lens import TranslationReadout, translation_readout

__all__ = ["TranslationReadout", "translation_readout"]
