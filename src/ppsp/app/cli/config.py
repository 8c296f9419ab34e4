"""Options from TOML files and ``PPSP_*`` environment variables, for every command.

Each option of a command takes its value from, first to last:

1. the command line;
2. the environment: ``PPSP_<COMMAND>_<KEY>`` (``PPSP_TRACKER_PORT``, ``PPSP_LAB_VOD_PEERS``),
   then for the options every peer command shares ``PPSP_PEER_<KEY>`` (``PPSP_PEER_TRACKER``),
   then for the logging options ``PPSP_<KEY>`` (``PPSP_LOG_LEVEL``); ``--token`` also reads
   ``$PPSP_TOKEN``, last;
3. the file of ``--config FILE`` (given to the command, or to ``ppsp`` itself, or as
   ``$PPSP_CONFIG``): its ``[command]`` table, then ``[peer]`` for a peer command, then the
   top level (the logging keys);
4. the per-user file, ``$XDG_CONFIG_HOME/ppsp/config.toml`` (``~/.config/ppsp/config.toml``),
   looked up the same way;
5. the option's built-in default.

A key is the option's long name without its dashes (``--max-peers``: ``max-peers``,
``--compare/--no-compare``: ``compare``); an environment variable's name is the key in upper
case with ``_`` for ``-``.  Options given several times take a TOML array, or a
whitespace-separated list in the environment.

Click does the layering: environment variables are each option's ``envvar`` list, and the
files are merged into the command's ``default_map`` by the eager ``--config`` option, before
any other option is read.  (Click's ``auto_envvar_prefix`` names variables after the Python
parameter, ``tracker_url``, not after the option users type, ``--tracker``: hence the explicit
lists.)  A command gets its ``--config`` and logging options, and its variables, when its group
first looks it up (:class:`ConfiguredGroup`), so that ``ppsp get`` pays for its own only.

A file is read only when it exists, and only then is ``tomllib`` imported.  The whole file is
checked, every table: an unknown key or a value of the wrong TOML type is a
:class:`ConfigError` (a usage error, exit status 2, before any network); a value of the right
type that its option refuses (a port out of range) fails when the command reads it, with the
same ``config FILE:`` prefix (:func:`describe_source`).

Imports click and the standard library only.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from weakref import WeakSet

import click
from click.core import ParameterSource

from ppsp.app.cli.logs import LOG_FORMATS, LOG_LEVELS, configure_logging

ENV_PREFIX = "PPSP"
"""What every environment variable of ppsp begins with."""

CONFIG_ENVVAR = "PPSP_CONFIG"
"""The environment variable naming a configuration file, as ``--config`` does."""

PEER_TABLE = "peer"
"""The table of the options every peer command shares."""

PEER_COMMANDS = ("seed", "get", "watch", "live")
"""The commands that read the ``[peer]`` table and the ``PPSP_PEER_*`` variables."""

LOG_KEYS = ("log-level", "log-file", "log-format")
"""The keys every command has, also allowed at the top level of a file."""

USER_FILE = Path("ppsp") / "config.toml"
"""The per-user file, under the user's configuration directory."""

_META_PATH = "ppsp.config.path"  # ctx.meta: the group's --config (or $PPSP_CONFIG)
_META_ORIGINS = "ppsp.config.origins"  # ctx.meta: parameter name -> (file, key as written)
_META_LOG = "ppsp.log"  # ctx.meta: the logging options' values

_COMMON = ("config", "log_level", "log_file", "log_format")  # parameter names added here

TablePath = tuple[str, ...]
"""A table's path in a file: ``()`` the top level, ``("tracker",)``, ``("lab", "vod")``."""


