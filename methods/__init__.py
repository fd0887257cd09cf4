"""Registry of unlearning methods: one module per method, each a small `Method` subclass.

    cls = get_method("SCRUB"); m = cls(tail, teacher, ctx)
Adding a method: a new module with a `@register_method` class, imported below.
"""

from __future__ import annotations

from methods.base import Context, Method

_METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    _METHODS[cls.name] = cls
    return cls


ORDER = ("FT", "NG", "NGFTW", "RL", "SCAR", "BS", "BE", "SCRUB", "DELETE", "SCAR_self")


def list_methods() -> list[str]:
    """Registered methods, the seeds' nine first, in the seeds' order."""
    return sorted(_METHODS, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m))


def get_method(name: str) -> type[Method]:
    if name not in _METHODS:
        from core.runtime import UserError
        raise UserError(f"unknown method {name!r}; valid: {', '.join(_METHODS)}")
    return _METHODS[name]


def real_data_needs(method: str, setting: str, source: str, surrogate_dataset: str | None = None) -> tuple[bool, bool]:
    """(needs real retain data, needs real forget data) of a method as `streams` feeds it: a synthetic
    source needs neither; surrogates are the retain embeddings in fc/partial (all of train for a
    self-forgetting method) and out-of-distribution images in the full setting (unless
    --surrogate_dataset retain)."""
    if source == "synthetic":
        return False, False
    cls = get_method(method)
    uses = set(cls.needs)
    if "surrogate" in uses:
        if setting != "full":
            uses |= {"retain", "forget"} if cls.self_forget else {"retain"}
        elif surrogate_dataset == "retain":
            uses.add("retain")
    return "retain" in uses, "forget" in uses


from methods import be, bs, delete, ft, ng, ngftw, rl, scar, scrub  # noqa: E402,F401

__all__ = ["Context", "Method", "get_method", "list_methods", "register_method"]
