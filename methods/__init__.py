"""Registry of unlearning methods: one module per method, each a small `Method` subclass
(`methods/base.py`: the data streams it needs and what one step does).

    cls = get_method("SCRUB"); m = cls(tail, teacher, ctx)
Adding a method: a new module with a `@register_method` class, and its name in `MODULES` below (the
modules are imported on the first lookup, so importing this package loads none of them). Defaults:
the setting's (engine/hparams.py); method-specific ones, and any extra hyperparameter that
`--hp KEY=VALUE` may set, go in `hparams.METHOD_DEFAULTS` (a method reading `ctx.hp.<key>` that has
no entry there fails when it runs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from methods.base import Method

_METHODS: dict[str, type[Method]] = {}
MODULES = ("ft", "ng", "ngftw", "rl", "scar", "bs", "be", "scrub", "delete", "cmf")


def _load() -> None:
    for m in MODULES:
        importlib.import_module(f"methods.{m}")


def register_method(cls: type[Method]) -> type[Method]:
    _METHODS[cls.name] = cls
    return cls


ORDER = ("FT", "NG", "NGFTW", "RL", "SCAR", "BS", "BE", "SCRUB", "DELETE", "SCAR_self")


def list_methods() -> list[str]:
    """Registered methods, the seeds' nine first, in the seeds' order."""
    _load()
    return sorted(_METHODS, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m))


def get_method(name: str) -> type[Method]:
    _load()
    if name not in _METHODS:
        from core.runtime import UserError
        raise UserError(f"unknown method {name!r}; valid: {', '.join(_METHODS)}")
    return _METHODS[name]


def uses_forget_data(method: str) -> bool:
    """Whether a method learns from forget samples (told or found itself): the ones held to the
    forget targets of the robustness report and the engine tests."""
    cls = get_method(method)
    return "forget" in cls.needs or cls.self_forget


def real_data_needs(method: str, setting: str, source: str, surrogate_dataset: str | None = None,
                    scar_stats: str | None = None) -> tuple[bool, bool]:
    """(needs real retain data, needs real forget data) of a method as `streams` feeds it: a synthetic
    source needs neither; surrogates are the retain embeddings in fc/partial (all of train for a
    self-forgetting method) and out-of-distribution images in the full setting (unless
    --surrogate_dataset retain); class statistics (SCAR) read the real retain set with
    --scar_stats retain, whatever the source (see `stats_read_real_retain`)."""
    cls = get_method(method)
    stats = stats_read_real_retain(method, scar_stats)
    if source == "synthetic":
        return stats, False
    uses = set(cls.needs)
    if "surrogate" in uses:
        if setting != "full":
            uses |= {"retain", "forget"} if cls.self_forget else {"retain"}
        elif surrogate_dataset == "retain":
            uses.add("retain")
    return "retain" in uses or stats, "forget" in uses


def stats_read_real_retain(method: str, scar_stats: str | None) -> bool:
    """Whether a method's class statistics come from the real retain set (--scar_stats retain, SCAR and
    SCAR_self): such a row reads real retain data even on synthetic embeddings."""
    return bool(get_method(method).class_stats) and scar_stats == "retain"


__all__ = ["get_method", "list_methods", "real_data_needs", "register_method", "stats_read_real_retain"]