class ConfigError(click.UsageError):
    """A configuration file ppsp cannot use: one line, ``config FILE: ...``, exit status 2."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"config {path}: {problem}")


def user_config_path() -> Path | None:
    """Where the per-user file is: ``$XDG_CONFIG_HOME/ppsp/config.toml``, else under
    ``~/.config`` (a relative ``$XDG_CONFIG_HOME`` is ignored, as the XDG specification
    says); ``None`` when there is no home directory to look in."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / USER_FILE
    try:
        return Path.home() / ".config" / USER_FILE
    except RuntimeError:
        return None


# --- what a file may hold ------------------------------------------------------------------


def option_key(option: click.Option) -> str:
    """The key of an option in a file: its longest ``--name``, without the dashes."""
    names = [name for name in option.opts if name.startswith("--")]
    if not names:
        raise ValueError(f"option {option.name} has no long name to make a key of")
    return max(names, key=len)[2:]


def env_name(*parts: str) -> str:
    """``PPSP_A_B``: the environment variable of a key (``-`` becomes ``_``)."""
    return "_".join([ENV_PREFIX, *parts]).upper().replace("-", "_")


@dataclass(frozen=True)
class Setting:
    """One key of a file: the option it sets and the TOML type its value must have."""

    key: str
    option: click.Option
    kind: str
    """``integer``, ``number``, ``boolean`` or ``string``; of the items for an array."""
    many: bool
    """Whether the value is an array (the option is given several times)."""

    def problem(self, value: Any) -> str | None:
        """What is wrong with the TOML type of ``value``, or ``None``."""
        if self.many:
            if not isinstance(value, list):
                return f"expected an array of {_plural(self.kind)}, not {_toml_type(value)}"
            for item in value:
                if not _is_kind(item, self.kind):
                    return f"expected an array of {_plural(self.kind)}, with {_toml_type(item)}"
            return None
        if not _is_kind(value, self.kind):
            return f"expected {_article(self.kind)}, not {_toml_type(value)}"
        return None


def setting_of(option: click.Option) -> Setting:
    """The key of ``option`` and the TOML type of its value, from its click type."""
    kind = "string"
    if option.is_flag:
        if not option.is_bool_flag:
            raise ValueError(f"option {option.name}: flags with values have no key yet")
        kind = "boolean"
    elif isinstance(option.type, click.types.IntParamType):
        kind = "integer"
    elif isinstance(option.type, click.types.FloatParamType):
        kind = "number"
    elif isinstance(option.type, click.types.BoolParamType):
        kind = "boolean"
    if option.count or option.nargs != 1:
        raise ValueError(f"option {option.name}: counts and tuples have no key yet")
    return Setting(option_key(option), option, kind, bool(option.multiple))


def _is_kind(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, int | float)
    if kind == "string":
        return isinstance(value, str)
    return False


def _toml_type(value: Any) -> str:
    names = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
    ]
    for kind, name in names:
        if isinstance(value, kind):
            return name
    return "a date or time"


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _plural(kind: str) -> str:
    return kind + "s"


def commands(group: click.Group, path: TablePath = ()) -> Iterator[tuple[TablePath, click.Command]]:
    """Every command under ``group`` (groups descended into), with its path of names."""
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def own_settings(command: click.Command) -> dict[str, Setting]:
    """The keys of a command's options, the ``--config`` one, hidden ones and help aside."""
    found: dict[str, Setting] = {}
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden and param.name != "config":
            setting = setting_of(param)
            found[setting.key] = setting
    return found


def peer_keys(root: click.Group) -> frozenset[str]:
    """The keys of the ``[peer]`` table: the options every peer command has, the logging
    ones aside (they are shared by every command, at the top level)."""
    keys: set[str] | None = None
    for name in PEER_COMMANDS:
        command = root.commands.get(name)
        if command is not None:
            own = {
                option_key(p)
                for p in command.params
                if isinstance(p, click.Option) and not p.hidden and p.name not in _COMMON
            }
            keys = own if keys is None else keys & own
    return frozenset(keys or ())


