"""A small pure-Python stand-in for ``torchtext.vocab``, so that ``import scgpt`` works.

Why it exists
-------------
scGPT 0.2.4 imports torchtext at module import time: ``scgpt/__init__.py`` imports
``scgpt.tokenizer``, whose ``gene_tokenizer.py`` does ``import torchtext.vocab`` and
``from torchtext.vocab import Vocab`` (``GeneVocab`` subclasses it). torchtext is no longer
developed: its last release (0.18, April 2024) ships compiled C++ ops (``torchtext._torchtext``)
built against torch 2.3, which cannot load with torch >= 2.4 (undefined symbols), and
``pip install torchtext`` would also pull its own torch. This project needs a recent torch, so
real torchtext is unusable here.

scGPT only uses the *vocabulary* part of torchtext, and only from Python: a token ↔ index
mapping with a default index. This module re-implements exactly that API, following torchtext
0.18's ``torchtext/vocab/vocab.py`` and ``vocab_factory.py`` (BSD-3-Clause):

* :class:`Vocab` (an ``nn.Module`` wrapping a core object kept in ``.vocab``, as in torchtext,
  because ``GeneVocab.__init__`` calls ``super().__init__(other_vocab.vocab)``), with
  ``__len__``, ``__contains__``, ``__getitem__``, ``__call__``/``forward``,
  ``set_default_index``, ``get_default_index``, ``insert_token``, ``append_token``,
  ``lookup_token(s)``, ``lookup_indices``, ``get_stoi``, ``get_itos``;
* the :func:`vocab` factory and :func:`build_vocab_from_iterator`.

Errors mirror torchtext's C++ core (``RuntimeError`` for an unknown token without a default
index, a duplicate token, or an index out of range).

:func:`install` registers it in ``sys.modules`` as ``torchtext`` and ``torchtext.vocab``
**only if the real torchtext cannot be imported** (absent, or present but its C++ ops fail to
load). It must run before ``import scgpt``; :func:`scconcepts.models.scgpt.import_scgpt` does
that. Nothing else of torchtext (datasets, transforms, vectors) is provided.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections import Counter, OrderedDict
from typing import Dict, Iterable, List, Optional

from torch import nn

__all__ = ["Vocab", "vocab", "build_vocab_from_iterator", "install", "is_installed"]

_STUB_FLAG = "__scconcepts_torchtext_stub__"


class _VocabCore:
    """Pure-Python equivalent of torchtext's C++ ``Vocab`` (``torchtext._torchtext.Vocab``)."""

    def __init__(self, tokens: Iterable[str], default_index: Optional[int] = None) -> None:
        self.itos_: List[str] = []
        self._stoi: Dict[str, int] = {}
        for token in tokens:
            if token in self._stoi:
                raise RuntimeError(f"Duplicate token found in tokens list: {token}")
            self._stoi[token] = len(self.itos_)
            self.itos_.append(token)
        self.default_index_ = default_index

    def __len__(self) -> int:
        return len(self.itos_)

    def __contains__(self, token: str) -> bool:
        return token in self._stoi

    def __getitem__(self, token: str) -> int:
        index = self._stoi.get(token)
        if index is not None:
            return index
        if self.default_index_ is not None:
            return self.default_index_
        raise RuntimeError(f"Token {token} not found and default index is not set")

    def set_default_index(self, index: Optional[int]) -> None:
        self.default_index_ = index

    def get_default_index(self) -> Optional[int]:
        return self.default_index_

    def insert_token(self, token: str, index: int) -> None:
        if not 0 <= index <= len(self.itos_):
            raise RuntimeError(
                f"Specified index {index} is out of bounds for vocab of size {len(self.itos_)}")
        if token in self._stoi:
            raise RuntimeError(
                f"Token {token} already exists in the Vocab with index: {self._stoi[token]}")
        if index == len(self.itos_):  # the common case (from_dict inserts in id order): O(1)
            self.itos_.append(token)
            self._stoi[token] = index
            return
        self.itos_.insert(index, token)
        for i in range(index, len(self.itos_)):
            self._stoi[self.itos_[i]] = i

    def append_token(self, token: str) -> None:
        if token in self._stoi:
            raise RuntimeError(
                f"Token {token} already exists in the Vocab with index: {self._stoi[token]}")
        self._stoi[token] = len(self.itos_)
        self.itos_.append(token)

    def lookup_token(self, index: int) -> str:
        if not 0 <= index < len(self.itos_):
            raise RuntimeError(
                f"Specified index {index} is out of bounds for vocab of size {len(self.itos_)}")
        return self.itos_[index]

    def lookup_tokens(self, indices: List[int]) -> List[str]:
        return [self.lookup_token(i) for i in indices]

    def lookup_indices(self, tokens: List[str]) -> List[int]:
        return [self[t] for t in tokens]

    def get_stoi(self) -> Dict[str, int]:
        return dict(self._stoi)

    def get_itos(self) -> List[str]:
        return list(self.itos_)


