"""Dataclass-like records without ``dataclasses`` at import: ``Config``, ``Stats``, ``Credentials`` and smaller ones.

NOTE: ``import dataclasses`` loads ``inspect`` (and ``ast``, ``dis``, ...), and each ``@dataclass`` compiles its
methods with ``exec``: together about a third of the library's import time in Lambda's init phase. :func:`record`
builds a class from the same declarations (annotations and defaults, :func:`field` for the rest) with generic
methods and no code generation. ``dataclasses.fields``, ``asdict``, ``replace`` and ``is_dataclass`` still work on
these classes: their ``__dataclass_fields__`` is built (importing ``dataclasses``) on first access. Likewise a
``typing.NamedTuple`` with postponed annotations compiles each field's annotation (``ForwardRef``): small records
replace them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar

    from typing_extensions import dataclass_transform

    C = TypeVar("C", bound=type)
    R = TypeVar("R")
else:

    def dataclass_transform(**_: object) -> object:
        return lambda decorated: decorated


__all__ = ["MISSING", "Field", "field", "fields", "lazy_attributes", "record", "replace"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """One field: the attribute names of ``dataclasses.Field`` that this library reads."""

    __slots__ = ("default", "default_factory", "metadata", "name", "repr", "type")

    def __init__(self, default: Any, default_factory: Any, repr: bool, metadata: Mapping[str, Any]) -> None:
        self.default, self.default_factory, self.repr, self.metadata = default, default_factory, repr, metadata
        self.name = self.type = ""

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    repr: bool = True,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Like ``dataclasses.field`` (the parameters this library uses)."""
    return Field(default, default_factory, repr, {} if metadata is None else metadata)


def fields(cls: type) -> tuple[Field, ...]:
    """The fields of a :func:`record` class, in declaration order."""
    out: tuple[Field, ...] = cls.__dict__["_record_fields"]
    return out


def replace(obj: R, **changes: Any) -> R:
    """A copy of the record ``obj`` with ``changes`` (like ``dataclasses.replace``)."""
    unknown = changes.keys() - obj.__dict__.keys()
    if unknown:
        raise TypeError(f"{type(obj).__qualname__} has no field {sorted(unknown)[0]!r}")
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


def lazy_attributes(module: str, **homes: str) -> Callable[[str], object]:
    """A module ``__getattr__`` (PEP 562) re-exporting ``name`` from the sibling module ``homes[name]`` on first access.

    For names made by ``typing`` (Protocols): a module that re-exports one need not import ``typing`` to load.
    """

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        import importlib  # noqa: PLC0415 - loaded by the interpreter already: a dict lookup

        return getattr(importlib.import_module(f"{module.rpartition('.')[0]}.{home}"), name)

    return __getattr__


class _DataclassFields:
    """``__dataclass_fields__`` for ``dataclasses.fields``/``asdict``/``replace``: built on first access only."""

    def __get__(self, obj: object, cls: type) -> dict[str, Any]:
        import dataclasses  # noqa: PLC0415 - only for code that applies dataclasses' functions to a record

        built = {}
        for f in fields(cls):
            if f.default_factory is MISSING:
                dc = dataclasses.field(default=f.default, repr=f.repr, metadata=f.metadata)
            else:
                dc = dataclasses.field(default_factory=f.default_factory, repr=f.repr, metadata=f.metadata)
            dc.name, dc.type = f.name, f.type
            dc._field_type = getattr(dataclasses, "_FIELD")  # noqa: B009 - private: marks a plain field
            built[f.name] = dc
        type.__setattr__(cls, "__dataclass_fields__", built)
        return built


@dataclass_transform(field_specifiers=(field,))
def record(*, frozen: bool = False, eq: bool = True) -> Callable[[C], C]:
    """Make ``cls`` a record: ``__init__`` (positional or keyword), ``__repr__``, and ``__eq__`` unless ``eq=False``.

    ``frozen``: assigning an attribute raises ``dataclasses.FrozenInstanceError``, as for a frozen dataclass.
    """

    def build(cls: C) -> C:
        annotations = cls.__dict__.get("__annotations__")  # noqa: RUF063 - not inspect: see above
        if annotations is None:  # Python 3.14 without postponed annotations: built by __annotate__ on access
            annotations = getattr(cls, "__annotations__", {})
        table = []
        for name, annotation in annotations.items():
            value = cls.__dict__.get(name, MISSING)
            f = value if isinstance(value, Field) else Field(value, MISSING, True, {})
            f.name, f.type = name, annotation
            table.append(f)
            if f.default is MISSING:
                if name in cls.__dict__:
                    delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        _install(cls, tuple(table), frozen, eq)
        return cls

    return build


def _install(cls: Any, table: tuple[Field, ...], frozen: bool, eq: bool) -> None:
    names = tuple(f.name for f in table)
    known = frozenset(names)
    defaults = {f.name: f.default for f in table if f.default is not MISSING}
    required = frozenset(f.name for f in table if f.default is MISSING and f.default_factory is MISSING)
    factories = tuple((f.name, f.default_factory) for f in table if f.default_factory is not MISSING)
    shown = tuple(f.name for f in table if f.repr)
    qualname = cls.__qualname__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            if len(args) > len(names):
                raise TypeError(f"{qualname}() takes {len(names)} positional arguments but {len(args)} were given")
            given = dict(zip(names, args, strict=False))
            twice = given.keys() & kwargs.keys()
            if twice:
                raise TypeError(f"{qualname}() got multiple values for argument {sorted(twice)[0]!r}")
            kwargs.update(given)
        if not known >= kwargs.keys() >= required:
            unknown, missing = sorted(kwargs.keys() - known), sorted(required - kwargs.keys())
            if unknown:
                raise TypeError(f"{qualname}.__init__() got an unexpected keyword argument {unknown[0]!r}")
            raise TypeError(f"{qualname}.__init__() missing required argument {missing[0]!r}")
        values = dict(defaults)
        for name, factory in factories:
            if name not in kwargs:
                values[name] = factory()
        values.update(kwargs)
        self.__dict__.update(values)

    def __repr__(self: Any) -> str:
        return f"{qualname}({', '.join(f'{name}={getattr(self, name)!r}' for name in shown)})"

    cls.__init__, cls.__repr__ = __init__, __repr__
    cls._record_fields = table
    cls.__dataclass_fields__ = _DataclassFields()
    setattr(cls, "__match_args__", names)  # noqa: B010 - mypy: not on type
    if eq:

        def __eq__(self: Any, other: object) -> bool:
            if other.__class__ is not self.__class__:
                return NotImplemented
            return all(getattr(self, name) == getattr(other, name) for name in names)

        cls.__eq__ = __eq__
        cls.__hash__ = (lambda self: hash(tuple(getattr(self, name) for name in names))) if frozen else None
    if frozen:

        def __setattr__(self: Any, name: str, value: object) -> None:
            _frozen(name)

        def __delattr__(self: Any, name: str) -> None:
            _frozen(name)

        cls.__setattr__, cls.__delattr__ = __setattr__, __delattr__


def _frozen(name: str) -> None:
    import dataclasses  # noqa: PLC0415 - only on a mistake

    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
