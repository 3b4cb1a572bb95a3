"""Typed, layered run profiles (pydantic v2) and the one override parser.

A profile is ``params/<name>.yaml``. It may start with ``extends: <other>`` and then holds only
what differs from that profile (mappings merge key by key; ``null`` under ``models:`` removes a
model). The merged mapping is validated by :class:`Profile`: unknown keys and ill-typed values
are errors that name the closest valid key, before any notebook kernel starts.

Overrides (``--set`` of the runner and the Census CLI, the ``params`` of a notebook) use dotted
keys, ``models.scgpt.n_prototypes=10``; a key may also be written flat, its parts joined by
``_`` without the section (``main_dataset`` for ``data.main.dataset``, ``sae_epochs`` for
``sae.epochs``, ``scgpt_n_prototypes`` for ``models.scgpt.n_prototypes``) where that spelling
is unambiguous. Values are parsed as YAML.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from .config_sections import (ROLES, AttributionSettings, BaselineSettings,  # noqa: F401
                              ConceptSettings, Data, DatasetRole, DgeaSettings, GseaSettings,
                              PerturbationSettings, PlantedSettings, SAESettings,
                              ScaleSettings, StabilitySettings, UsefulnessSettings)
from .models.base import DgeaModelSettings, ModelSpec, Traced, set_trace_paths, spec_class

__all__ = ["Profile", "ConfigError", "load_config", "repo_root", "parse_overrides",
           "profile_mapping", "valid_keys"]

def repo_root() -> Path:
    """Repository root (``$SCCONCEPTS_ROOT`` or two levels above ``src/scconcepts``)."""
    env = os.environ.get("SCCONCEPTS_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2]


class ConfigError(ValueError):
    """A profile or override that cannot be used; the message names the fix."""


# ------------------------------------------------------------------------------------ profile
class Profile(Traced):
    """A validated run profile; the sections are typed (see each class)."""

    model_config = {"extra": "forbid", "validate_assignment": True}

    name: str = "default"
    seed: int = 0
    torch_threads: int | None = Field(None, gt=0)
    artifacts_dir: str | None = None
    annotations: str | list[str] | None = None
    data: Data
    models: dict[str, ModelSpec]
    sae: SAESettings = SAESettings()
    concepts: ConceptSettings = ConceptSettings()
    attribution: AttributionSettings = AttributionSettings()
    gsea: GseaSettings = GseaSettings()
    planted: PlantedSettings = PlantedSettings()
    stability: StabilitySettings = StabilitySettings()
    usefulness: UsefulnessSettings = UsefulnessSettings()
    baselines: BaselineSettings = BaselineSettings()
    dgea: DgeaSettings = DgeaSettings()
    perturbation: PerturbationSettings = PerturbationSettings()
    scale: ScaleSettings = ScaleSettings()

    #: provenance of each leaf (dotted key → file or "override"); not a profile key
    _sources: dict[str, str] = {}
    _overrides: dict[str, Any] = {}

    @field_validator("models", mode="before")
    @classmethod
    def _model_blocks(cls, v):
        if not isinstance(v, Mapping) or not v:
            raise ValueError("models must map at least one model name to its settings block")
        out = {}
        for name, block in v.items():
            if block is None:
                continue
            try:
                spec = spec_class(str(name))
            except KeyError as err:
                raise ValueError(str(err).strip('"')) from None
            if isinstance(block, spec):
                out[str(name)] = block
                continue
            try:
                out[str(name)] = spec.model_validate(block)
            except ValidationError as err:  # name the model block in the message
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
                raise ValueError(f"models.{name}.{where}: {first['msg']} (got "
                                 f"{first.get('input')!r})") from None
        return out

    @model_validator(mode="after")
    def _cross_checks(self):
        if self.perturbation.models is None:
            self.perturbation.models = list(self.models)
        for m in self.perturbation.models:
            if m not in self.models:
                raise ValueError(f"perturbation.models names {m!r}, which is not under models "
                                 f"({sorted(self.models)}).")
        for key, names in (("gsea.pool_sensitivity", self.gsea.pool_sensitivity),
                           ("gsea.component_baselines", self.gsea.component_baselines),
                           ("planted.models", self.planted.models),
                           ("attribution.match_library_models",
                            self.attribution.match_library_models)):
            unknown = [m for m in names if m not in self.models]
            if unknown:
                raise ValueError(f"{key} names {unknown}, not under models "
                                 f"({sorted(self.models)}); set {key} to models of the "
                                 "profile, or [] to skip it.")
        for name, spec in self.models.items():
            if (spec.c, spec.k) not in [tuple(g) for g in spec.grid]:
                raise ValueError(f"models.{name}: the default SAE (c={spec.c}, k={spec.k}) must "
                                 f"be one of its grid sizes {spec.grid}.")
        return self

    # ------------------------------------------------------------------ derived values
    @property
    def artifacts(self) -> Path:
        """``<artifacts_dir or repo/artifacts>/<profile name>/``: the artefact store's folder
        (the store creates it and proves it writable, :func:`scconcepts.store.prepare_root`)."""
        root = Path(self.artifacts_dir) if self.artifacts_dir else repo_root() / "artifacts"
        if not root.is_absolute():
            root = repo_root() / root
        return root / self.name

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self._overrides)

    def get(self, dotted: str) -> Any:
        """The value at a dotted key (``"models.scgpt.c"``)."""
        node: Any = self
        for part in dotted.split("."):
            node = node[part] if isinstance(node, Mapping) else getattr(node, part)
        return node

    def table(self, keys: Iterable[str] | None = None) -> pd.DataFrame:
        """Run-parameters table: dotted key, the value used, and where it was set."""
        from . import trace

        with trace.paused():  # the dump only lists the keys; values are read (and traced) below
            flat = _flatten(self.model_dump(exclude={"name"}, serialize_as_any=True))
        keys = list(flat) if keys is None else [_resolve_key(k, flat) for k in keys]
        rows = []
        for k in keys:
            value = self.get(k)
            if isinstance(value, BaseModel):
                value = value.model_dump()
            rows.append({"parameter": k,
                         "value": value if isinstance(value, str) else json.dumps(value, default=str),
                         "source": self._sources.get(k, "default value")})
        return pd.DataFrame(rows).set_index("parameter")


# ------------------------------------------------------------------------------ key handling
def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and k not in ("canonical_markers", "table3"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _flat_spellings(dotted: str) -> list[str]:
    parts = dotted.split(".")
    spellings = ["_".join(parts)]
    if len(parts) > 1:
        spellings.append("_".join(parts[1:]))
    return spellings


def _aliases(valid: Iterable[str]) -> dict[str, str]:
    """Unambiguous flat spellings → dotted keys."""
    seen: dict[str, set[str]] = {}
    for key in valid:
        for s in _flat_spellings(key):
            if s != key:
                seen.setdefault(s, set()).add(key)
    return {s: next(iter(ks)) for s, ks in seen.items() if len(ks) == 1}


def valid_keys(mapping: Mapping | None = None) -> list[str]:
    """Every dotted key of the default profile (and of ``mapping``'s models)."""
    base = profile_mapping("default")
    if mapping is not None:
        base = _merge(base, {"models": {m: {} for m in (mapping.get("models") or {})}})
    keys = set(_flatten(base))
    # section fields with defaults that the YAML leaves out
    for section, field in Profile.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.update(f"{section}.{f}" for f in ann.model_fields)
        elif section not in ("models", "data"):
            keys.add(section)
    for role in ROLES:
        keys.update(f"data.{role}.{f}" for f in DatasetRole.model_fields)
    for name in (base.get("models") or {}):
        try:
            spec = spec_class(name)
        except KeyError:
            continue
        keys.update(f"models.{name}.{f}" for f in spec.model_fields)
        keys.update(f"models.{name}.dgea.{f}" for f in DgeaModelSettings.model_fields)
    keys.discard("name")
    return sorted(keys)


def _closest(key: str, candidates: Iterable[str]) -> str | None:
    candidates = list(candidates)
    hits = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if hits:
        return hits[0]
    leaf = key.split(".")[-1]
    hits = difflib.get_close_matches(leaf, [c.split(".")[-1] for c in candidates], n=1, cutoff=0.6)
    if hits:
        return next(c for c in candidates if c.split(".")[-1] == hits[0])
    return None


def _suggest(key: str, valid: list[str]) -> str:
    aliases = _aliases(valid)
    best = _closest(key, [*valid, *aliases])
    if best is None:
        return ""
    if best in aliases:
        return f" Did you mean {best!r} ({aliases[best]})?"
    return f" Did you mean {best!r}?"


def _resolve_key(key: str, valid: Iterable[str]) -> str:
    valid = list(valid)
    if key in valid:
        return key
    prefixes = {v.rsplit(".", i)[0] for v in valid for i in range(1, v.count(".") + 1)}
    if key in prefixes:
        return key
    aliases = _aliases(valid)
    if key in aliases:
        return aliases[key]
    raise ConfigError(f"Unknown parameter {key!r}.{_suggest(key, valid)}")


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = d
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", "main_dataset=x.h5ad"]`` → ``{"a.b": 1, "main_dataset": "x.h5ad"}`` (YAML).

    Raises
    ------
    ConfigError
        For an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r} (e.g. --set "
                              "models.scgpt.n_prototypes=10).")
        out[key.strip()] = yaml.safe_load(value)
    return out


