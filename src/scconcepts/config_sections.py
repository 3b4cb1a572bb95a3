"""The sections of a run profile (pydantic v2): one class per top-level key of
``params/<name>.yaml`` except ``models`` (whose blocks are the adapters' specs,
:mod:`scconcepts.models`). Validated and assembled by :class:`scconcepts.config.Profile`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .models.base import Section

__all__ = ["ROLES", "DatasetRole", "Data", "SAESettings", "ConceptSettings",
           "AttributionSettings", "GseaSettings", "PlantedSettings", "StabilitySettings",
           "UsefulnessSettings", "BaselineSettings", "DgeaSettings", "PerturbationSettings",
           "ScaleSettings"]

ROLES = ("main", "second", "perturbation")


class DatasetRole(Section):
    """One dataset role: a bundled name, an ``.h5ad`` path or a Census dataset id."""

    dataset: str
    required_obs: list[str] = []
    #: cells kept (seeded, stratified by cell type); null = all
    subsample: int | None = Field(None, gt=0)
    #: layer holding raw counts; null = ``X`` (scverse data often keeps them in "counts")
    counts_layer: str | None = None


class Data(Section):
    main: DatasetRole
    second: DatasetRole
    perturbation: DatasetRole
    metadata_keys: list[str] = ["cell_type", "tissue", "donor_id", "condition"]


class SAESettings(Section):
    """Optimiser settings shared by every SAE (a model's ``table3`` rows take precedence).

    Training stops when the R² of the held-out cells (``val_fraction`` of them, seeded) has not
    improved by more than ``tol`` over ``patience`` epochs; ``epochs`` is the cap.
    """

    lr: float = Field(1e-3, gt=0)
    epochs: int = Field(100, gt=0)
    batch_size: int = Field(1024, gt=0)
    aux_k: int = Field(512, ge=0)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    tol: float = Field(1e-4, ge=0)
    patience: int = Field(10, gt=0)


class ConceptSettings(Section):
    specificity_threshold: float = Field(0.7, gt=0, le=1)
    min_cells: int = Field(100, gt=0)


class AttributionSettings(Section):
    #: models whose concepts are also attributed with library-matched counterfactuals
    #: (chapter 04's perturbation-space comparison)
    match_library_models: list[str] = []
    threshold: float = 0.05
    relative_threshold: float = 0.05
    block: int = Field(100, gt=0)
    canonical_markers: dict[str, list[str]] = {}


class GseaSettings(Section):
    gene_sets: str = "GO_Biological_Process_2023"
    n_units: int = Field(20, gt=0)
    #: Fig 3A.b on every attributed unit (concepts active in >= concepts.min_cells cells) or on
    #: the n_units samples only
    comparison: Literal["all", "sample"] = "all"
    #: models whose Fig 3A.b is repeated with other counterfactual pools (chapter 05)
    pool_sensitivity: list[str] = []
    #: models whose concepts are also compared with capacity-matched PCA / ICA components
    component_baselines: list[str] = []
    #: other min_size values chapter 05 repeats the comparison with, on the n_units samples
    min_size_sensitivity: list[int] = []
    permutations: int = Field(500, gt=0)
    strong_permutations: int = Field(1000, gt=0)
    strong_method: Literal["multilevel", "permutation"] = "multilevel"
    min_size: int = Field(15, gt=0)
    threads: int = Field(1, gt=0)
    block: int = Field(10, gt=0)


class PlantedSettings(Section):
    """Chapter 04's planted-programme ground truth (:meth:`scconcepts.workflow.Workflow.planted`)."""

    models: list[str] = []
    n_genes: int = Field(20, gt=0)
    cell_fraction: float = Field(0.05, gt=0, lt=1)
    factor: float = Field(4.0, gt=1)
    replicates: int = Field(3, gt=0)
    top_k: list[int] = [5, 10, 20]


class StabilitySettings(Section):
    seeds: list[int] = [0, 1, 2]
    seed_role: Literal["main", "second"] = "second"
    epochs: int | None = None
    null_repeats: int = Field(3, gt=0)


class UsefulnessSettings(Section):
    celltype_per_class: int = 700
    celltype_min_cells: int = 700
    cycle_per_class: int = 1000
    cycle_min_genes: int = 10
    test_fraction: float = Field(0.25, gt=0, lt=1)
    celltype_max_iter: int = 50
    cycle_max_iter: int = 100
    top_units: int = 2


class BaselineSettings(Section):
    nmf_iter: int = 100
    fit_cells: int = 1500
    zero_tol: float = 1e-3


class DgeaSettings(Section):
    n_concepts: int = 20
    gsea_n_concepts: int = 8
    max_cells: int = 1000
    method: Literal["t-test", "t-test_overestim_var", "wilcoxon", "logreg"] = "t-test"
    steps: int = 30
    max_pairs: int | None = None
    gsea_permutations: int = 200


class PerturbationSettings(Section):
    #: models of chapter 11; null = every model of the profile
    models: list[str] | None = None
    top_concepts: int = 3
    min_cells: int = 20
    markers: list[str] = []


class ScaleSettings(Section):
    """Paper scale: Census inputs, devices, the resumable chunked stores, attribution shards."""

    census_version: str | None = None
    cache_dir: str | None = None
    embedding_chunk_size: int | None = Field(None, gt=0)
    device: str | None = None
    amp: bool = False
    attribution_shard_index: int = Field(0, ge=0)
    attribution_shard_count: int = Field(1, gt=0)

    @model_validator(mode="after")
    def _shard_in_range(self):
        if self.attribution_shard_index >= self.attribution_shard_count:
            raise ValueError(
                f"attribution_shard_index must be in 0..attribution_shard_count-1; got index "
                f"{self.attribution_shard_index}, count {self.attribution_shard_count}. Set e.g. "
                "--set scale.attribution_shard_count=4 --set scale.attribution_shard_index=0.")
        return self

    @property
    def uses_census(self) -> bool:
        return bool(self.census_version) and bool(self.cache_dir)