@dataclass(frozen=True)
class Schema:
    """The tables a file may hold and the keys of each, from the command tree."""

    tables: dict[TablePath, dict[str, Setting]]
    """Per table: the top level ``()`` (logging keys), ``("peer",)``, each command's path."""
    groups: frozenset[TablePath]
    """Tables that hold tables only (``("lab",)``)."""


def schema_of(root: click.Group) -> Schema:
    """The schema of ``root``'s command tree (every command gets its common options first)."""
    tables: dict[TablePath, dict[str, Setting]] = {}
    groups: set[TablePath] = set()
    shared = peer_keys(root)
    for path, command in commands(root):
        install_command(command, path, shared)
        tables[path] = own_settings(command)
        groups.update(path[:depth] for depth in range(1, len(path)))
    if (PEER_TABLE,) in tables or (PEER_TABLE,) in groups:
        raise ValueError(f"a command named {PEER_TABLE!r} hides the shared table")
    peers = [tables[(name,)] for name in PEER_COMMANDS if (name,) in tables]
    # In the order of the first peer command's options (its --help order).
    tables[(PEER_TABLE,)] = {k: v for k, v in (peers[0] if peers else {}).items() if k in shared}
    first = next(iter(tables.values()), {})
    tables[()] = {key: first[key] for key in LOG_KEYS if key in first}
    return Schema(tables, frozenset(groups))


def variables(root: click.Group) -> frozenset[str]:
    """Every environment variable the commands under ``root`` read (``$PPSP_CONFIG`` too):
    what a program removes to start ``ppsp`` processes free of its user's settings."""
    schema = schema_of(root)
    names = {CONFIG_ENVVAR}
    for table in schema.tables.values():
        for setting in table.values():
            envvar = setting.option.envvar
            names.update([envvar] if isinstance(envvar, str) else envvar or [])
    return frozenset(names)


def _where(path: TablePath) -> str:
    return f"[{'.'.join(path)}]"


def _key_where(path: TablePath, key: str) -> str:
    return f"{_where(path)} {key}" if path else key


def check_document(schema: Schema, document: Mapping[str, Any], file: Path | str) -> None:
    """Raise :class:`ConfigError` for the first unknown key or wrongly typed value."""
    _check_table(schema, document, (), file)


def _check_table(
    schema: Schema, table: Mapping[str, Any], path: TablePath, file: Path | str
) -> None:
    settings = schema.tables.get(path, {}) if path not in schema.groups else {}
    for key, value in table.items():
        inner = (*path, key)
        if inner in schema.groups or inner in schema.tables:
            if not isinstance(value, dict):
                if inner == (PEER_TABLE,):
                    what = "the options every peer command shares"
                elif inner in schema.groups:
                    what = f"the tables of the ppsp {' '.join(inner)} commands"
                else:
                    what = f"the options of ppsp {' '.join(inner)}"
                hint = (
                    f"; the peer commands' --{key} goes in {_where((PEER_TABLE,))}"
                    if not path and key in schema.tables[(PEER_TABLE,)]
                    else ""
                )
                raise ConfigError(
                    file, f"{'.'.join(inner)} must be a table: {_where(inner)} holds {what}{hint}"
                )
            _check_table(schema, value, inner, file)
        elif key in settings:
            problem = settings[key].problem(value)
            if problem is not None:
                raise ConfigError(file, f"{_key_where(path, key)}: {problem}")
        else:
            raise ConfigError(file, _unknown(schema, path, key, value, settings))


def _unknown(
    schema: Schema, path: TablePath, key: str, value: Any, settings: Mapping[str, Setting]
) -> str:
    import difflib

    known = list(settings)
    known += [
        inner[-1]
        for inner in (*schema.tables, *schema.groups)
        if len(inner) == len(path) + 1 and inner[:-1] == path
    ]
    if isinstance(value, dict):
        text = f"unknown table {_where((*path, key))}"
    else:
        text = f"unknown key {key!r}" + (f" in {_where(path)}" if path else "")
    close = difflib.get_close_matches(key, known, n=1)
    return text + (f" (did you mean {close[0]!r}?)" if close else "")


