"""``contentd plugins ls [-d]``: what the daemon loaded (ctr plugins ls)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from contentd.cli.parser import add_command, group

if TYPE_CHECKING:
    from contentd.api._pb.containerd.services.introspection.v1 import introspection_pb2
    from contentd.cli.context import Context

__all__ = ["add_commands", "plugin_status", "plugin_to_json"]

# containerd's plugin.ErrSkipPlugin text: a plugin that chose not to load
_SKIP_TEXT = "skip plugin"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plugins = group(
        commands,
        "plugins",
        aliases=["plugin"],
        help="show the daemon's plugins",
        example="contentd plugins ls",
    )
    ls = add_command(
        plugins,
        "ls",
        aliases=["list"],
        help="list plugins: TYPE ID PLATFORMS STATUS",
        example="contentd plugins ls -d type==io.containerd.grpc.v1",
        handler=run_ls,
    )
    ls.add_argument("-q", "--quiet", action="store_true", help="print only the plugin ids")
    ls.add_argument(
        "-d", "--detailed", action="store_true", help="requires, exports, capabilities, errors"
    )
    ls.add_argument("filters", nargs="*", metavar="FILTER")


def plugin_status(plugin: introspection_pb2.Plugin) -> str:
    if not plugin.HasField("init_err"):
        return "ok"
    return "skip" if _SKIP_TEXT in plugin.init_err.message else "error"


def _platforms(plugin: introspection_pb2.Plugin) -> list[str]:
    out: list[str] = []
    for p in plugin.platforms:
        text = f"{p.os}/{p.architecture}"
        if p.variant:
            text += f"/{p.variant}"
        out.append(text)
    return sorted(set(out))


def plugin_to_json(plugin: introspection_pb2.Plugin) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": plugin.type,
        "id": plugin.id,
        "requires": list(plugin.requires),
        "platforms": _platforms(plugin),
        "exports": dict(plugin.exports),
        "capabilities": list(plugin.capabilities),
        "status": plugin_status(plugin),
        "error": None,
    }
    if plugin.HasField("init_err"):
        obj["error"] = {"code": plugin.init_err.code, "message": plugin.init_err.message}
    return obj


def _detailed(plugins: list[introspection_pb2.Plugin]) -> str:
    import grpc

    codes = {code.value[0]: code.name for code in grpc.StatusCode}
    blocks: list[str] = []
    for plugin in plugins:
        lines = [f"Type:\t{plugin.type}", f"ID:\t{plugin.id}"]
        if plugin.requires:
            lines.append("Requires:\t")
            lines += [f"\t{r}" for r in plugin.requires]
        platforms = _platforms(plugin)
        if platforms:
            lines.append(f"Platforms:\t{','.join(platforms)}")
        if plugin.exports:
            lines.append("Exports:\t")
            lines += [f"\t{k}\t{v}" for k, v in sorted(plugin.exports.items())]
        if plugin.capabilities:
            lines.append(f"Capabilities:\t{','.join(plugin.capabilities)}")
        if plugin.HasField("init_err"):
            code = codes.get(plugin.init_err.code, str(plugin.init_err.code))
            lines += ["Error:\t", f"\tCode:\t{code}", f"\tMessage:\t{plugin.init_err.message}"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def run_ls(ctx: Context) -> int:
    from contentd.api._pb.containerd.services.introspection.v1 import introspection_pb2 as pb
    from contentd.api._pb.containerd.services.introspection.v1 import (
        introspection_pb2_grpc as pb_grpc,
    )
    from contentd.cli.output import PLUGINS_TABLE, table, tabwrite

    stub = pb_grpc.IntrospectionStub(ctx.channel())
    response = ctx.call(stub.Plugins, pb.PluginsRequest(filters=ctx.args.filters))
    plugins = list(response.plugins)
    if ctx.args.quiet:
        ctx.write("".join(f"{p.id}\n" for p in plugins))
    elif ctx.json:
        ctx.emit_list(plugin_to_json(p) for p in plugins)
    elif ctx.args.detailed:
        ctx.write(tabwrite(_detailed(plugins), PLUGINS_TABLE))
    else:
        rows = [(p.type, p.id, ",".join(_platforms(p)) or "-", plugin_status(p)) for p in plugins]
        ctx.write(
            table(("TYPE", "ID", "PLATFORMS", "STATUS"), rows, PLUGINS_TABLE, trailing_tab=True)
        )
    return 0