# ------------------------------------------------------------------------------------ layering
def _merge(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for k, v in top.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(top)


def _read_profile(name: str, pdir: Path, chain: tuple[str, ...] = ()) -> tuple[dict, dict]:
    path = pdir / f"{name}.yaml"
    if not path.is_file():
        avail = sorted(p.stem for p in pdir.glob("*.yaml"))
        raise ConfigError(f"No profile {name!r} ({path}); available: {avail}.")
    if name in chain:
        raise ConfigError(f"Profiles extend each other in a circle: {' -> '.join(chain + (name,))}.")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a YAML mapping, not {type(raw).__name__}.")
    parent = raw.pop("extends", None)
    if parent:
        base, sources = _read_profile(str(parent), pdir, chain + (name,))
    else:
        base, sources = {}, {}
    merged = _merge(base, raw)
    sources = {**sources, **{k: f"params/{name}.yaml" for k in _flatten(raw)}}
    return merged, sources


def profile_mapping(profile: str = "default", params_dir: str | os.PathLike | None = None) -> dict:
    """The merged (``extends`` resolved) mapping of a profile, before validation."""
    pdir = Path(params_dir) if params_dir else repo_root() / "params"
    return _read_profile(profile, pdir)[0]


def _error_message(err: ValidationError, profile: str, valid: list[str]) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not isinstance(p, int))
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown parameter {loc!r}.{_suggest(loc, valid)}")
        elif e["msg"].startswith(f"Value error, {loc}."):   # already names its full key
            lines.append(e["msg"].removeprefix("Value error, "))
        else:
            got = e.get("input")
            shown = f" (got {got!r})" if not isinstance(got, (dict, list)) or len(repr(got)) < 80 else ""
            lines.append(f"{loc or 'profile'}: {e['msg']}{shown}")
    return f"Profile {profile!r}: " + "; ".join(lines)