def read_file(path: Path | str) -> dict[str, Any]:
    """The TOML document of ``path``, or :class:`ConfigError` saying why it cannot be read."""
    import tomllib

    try:
        with open(path, "rb") as stream:
            return tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(path, exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, str(exc)) from exc


def values_for(
    schema: Schema, document: Mapping[str, Any], path: TablePath, file: Path | str
) -> dict[str, tuple[Any, str, str]]:
    """What a checked document sets for the command at ``path``.

    Maps each option's parameter name to ``(value, file, key as written)``: the top level, then
    ``[peer]`` for a peer command, then the command's table, each over the one before.
    """
    layers: list[TablePath] = [()]
    if len(path) == 1 and path[0] in PEER_COMMANDS:
        layers.append((PEER_TABLE,))
    layers.append(path)
    own = schema.tables[path]
    found: dict[str, tuple[Any, str, str]] = {}
    for layer in layers:
        table: Any = document
        for part in layer:
            table = table.get(part, {})
        for key, value in table.items():
            # Only the layer's own keys: the top level also holds the tables themselves.
            param = own[key].option.name if key in schema.tables[layer] and key in own else None
            if param is not None:
                found[param] = (value, str(file), _key_where(layer, key))
    return found


# --- the options every command gets --------------------------------------------------------

_installed: WeakSet[click.Command] = WeakSet()


def install_command(command: click.Command, path: TablePath, shared: frozenset[str]) -> None:
    """Give ``command`` (at ``path`` under ``ppsp``) its environment variables, ``--config``
    and the logging options, once; its callback then starts logging before it runs.

    ``shared``: the keys of the ``[peer]`` table (:func:`peer_keys`).
    """
    if command in _installed:
        return
    _installed.add(command)
    peer = len(path) == 1 and path[0] in PEER_COMMANDS
    command.params.extend(_common_options())
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden or param.name == "config":
            continue
        key = option_key(param)
        names = [env_name(*path, key)]
        if peer and key in shared:
            names.append(env_name(PEER_TABLE, key))
        if key in LOG_KEYS:
            names.append(env_name(key))
        # An option's own variable (--token's $PPSP_TOKEN) stays, after the systematic names.
        earlier = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        param.envvar = [*names, *(name for name in earlier if name not in names)]
    if command.callback is not None:
        command.callback = _logging_first(command.callback)


def _common_options() -> list[click.Option]:
    def remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if param.name is not None:
            ctx.meta.setdefault(_META_LOG, {})[param.name] = value
        return value

    return [
        click.Option(
            ["--config"],
            type=click.Path(path_type=Path),
            default=None,
            expose_value=False,
            is_eager=True,
            callback=_load_command_config,
            help="TOML file of option values (docs/CONFIGURATION.md), over the per-user "
            "~/.config/ppsp/config.toml; default $PPSP_CONFIG or ppsp's own --config.",
        ),
        click.Option(
            ["--log-level"],
            type=click.Choice(LOG_LEVELS, case_sensitive=False),
            default="info",
            show_default=True,
            expose_value=False,
            callback=remember,
            help="Verbosity of the log.",
        ),
        click.Option(
            ["--log-file"],
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            expose_value=False,
            callback=remember,
            help="Append the log to this file instead of standard error (reopened when moved, "
            "for logrotate).",
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(LOG_FORMATS, case_sensitive=False),
            default="text",
            show_default=True,
            expose_value=False,
            callback=remember,
            help="text, or json: one object per line (time, level, logger, message, pid).",
        ),
    ]


