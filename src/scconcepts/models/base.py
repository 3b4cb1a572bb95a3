"""The foundation-model interface: a typed per-model profile block and the adapter protocol.

A model enters the book through one adapter module in :mod:`scconcepts.models.adapters` (a
:class:`FoundationModel` subclass registered with :func:`register`) and one block under
``models:`` in a profile. Nothing outside :mod:`scconcepts.models` tests a model's name.

This module imports only pydantic and numpy, so that profiles validate in well under a second
(:mod:`scconcepts.config` reads :func:`spec_class`); adapters import their heavy libraries
(torch, scvi-tools, scgpt) inside their methods.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
import pkgutil
from typing import Any, Callable, ClassVar, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import trace

__all__ = ["Traced", "set_trace_paths", "Section", "DgeaModelSettings", "ModelSpec", "FoundationModel", "ModelContext",
           "register", "adapter_class", "spec_class", "registered_models"]


class Traced(BaseModel):
    """A profile node that records which of its values a chapter reads.

    After :func:`set_trace_paths` gave each node its dotted path, reading a field that holds a
    value (not a section) records ``param <path>.<field>`` in the chapter's trace
    (:mod:`scconcepts.trace`); a mapping of sections (``models``) records its names;
    ``model_dump`` records the whole section. Nothing is recorded when no trace is active.
    """

    def __getattribute__(self, name: str):
        value = super().__getattribute__(name)
        if name[0] == "_" or name not in type(self).__pydantic_fields__:
            return value
        if not trace.active():
            return value
        private = object.__getattribute__(self, "__pydantic_private__") or {}
        base = private.get("_trace_path")
        if base is None:
            return value
        path = f"{base}{name}"
        if isinstance(value, BaseModel):
            return value
        if isinstance(value, dict) and value and all(isinstance(v, BaseModel)
                                                     for v in value.values()):
            trace.record_path("keys", path)
        else:
            trace.record_path("param", path)
        return value

    def model_dump(self, *args, **kwargs):
        private = object.__getattribute__(self, "__pydantic_private__") or {}
        if trace.active() and private.get("_trace_path") is not None:
            trace.record_path("param", private["_trace_path"].rstrip(".") or "*")
        with trace.paused():
            return super().model_dump(*args, **kwargs)


def set_trace_paths(node: BaseModel, prefix: str = "") -> None:
    """Give ``node`` and every section below it its dotted path (``"models.scvi."``)."""
    if not isinstance(node, Traced):
        return
    private = object.__getattribute__(node, "__pydantic_private__")
    if private is None:
        object.__setattr__(node, "__pydantic_private__", {})
        private = object.__getattribute__(node, "__pydantic_private__")
    private["_trace_path"] = prefix
    for name in type(node).__pydantic_fields__:
        value = node.__dict__.get(name)
        if isinstance(value, BaseModel):
            set_trace_paths(value, f"{prefix}{name}.")
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, BaseModel):
                    set_trace_paths(v, f"{prefix}{name}.{k}.")


class Section(Traced):
    """A profile section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DgeaModelSettings(Section):
    """Chapter 10 settings of one model (App C)."""

    enabled: bool = True
    #: concepts with deletion curves; null = every sampled concept (``dgea.n_concepts``)
    deletion_concepts: int | None = None
    #: genes removed at the last deletion step; null = ``dgea.steps``
    steps: int | None = None
    #: (prototype, counterfactual) pairs per concept; null = ``dgea.max_pairs``
    max_pairs: int | None = None


