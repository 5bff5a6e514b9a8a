"""MkDocs hooks of the soilsuite docs site (``mkdocs.yml``: ``hooks: [scripts/mkdocs_hooks.py]``).

- The CLI reference (``reference/cli.md``) is generated from the typer app itself, so it is
  never out of date: every command and sub-command with its help, arguments and options by
  panel, defaults and environment variables.
- The nav tolerates pages that come and go: an entry whose file does not exist is dropped, and
  every ``docs/*.md`` page not in the nav is added under "More" (so a page a developer adds is
  built, linked and checked without touching ``mkdocs.yml``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.soilsuite")

CLI_PAGE = "reference/cli.md"


# ----------------------------------------------------------------------------- CLI reference
def _is_argument(p) -> bool:
    return getattr(p, "param_type_name", "") == "argument"


def _param_row(p, ctx) -> str:
    if _is_argument(p):
        flags = f"`{p.metavar or getattr(p, 'display_name_raw', None) or p.name.upper()}`"
    else:
        flags = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
    kind = ""
    if not _is_argument(p) and not getattr(p, "is_flag", False):
        shown = p.display_type_rich(ctx) if hasattr(p, "display_type_rich") else None
        kind = str(shown or getattr(p, "metavar", None) or "")
        kind = f"`{kind}`" if kind else ""
    default = ""
    if getattr(p, "show_default", False) and p.default not in (None, "", False, ()) and not callable(p.default):
        default = f"`{p.default}`"
    if p.required:
        default = "required"
    envvar = getattr(p, "envvar", None)
    help_text = (getattr(p, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    help_text = help_text.replace("[", "\\[").replace("]", "\\]")  # not markdown links
    if envvar:
        help_text += f" (env `{envvar}`)"
    return f"| {flags} | {kind} | {default} | {help_text} |"


def _command_md(cmd, path: str, depth: int) -> list[str]:
    lines = [f"{'#' * depth} `{path}`", ""]
    doc = (cmd.help or "").strip()
    if doc:
        lines += [doc.split("\n\n")[0].replace("\n", " "), ""]
    ctx = cmd.context_class(cmd, info_name=path)
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    lines += ["```text", f"{path} {usage}".rstrip(), "```", ""]
    params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False) and p.name != "help"]
    panels: dict[str, list] = {}
    for p in params:
        default_panel = "Arguments" if _is_argument(p) else "Options"
        panels.setdefault(getattr(p, "rich_help_panel", None) or default_panel, []).append(p)
    for panel, ps in panels.items():
        if len(panels) > 1:
            lines += [f"**{panel}**", ""]
        lines += ["| option | value | default | what |", "|---|---|---|---|"]
        lines += [_param_row(p, ctx) for p in ps]
        lines.append("")
    if hasattr(cmd, "list_commands"):  # a group (typer's click or click itself)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                lines += _command_md(sub, f"{path} {name}", min(depth + 1, 4))
    return lines


def cli_reference() -> str:
    """The CLI reference page (markdown) from soilsuite's typer app."""
    import typer

    from soilsuite.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="soilsuite")
    out = ["# Command-line reference", "",
           "Generated from the CLI itself when the site is built (`soilsuite COMMAND --help` shows the same).",
           "Rarely used options are in each command's *Advanced* panel.", ""]
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        if cmd is not None and not cmd.hidden:
            out += _command_md(cmd, f"soilsuite {name}", 2)
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- nav
def _nav_files(nav: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(nav, str):
        found.add(nav)
    elif isinstance(nav, list):
        for x in nav:
            found |= _nav_files(x)
    elif isinstance(nav, dict):
        for v in nav.values():
            found |= _nav_files(v)
    return found


def _prune(nav: Any, exists) -> Any:
    if isinstance(nav, str):
        return nav if ("://" in nav or exists(nav)) else None
    if isinstance(nav, list):
        kept = [y for y in (_prune(x, exists) for x in nav) if y not in (None, [], {})]
        return kept
    if isinstance(nav, dict):
        kept = {k: v for k, v in ((k, _prune(v, exists)) for k, v in nav.items()) if v not in (None, [], {})}
        return kept
    return nav


def on_config(config, **kwargs):
    docs = Path(config["docs_dir"])

    def exists(rel: str) -> bool:
        return rel == CLI_PAGE or (docs / rel).is_file()

    nav = _prune(config["nav"] or [], exists)
    listed = _nav_files(nav)
    extra = sorted(p.relative_to(docs).as_posix() for p in docs.glob("*.md")
                   if p.relative_to(docs).as_posix() not in listed)
    if extra:
        nav.append({"More": extra})
    config["nav"] = nav
    return config


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    return files