def _logging_first(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback``, after logging is configured from the command's logging options."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        start_logging(click.get_current_context())
        return callback(*args, **kwargs)

    return run


def start_logging(ctx: click.Context) -> None:
    """Configure logging as the command's logging options say (a log file that cannot be
    opened is a usage error of ``--log-file``)."""
    chosen = ctx.meta.get(_META_LOG, {})
    file: Path | None = chosen.get("log_file")
    try:
        configure_logging(
            str(chosen.get("log_level", "info")).lower(),
            file=file,
            fmt=str(chosen.get("log_format", "text")).lower(),
        )
    except OSError as exc:
        param = next((p for p in ctx.command.params if p.name == "log_file"), None)
        problem = f"cannot write {file}: {exc.strerror or exc}"
        raise click.BadParameter(problem, ctx=ctx, param=param) from exc


def remember_group_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """Callback of ``ppsp --config``: the file its command reads (unless it names its own)."""
    if value is not None:
        ctx.meta[_META_PATH] = value


def _load_command_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """Callback of a command's eager ``--config``: read the files, fill ``ctx.default_map``."""
    explicit = value if value is not None else ctx.meta.get(_META_PATH)
    user = user_config_path()
    files = [f for f in (user if user is not None and user.is_file() else None, explicit) if f]
    if not files:
        return
    root = ctx.find_root()
    path = tuple(c.info_name or "" for c in _lineage(ctx))[1:]
    schema = schema_of(root.command) if isinstance(root.command, click.Group) else None
    if schema is None or path not in schema.tables:
        return
    found: dict[str, tuple[Any, str, str]] = {}
    for file in files:  # the user's file first: the --config file overrides it
        document = read_file(file)
        check_document(schema, document, file)
        found.update(values_for(schema, document, path, file))
    ctx.default_map = {**(ctx.default_map or {}), **{k: v[0] for k, v in found.items()}}
    ctx.meta[_META_ORIGINS] = {name: (f, key) for name, (_, f, key) in found.items()}


def _lineage(ctx: click.Context) -> list[click.Context]:
    chain: list[click.Context] = []
    current: click.Context | None = ctx
    while current is not None:
        chain.append(current)
        current = current.parent
    return chain[::-1]


class ConfiguredGroup(click.Group):
    """A group whose commands read files and the environment (installed on first look-up)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, with its ``--config``, logging options and variables."""
        command = super().get_command(ctx, cmd_name)
        if command is not None and not isinstance(command, click.Group):
            path = tuple(c.info_name or "" for c in _lineage(ctx))[1:]
            root = ctx.find_root().command
            shared = peer_keys(root) if isinstance(root, click.Group) else frozenset()
            install_command(command, (*path, cmd_name), shared)
        return command


# --- naming the source of a bad value ------------------------------------------------------


def describe_source(exc: click.UsageError) -> str | None:
    """The message of a bad option value, naming where the value came from when that was not
    the command line: ``config FILE: [tracker] port: ...`` or ``$PPSP_TRACKER_PORT: ...``.

    ``None`` for values from the command line, and for errors that name no single option.
    """
    if not isinstance(exc, click.BadParameter) or exc.ctx is None:
        return None
    ctx = exc.ctx
    param = exc.param or _param_named(ctx, exc.param_hint)
    if param is None or param.name is None:
        return None
    source = ctx.get_parameter_source(param.name)
    if source is ParameterSource.DEFAULT_MAP:
        origin = ctx.meta.get(_META_ORIGINS, {}).get(param.name)
        if origin is not None:
            file, key = origin
            return f"config {file}: {key}: {exc.message}"
    if source is ParameterSource.ENVIRONMENT:
        names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        used = next((name for name in names if os.environ.get(name)), None)
        if used is not None:
            return f"${used}: {exc.message}"
    return None


def _param_named(ctx: click.Context, hint: Any) -> click.Parameter | None:
    """The option a ``param_hint`` such as ``'--storage'`` names (one option only)."""
    if not isinstance(hint, str):
        return None
    wanted = hint.strip("'\"")
    return next(
        (p for p in ctx.command.params if isinstance(p, click.Option) and wanted in p.opts), None
    )