class ModelSpec(Section):
    """The block ``models.<name>`` of a profile: what every adapter needs.

    Attributes
    ----------
    grid
        SAE sizes (c, k) of chapter 02 (Fig 2A, Table 3).
    c, k
        The SAE of the rest of the study (ψ with c concepts, k active per cell).
    n_prototypes, n_counterfactuals
        N_p and N_c of the counterfactual occlusion attribution (Sec 3.2).
    attribution_units
        ``"active"``: attribute every concept that fires at least once and every neuron;
        an integer n: a seeded random sample of n concepts among those active in at least
        ``concepts.min_cells`` cells (the ones Sec 3.1 can characterise; all active concepts
        when fewer qualify), and n neurons (the interpretation sample of Sec 4.3, used where a
        forward pass is costly).
    attribution_neurons
        Neurons attributed: ``"all"``, an integer n (a seeded sample), or None (as
        ``attribution_units``: every neuron with ``"active"``, else the same n). Chapter 05's
        concepts-vs-neurons comparison uses every attributed neuron.
    attribution_grid_units
        Concepts sampled per non-default SAE size for Fig 2C.
    table3
        Per dataset role, rows ``[c, k, lr, epochs]`` (paper Table 3); an SAE of a listed size
        on that role uses them instead of ``sae.lr`` / ``sae.epochs`` (the paper's epochs are
        the cap of the held-out stopping rule, see :class:`scconcepts.config.SAESettings`).
    """

    label: str | None = None
    grid: list[tuple[int, int]]
    c: int = Field(gt=0)
    k: int = Field(gt=0)
    n_prototypes: int = Field(10, gt=0)
    n_counterfactuals: int = Field(3, gt=0)
    attribution_units: Literal["active"] | int = "active"
    attribution_neurons: Literal["all"] | int | None = None
    attribution_grid_units: int = Field(150, ge=0)
    table3: dict[str, list[tuple[int, int, float, int]]] | None = None
    stability_pairs: int = Field(2, ge=0)
    usefulness_attribution_units: int = Field(2, ge=0)
    baseline_low_rank_c: int = Field(20, gt=0)
    dgea: DgeaModelSettings = DgeaModelSettings()

    @field_validator("grid")
    @classmethod
    def _grid_not_empty(cls, v):
        if not v:
            raise ValueError("grid needs at least one (c, k) size")
        for c, k in v:
            if not 0 < k <= c:
                raise ValueError(f"grid size (c={c}, k={k}) needs 0 < k <= c")
        return v

    def sae_hparams(self, c: int, k: int, role: str, lr: float, epochs: int) -> tuple[float, int]:
        """(learning rate, epoch cap) of SAE (c, k) on ``role``: Table 3 row, else the
        defaults."""
        for row in (self.table3 or {}).get(role) or []:
            if int(row[0]) == int(c) and int(row[1]) == int(k):
                return float(row[2]), int(row[3])
        return float(lr), int(epochs)


class ModelContext(Protocol):
    """What an adapter may ask of the workflow while it prepares itself (no workflow object)."""

    seed: int
    device: str | None
    amp: bool

    @property
    def store(self) -> Any:
        """The workflow's :class:`~scconcepts.store.ArtifactStore` (fitted models cache there)."""

    def reference(self) -> tuple[Any, str]:
        """(AnnData of the main dataset, its content key)."""

    def census_cache(self) -> Any:
        """The Census download cache of the profile (:class:`scconcepts.data.cache.CensusCache`)."""


class FoundationModel(ABC):
    """Adapter of one single-cell model (scVI, scGPT, PCA, ...).

    Subclasses set ``name``, ``spec`` (a :class:`ModelSpec` subclass) and implement the methods
    below (abstract: an adapter that misses one cannot be instantiated). Optional:
    ``chunk_encoder(adata, role)`` for the resumable chunked embeddings of ``scale``, and
    ``describe()``. Arrays: ``embed`` returns ``(n_cells, d)`` float32 embeddings (``obsm["X_<name>"]``);
    ``inputs`` returns the model's input matrix (raw counts, ``(n_cells, m)`` CSR, the m genes it
    reads, in its order) on which the encoder ``f`` of Eq 1 acts, ``f: (b, m) counts → (b, d)``.
    """

    name: ClassVar[str]
    spec: ClassVar[type[ModelSpec]] = ModelSpec
    #: default display label
    label: ClassVar[str] = ""

    def __init__(self, settings: ModelSpec, ctx: ModelContext):
        self.settings = settings
        self.ctx = ctx

    @property
    def display(self) -> str:
        return self.settings.label or self.label or self.name

    @abstractmethod
    def fingerprint(self) -> str:
        """Content key of the model (its weights, or its fitting recipe and data)."""

    @abstractmethod
    def embed(self, adata, role: str) -> np.ndarray:
        """Embeddings of ``adata``'s cells (dataset role ``role``), (n_cells, d) float32."""

    @abstractmethod
    def inputs(self, adata, role: str):
        """(counts CSR (n, m) float32, genes list of m) the encoder reads."""

    @abstractmethod
    def encoder(self, genes) -> Callable:
        """f for attribution: counts tensor (b, m) → embedding (b, d)."""

    def describe(self):
        """A small table describing the model (Table 2 analogue), or None."""
        return None


_REGISTRY: dict[str, type[FoundationModel]] = {}
_DISCOVERED = False


def register(cls: type[FoundationModel]) -> type[FoundationModel]:
    """Class decorator: make an adapter available under ``cls.name`` in profiles."""
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every module of :mod:`scconcepts.models.adapters` (each registers itself)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    from . import adapters

    for info in pkgutil.iter_modules(adapters.__path__):
        importlib.import_module(f"{adapters.__name__}.{info.name}")
    _DISCOVERED = True


def registered_models() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def adapter_class(name: str) -> type[FoundationModel]:
    """The adapter registered as ``name``.

    Raises
    ------
    KeyError
        Naming the registered models.
    """
    _discover()
    if name not in _REGISTRY:
        raise KeyError(f"No model adapter named {name!r}; registered: {sorted(_REGISTRY)} "
                       "(add one as a module in scconcepts/models/adapters/).")
    return _REGISTRY[name]


def spec_class(name: str) -> type[ModelSpec]:
    return adapter_class(name).spec