def load_config(profile: str = "default", params: Mapping[str, Any] | Iterable[str] | None = None,
                params_dir: str | os.PathLike | None = None) -> Profile:
    """Read ``params/<profile>.yaml`` (following ``extends``), apply overrides, validate.

    Parameters
    ----------
    params
        Overrides: a mapping of dotted (or unambiguous flat) keys to values, or ``key=value``
        strings. Papermill passes the runner's overrides here.

    Raises
    ------
    ConfigError
        Unknown profile, unknown key (naming the closest valid one), ill-typed value.
    """
    pdir = Path(params_dir or os.environ.get("SCCONCEPTS_PARAMS_DIR") or repo_root() / "params")
    mapping, sources = _read_profile(profile, pdir)
    if params is not None and not isinstance(params, Mapping):
        params = parse_overrides(params)
    params = dict(params or {})
    overrides = {}
    for key, value in params.items():
        # a new model block (models.pca={} or models.pca.c=...) makes its keys valid
        head = key.split(".")
        if len(head) >= 2 and head[0] == "models":
            try:
                spec_class(head[1])
            except KeyError as err:
                raise ConfigError(f"{key}: {str(err).strip(chr(34))}") from None
            mapping.setdefault("models", {}).setdefault(head[1], {} if len(head) > 2 else value)
        valid = valid_keys(mapping)
        dotted = _resolve_key(key, valid)
        _set_dotted(mapping, dotted, value)
        overrides[dotted] = value
        for leaf in (_flatten({dotted: value}) if isinstance(value, dict) else {dotted: value}):
            sources[leaf] = "override"
    mapping["name"] = profile
    try:
        cfg = Profile.model_validate(mapping)
    except ValidationError as err:
        raise ConfigError(_error_message(err, profile, valid_keys(mapping))) from None
    cfg._sources = sources
    cfg._overrides = overrides
    set_trace_paths(cfg)  # chapters record the profile values they read (scconcepts.trace)
    return cfg
