"""``contentd completion bash|zsh|fish``: shell completion, from the argparse tree and the
daemon.

The bash and zsh scripts hold, for each command path (``contentd content ls``), its
subcommands, its options, the options that take a value, and what each value and each
positional argument is (a *kind*): choices, files, nothing to suggest, or one of
:data:`KINDS` -- digests, ingest refs, lease ids, namespaces and image names, which it asks
the daemon for with ``contentd __complete KIND [-a ADDR] [-n NS]`` (the address and
namespace typed so far are passed on). That call is bounded (:data:`TIMEOUT`) and
prints nothing when no daemon answers. The fish script hands the words typed so far
to ``contentd __complete words -- WORD...``, which walks the same tree
(:func:`candidates`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from contentd.cli.parser import add_command

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from contentd.cli.context import Context, Streams

__all__ = [
    "COMPLETE",
    "FILES",
    "KINDS",
    "Node",
    "add_commands",
    "bash_script",
    "candidates",
    "daemon_values",
    "fish_script",
    "run_complete",
    "script",
    "tree",
    "zsh_script",
]

SHELLS = ("bash", "zsh", "fish")
#: The hidden command the scripts call (not in the parser: it never shows in help).
COMPLETE: Final = "__complete"
#: What the daemon is asked for.
KINDS: Final = ("digests", "refs", "leases", "namespaces", "images")
#: What :func:`candidates` answers where file names go (the shell completes them).
FILES: Final = "__files__"
#: Seconds a completion waits for the daemon, and the most values it prints.
TIMEOUT: Final = 1.0
LIMIT: Final = 2000

_FILES: Final = frozenset({"FILE", "DIR", "SOCK", "ADDR"})


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    completion = add_command(
        commands,
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description=(
            "Print a completion script for bash, zsh or fish. Digests, refs, leases and\n"
            "namespaces are completed from the daemon (when one answers within a second).\n"
            "Load it in the current shell with\n"
            "  source <(contentd completion bash)       # zsh: the same with zsh\n"
            "  contentd completion fish | source\n"
            "or install it, e.g. as /etc/bash_completion.d/contentd."
        ),
        example="source <(contentd completion bash)",
        handler=None,
        client=False,
    )
    completion.add_argument("shell", choices=SHELLS)


@dataclass
class Node:
    """One command path: what may follow it."""

    path: str
    commands: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    takes_value: list[str] = field(default_factory=list)
    #: option -> the kind of its value
    values: dict[str, str] = field(default_factory=dict)
    #: the kind of each positional argument; the last ends with ``+`` if it repeats
    positionals: list[str] = field(default_factory=list)

    @property
    def choices(self) -> dict[str, list[str]]:
        """option -> its choices (for options whose value is one of a list)."""
        return {o: k[1:].split(",") for o, k in self.values.items() if k.startswith("=")}


def _kind(action: argparse.Action, group: str) -> str:
    """``=a,b`` (choices), ``files``, ``none``, or one of :data:`KINDS`; ``group`` is the
    top-level command the action is under (its own name, not an alias)."""
    if action.choices is not None:
        return "=" + ",".join(str(c) for c in action.choices)
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if action.dest == "namespace" or (metavar == "NAME" and group == "namespaces"):
        return "namespaces"
    if action.dest == "lease" or (metavar == "ID" and group == "leases"):
        return "leases"
    if group == "images" and (metavar == "SOURCE" or action.dest in ("name", "names")):
        return "images"
    if metavar == "DIGEST":
        return "digests"
    if metavar == "REF":
        return "refs"
    return "files" if metavar in _FILES else "none"


def tree(parser: argparse.ArgumentParser, path: str = "contentd", group: str = "") -> list[Node]:
    """Every command path under ``parser``, parents first."""
    node = Node(path)
    nodes = [node]
    children: list[tuple[str, argparse.ArgumentParser, str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            first: dict[int, str] = {}  # a parser's own name comes before its aliases
            for name, sub in action.choices.items():  # aliases too: each is a path
                node.commands.append(name)
                children.append((name, sub, group or first.setdefault(id(sub), name)))
            continue
        if not action.option_strings:
            kind = _kind(action, group)
            node.positionals.append(kind + ("+" if action.nargs in ("*", "+") else ""))
            continue
        node.options += action.option_strings
        if action.nargs != 0:
            node.takes_value += action.option_strings
            for option in action.option_strings:
                node.values[option] = _kind(action, group)
    for name, sub, sub_group in children:
        nodes += tree(sub, f"{path} {name}", sub_group)
    return nodes


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    return {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[shell](parser)


# -- what the daemon holds -------------------------------------------------------------


def daemon_values(
    kind: str, address: str | None, namespace: str | None, timeout: float = TIMEOUT
) -> list[str]:
    """Up to :data:`LIMIT` digests, refs, lease ids or namespaces from the daemon; [] when
    it does not answer in ``timeout`` seconds (or anything else goes wrong)."""
    import io

    from contentd.cli.context import Context, Streams

    args = argparse.Namespace(address=address, namespace=namespace)
    ctx = Context(args, Streams(out=io.BytesIO(), err=io.StringIO(), inp=io.BytesIO()))
    try:
        values = _fetch(ctx, kind, timeout)
        return values[:LIMIT]
    except Exception:
        return []
    finally:
        ctx.abandon()


def _fetch(ctx: Context, kind: str, timeout: float) -> list[str]:
    from contentd.api._pb.containerd.services.content.v1 import content_pb2 as cpb
    from contentd.api._pb.containerd.services.images.v1 import images_pb2 as ipb
    from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as lpb
    from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2 as npb

    ctx.check_socket()
    if kind == "digests":  # a server stream
        stream = ctx.quick_stream(
            "/containerd.services.content.v1.Content/List",
            cpb.ListContentRequest(),
            cpb.ListContentResponse,
            timeout=timeout,
        )
        return [m.digest for response in stream for m in response.info]
    calls: dict[str, tuple[str, Message, type[Message], Callable[[Any], list[str]]]] = {
        "refs": (
            "/containerd.services.content.v1.Content/ListStatuses",
            cpb.ListStatusesRequest(),
            cpb.ListStatusesResponse,
            lambda r: [s.ref for s in r.statuses],
        ),
        "leases": (
            "/containerd.services.leases.v1.Leases/List",
            lpb.ListRequest(),
            lpb.ListResponse,
            lambda r: [lease.id for lease in r.leases],
        ),
        "namespaces": (
            "/containerd.services.namespaces.v1.Namespaces/List",
            npb.ListNamespacesRequest(),
            npb.ListNamespacesResponse,
            lambda r: [ns.name for ns in r.namespaces],
        ),
        "images": (
            "/containerd.services.images.v1.Images/List",
            ipb.ListImagesRequest(),
            ipb.ListImagesResponse,
            lambda r: [image.name for image in r.images],
        ),
    }
    path, request, response, names = calls[kind]
    return names(ctx.quick_call(path, request, response, timeout=timeout))


# -- the walk, in Python (fish) ---------------------------------------------------------


Fetch = Callable[[str, "str | None", "str | None"], list[str]]


def candidates(
    parser: argparse.ArgumentParser,
    words: Sequence[str],
    current: str,
    fetch: Fetch = daemon_values,
) -> list[str]:
    """What may complete ``current`` after ``words`` (the program name excluded)."""
    nodes = {node.path: node for node in tree(parser)}
    node = nodes["contentd"]
    conn: dict[str, str] = {}
    pending: str | None = None
    count = 0
    for word in words:
        if pending is not None:
            if pending in ("-a", "--address"):
                conn["address"] = word
            elif pending in ("-n", "--namespace"):
                conn["namespace"] = word
            pending = None
        elif word.startswith("-"):
            if word in node.takes_value:
                pending = word
        elif f"{node.path} {word}" in nodes:
            node = nodes[f"{node.path} {word}"]
            count = 0
        else:
            count += 1
    if pending is not None:
        kind = node.values.get(pending, "none")
    elif current.startswith("-"):
        return [o for o in node.options if o.startswith(current)]
    elif node.commands:
        return [c for c in node.commands if c.startswith(current)]
    elif count < len(node.positionals):
        kind = node.positionals[count].rstrip("+")
    elif node.positionals and node.positionals[-1].endswith("+"):
        kind = node.positionals[-1].rstrip("+")
    else:
        kind = "none"
    if kind.startswith("="):
        return [c for c in kind[1:].split(",") if c.startswith(current)]
    if kind in KINDS:
        values = fetch(kind, conn.get("address"), conn.get("namespace"))
        return [v for v in values if v.startswith(current)]
    return [FILES] if kind == "files" else []


def run_complete(argv: Sequence[str], streams: Streams) -> int:
    """``__complete KIND [-a ADDR] [-n NS]`` or ``__complete words -- WORD... CURRENT``:
    one candidate per line; never an error (a completion must stay silent)."""
    if argv[:1] == ["words"]:
        rest = list(argv[1:])
        if rest[:1] == ["--"]:
            rest = rest[1:]
        from contentd.cli import build_parser

        words, current = rest[:-1], rest[-1] if rest else ""
        found = candidates(build_parser(), words, current)
    else:
        kind = argv[0] if argv else ""
        conn: dict[str, str | None] = {"address": None, "namespace": None}
        it = iter(argv[1:])
        for word in it:
            value = next(it, None)
            if word in ("-a", "--address"):
                conn["address"] = value
            elif word in ("-n", "--namespace"):
                conn["namespace"] = value
        found = daemon_values(kind, conn["address"], conn["namespace"]) if kind in KINDS else []
    streams.out.write("".join(f"{value}\n" for value in found).encode())
    streams.out.flush()
    return 0


# -- the scripts --------------------------------------------------------------------------


def _words(items: list[str]) -> str:
    return " ".join(items)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _tables(parser: argparse.ArgumentParser, *, zsh: bool = False) -> list[str]:
    """The shared tables: commands, options, value-taking options, the kinds of option
    values (``path option``) and of positionals. (zsh keeps quotes in a subscript that
    is assigned to, so there each entry is added as a key-value pair.)"""
    lines: list[str] = []

    def put(table: str, key: str, value: str) -> None:
        if zsh:
            lines.append(f"_contentd_{table}+=({_quote(key)} {_quote(value)})")
        else:
            lines.append(f"_contentd_{table}[{_quote(key)}]={_quote(value)}")

    for node in tree(parser):
        put("cmds", node.path, _words(node.commands))
        put("opts", node.path, _words(node.options))
        put("vals", node.path, " " + _words(node.takes_value) + " ")
        put("pos", node.path, _words(node.positionals))
        for option, kind in node.values.items():
            put("kinds", f"{node.path} {option}", kind)
    return lines


def bash_script(parser: argparse.ArgumentParser) -> str:
    lines = [
        "# bash completion for contentd; load with: source <(contentd completion bash)",
        "declare -gA _contentd_cmds=() _contentd_opts=() _contentd_vals=() _contentd_pos=()"
        " _contentd_kinds=()",
        *_tables(parser),
    ]
    lines.append(
        r"""_contentd() {
    # words from the line itself: COMP_WORDS splits sha256:... at the colon
    local line="${COMP_LINE:0:COMP_POINT}" cur="" node="contentd" word prev="" kind=""
    local i skip=0 npos=0
    local -a words pos conn=()
    read -ra words <<< "$line"
    if [[ -n $line && $line != *[[:space:]] ]]; then
        cur="${words[${#words[@]}-1]}"
        unset 'words[${#words[@]}-1]'
    fi
    for ((i = 1; i < ${#words[@]}; i++)); do
        word="${words[i]}"
        if ((skip)); then
            case "$prev" in -a|--address|-n|--namespace) conn+=("$prev" "$word") ;; esac
            skip=0
            continue
        fi
        if [[ $word == -* ]]; then
            if [[ ${_contentd_vals[$node]} == *" $word "* ]]; then skip=1; prev="$word"; fi
            continue
        fi
        if [[ -n ${_contentd_opts["$node $word"]+set} ]]; then
            node="$node $word"
            npos=0
        else
            npos=$((npos + 1))
        fi
    done
    if ((skip)); then
        kind="${_contentd_kinds["$node $prev"]}"
    elif [[ $cur == -* ]]; then
        kind="=${_contentd_opts[$node]}"
    elif [[ -n ${_contentd_cmds[$node]} ]]; then
        kind="=${_contentd_cmds[$node]}"
    else
        pos=(${_contentd_pos[$node]})
        if ((npos < ${#pos[@]})); then
            kind="${pos[npos]}"
        elif ((${#pos[@]})) && [[ ${pos[${#pos[@]}-1]} == *+ ]]; then
            kind="${pos[${#pos[@]}-1]}"
        fi
        kind="${kind%+}"
    fi
    case "$kind" in
        =*)
            kind="${kind:1}"
            COMPREPLY=($(compgen -W "${kind//,/ }" -- "$cur")) ;;
        digests|refs|leases|namespaces|images)
            COMPREPLY=($(compgen -W "$("${words[0]}" __complete "$kind" "${conn[@]}" 2>/dev/null)" \
                -- "$cur")) ;;
        files) COMPREPLY=($(compgen -f -- "$cur")) ;;
        *) COMPREPLY=() ;;
    esac
    # bash replaces only the part of the word after its last colon
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local colon="${cur%"${cur##*:}"}"
        COMPREPLY=("${COMPREPLY[@]#"$colon"}")
    fi
    return 0
}
complete -o default -F _contentd contentd"""
    )
    return "\n".join(lines) + "\n"


def zsh_script(parser: argparse.ArgumentParser) -> str:
    lines = [
        "#compdef contentd",
        "# zsh completion for contentd; load with: source <(contentd completion zsh)",
        "typeset -gA _contentd_cmds _contentd_opts _contentd_vals _contentd_pos _contentd_kinds",
        *_tables(parser, zsh=True),
    ]
    lines.append(
        r"""_contentd() {
    local node="contentd" word prev="" kind="" i skip=0 npos=0
    local -a pos conn
    for ((i = 2; i < CURRENT; i++)); do
        word="${words[i]}"
        if ((skip)); then
            case "$prev" in -a|--address|-n|--namespace) conn+=("$prev" "$word") ;; esac
            skip=0
            continue
        fi
        if [[ $word == -* ]]; then
            if [[ ${_contentd_vals[$node]} == *" $word "* ]]; then skip=1; prev="$word"; fi
            continue
        fi
        if (( ${+_contentd_opts[$node $word]} )); then
            node="$node $word"
            npos=0
        else
            npos=$((npos + 1))
        fi
    done
    if ((skip)); then
        kind="${_contentd_kinds[$node $prev]}"
    elif [[ $PREFIX == -* ]]; then
        compadd -- ${=_contentd_opts[$node]}
        return
    elif [[ -n ${_contentd_cmds[$node]} ]]; then
        compadd -- ${=_contentd_cmds[$node]}
        return
    else
        pos=(${=_contentd_pos[$node]})
        if ((npos < ${#pos})); then
            kind="${pos[npos+1]}"
        elif ((${#pos})) && [[ ${pos[-1]} == *+ ]]; then
            kind="${pos[-1]}"
        fi
        kind="${kind%+}"
    fi
    case "$kind" in
        '='*) kind="${kind#=}"; compadd -- ${=kind//,/ } ;;
        digests|refs|leases|namespaces|images)
            compadd -- ${(f)"$("${words[1]}" __complete "$kind" "${conn[@]}" 2>/dev/null)"} ;;
        files) _files ;;
    esac
}
if (( $+functions[compdef] )); then
    compdef _contentd contentd
fi"""
    )
    return "\n".join(lines) + "\n"


def fish_script(parser: argparse.ArgumentParser) -> str:
    del parser  # fish asks the program itself (contentd __complete words)
    return r"""# fish completion for contentd; load with: contentd completion fish | source
function __contentd_complete
    set -l words (commandline -opc)
    set -l current (commandline -ct)
    set -l found (command $words[1] __complete words -- $words[2..-1] $current 2>/dev/null)
    if test "$found" = __files__
        __fish_complete_path $current
    else
        printf '%s\n' $found
    end
end
complete -c contentd -f -a '(__contentd_complete)'
"""
