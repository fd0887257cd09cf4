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


from methods import be, bs, delete, ft, ng, ngftw, rl, scar, scrub  # noqa: E402,F401

__all__ = ["Context", "Method", "get_method", "list_methods", "register_method"]
