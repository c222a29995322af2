"""The registry itself: export and import registry.json, change a model's fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlxctl.errors import InvalidInput
from mlxctl.library.inventory import check_import
from mlxctl.operations.base import Args, Context, Flag, Number, Operation, Result, Text
from mlxctl.operations.models import NoArgs
from mlxctl.registry.exchange import export_registry, parse_registry

PREFIX = "/api/admin/registry"


def export(ctx: Context, args: NoArgs) -> Result:
    """The registry as the seeds' registry.json: {"version": 1, "models": {slug: {...}}}."""
    return export_registry(ctx.registry.list())


class ImportArgs(Args):
    text: Text
    source: str = "registry.json"  # named in error messages
    replace: Flag = False
    allow_commands: Flag = False  # rows served by an external command run a program


def import_registry(ctx: Context, args: ImportArgs) -> Result:
    """Read a registry.json; a bad file changes nothing (the error names line and field).

    The file is trusted no more than a local edit (`inventory.check_import`).
    """
    records = parse_registry(args.text, source=args.source)
    check_import(records, ctx.settings, allow_commands=args.allow_commands, source=args.source)
    count = ctx.registry.add_many(records, replace_all=args.replace)
    return {"imported": count, "source": args.source, "replaced": args.replace}


class SetArgs(Args):
    """Only the fields sent change; null (or "") clears port, template and parsers."""

    model: Text
    slug: Text | None = None
    port: Number | None = None
    chat_template: str | None = None
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None


def set_fields(ctx: Context, args: SetArgs) -> Result:
    """Change fields of a registered model, named exactly (slug, port, chat template, parsers).

    A chat template file is copied into the store: a row's template is only ever read
    from there (store/local/confine.py), and later edits of the file change nothing.
    """
    record = ctx.registry.resolve_exact(args.model)
    changes: dict[str, Any] = {}
    for name in sorted(args.model_fields_set - {"model"}):
        value = getattr(args, name)
        if name == "slug" and not value:
            raise InvalidInput("the slug cannot be cleared, only changed")
        changes[name] = value if value != "" else None
    if changes.get("chat_template"):
        changes["chat_template"] = str(ctx.layout.keep_template(Path(changes["chat_template"])))
    if not changes:
        raise InvalidInput("nothing to change", hint="see `mlxctl registry set --help`")
    return ctx.registry.update(record.slug, **changes).to_dict()


EXPORT = Operation("registry.export", "GET", PREFIX, NoArgs, export)
IMPORT = Operation("registry.import", "POST", f"{PREFIX}/import", ImportArgs, import_registry)
SET = Operation("registry.set", "POST", f"{PREFIX}/set", SetArgs, set_fields)