class Vocab(nn.Module):
    """Maps tokens to indices (API of ``torchtext.vocab.Vocab`` 0.18).

    Parameters
    ----------
    vocab
        The core object (here a :class:`_VocabCore`), kept as ``self.vocab`` as torchtext does.
    """

    def __init__(self, vocab) -> None:
        super().__init__()
        self.vocab = vocab

    @property
    def is_jitable(self) -> bool:
        return False

    def forward(self, tokens: List[str]) -> List[int]:
        """Indices of ``tokens`` (same as :meth:`lookup_indices`)."""
        return self.vocab.lookup_indices(tokens)

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, token: str) -> bool:
        return token in self.vocab

    def __getitem__(self, token: str) -> int:
        return self.vocab[token]

    def set_default_index(self, index: Optional[int]) -> None:
        self.vocab.set_default_index(index)

    def get_default_index(self) -> Optional[int]:
        return self.vocab.get_default_index()

    def insert_token(self, token: str, index: int) -> None:
        self.vocab.insert_token(token, index)

    def append_token(self, token: str) -> None:
        self.vocab.append_token(token)

    def lookup_token(self, index: int) -> str:
        return self.vocab.lookup_token(index)

    def lookup_tokens(self, indices: List[int]) -> List[str]:
        return self.vocab.lookup_tokens(indices)

    def lookup_indices(self, tokens: List[str]) -> List[int]:
        return self.vocab.lookup_indices(tokens)

    def get_stoi(self) -> Dict[str, int]:
        return self.vocab.get_stoi()

    def get_itos(self) -> List[str]:
        return self.vocab.get_itos()


def vocab(ordered_dict: Dict, min_freq: int = 1, specials: Optional[List[str]] = None,
          special_first: bool = True) -> Vocab:
    """Build a :class:`Vocab` from an ordered token → frequency dict (torchtext's factory).

    Tokens keep the dict's order; those with frequency < ``min_freq`` are dropped; ``specials``
    go first (``special_first``) or last, in the order given.
    """
    specials = specials or []
    for token in specials:
        ordered_dict.pop(token, None)
    tokens = [token for token, freq in ordered_dict.items() if freq >= min_freq]
    if special_first:
        tokens[0:0] = specials
    else:
        tokens.extend(specials)
    return Vocab(_VocabCore(tokens, None))


def build_vocab_from_iterator(iterator: Iterable, min_freq: int = 1,
                              specials: Optional[List[str]] = None, special_first: bool = True,
                              max_tokens: Optional[int] = None) -> Vocab:
    """Build a :class:`Vocab` from an iterator of token lists, most frequent first (ties
    lexicographic), as torchtext does."""
    counter: Counter = Counter()
    for tokens in iterator:
        counter.update(tokens)
    specials = specials or []
    sorted_by_freq = sorted(counter.items(), key=lambda x: (-x[1], x[0]))
    if max_tokens is not None:
        if len(specials) >= max_tokens:
            raise ValueError("len(specials) >= max_tokens, so the vocab would be all specials.")
        sorted_by_freq = sorted_by_freq[: max_tokens - len(specials)]
    return vocab(OrderedDict(sorted_by_freq), min_freq=min_freq, specials=specials,
                 special_first=special_first)


def is_installed() -> bool:
    """True when ``sys.modules['torchtext.vocab']`` is this stand-in."""
    mod = sys.modules.get("torchtext.vocab")
    return bool(mod is not None and getattr(mod, _STUB_FLAG, False))


def _real_torchtext_works() -> bool:
    try:
        importlib.import_module("torchtext.vocab")
        return True
    except Exception:  # absent (ImportError) or broken C++ ops (OSError, RuntimeError, ...)
        for name in [m for m in sys.modules if m == "torchtext" or m.startswith("torchtext.")]:
            del sys.modules[name]
        return False


def install() -> bool:
    """Register the stand-in as ``torchtext`` / ``torchtext.vocab`` unless real torchtext works.

    Returns
    -------
    bool
        True if the stand-in is (now) registered, False if the real torchtext is used.
    """
    if is_installed():
        return True
    if _real_torchtext_works():
        return False
    pkg = types.ModuleType("torchtext")
    pkg.__doc__ = "scconcepts stand-in for torchtext (vocab only); see " + __name__
    pkg.__path__ = []  # a package, so that `import torchtext.vocab` resolves via sys.modules
    pkg.__version__ = "0.0.0+scconcepts.stub"
    sub = types.ModuleType("torchtext.vocab")
    sub.__doc__ = __doc__
    for name in ("Vocab", "vocab", "build_vocab_from_iterator"):
        setattr(sub, name, globals()[name])
    setattr(pkg, _STUB_FLAG, True)
    setattr(sub, _STUB_FLAG, True)
    pkg.vocab = sub
    sys.modules["torchtext"] = pkg
    sys.modules["torchtext.vocab"] = sub
    return True
