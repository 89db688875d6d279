"""``contentd completion bash|zsh``: shell completion scripts generated from the argparse tree.

The script holds, for each command path (``contentd content ls``), its
subcommands, its options, the options that take a value, and the choices of
those that have them; a small shell function walks the words typed so far
through that table. Where a command takes no subcommand, words that are not
options complete as file names.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from contentd.cli.parser import add_command

__all__ = ["Node", "add_commands", "bash_script", "tree", "zsh_script"]

SHELLS = ("bash", "zsh")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    completion = add_command(
        commands,
        "completion",
        help="print a shell completion script",
        description=(
            "Print a completion script for bash or zsh. Load it in the current shell with\n"
            "  source <(contentd completion bash)\n"
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
    choices: dict[str, list[str]] = field(default_factory=dict)


def tree(parser: argparse.ArgumentParser, path: str = "contentd") -> list[Node]:
    """Every command path under ``parser``, parents first."""
    node = Node(path)
    nodes = [node]
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():  # aliases too: each is a path
                node.commands.append(name)
                children.append((name, sub))
            continue
        if not action.option_strings:
            continue
        node.options += action.option_strings
        if action.nargs != 0:
            node.takes_value += action.option_strings
            if action.choices is not None:
                for option in action.option_strings:
                    node.choices[option] = [str(c) for c in action.choices]
    for name, sub in children:
        nodes += tree(sub, f"{path} {name}")
    return nodes


def _words(items: list[str]) -> str:
    return " ".join(items)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def bash_script(parser: argparse.ArgumentParser) -> str:
    nodes = tree(parser)
    lines = [
        "# bash completion for contentd; load with: source <(contentd completion bash)",
        "declare -gA _contentd_cmds=() _contentd_opts=() _contentd_vals=() _contentd_choices=()",
    ]
    for node in nodes:
        key = _quote(node.path)
        lines.append(f"_contentd_cmds[{key}]={_quote(_words(node.commands))}")
        lines.append(f"_contentd_opts[{key}]={_quote(_words(node.options))}")
        lines.append(f"_contentd_vals[{key}]={_quote(' ' + _words(node.takes_value) + ' ')}")
        for option, choices in node.choices.items():
            lines.append(
                f"_contentd_choices[{_quote(node.path + ' ' + option)}]={_quote(_words(choices))}"
            )
    lines.append(
        r"""_contentd() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" node="contentd" word i skip=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if ((skip)); then skip=0; continue; fi
        if [[ $word == -* ]]; then
            [[ ${_contentd_vals[$node]} == *" $word "* ]] && skip=1
            continue
        fi
        if [[ -n ${_contentd_opts["$node $word"]+set} ]]; then
            node="$node $word"
        fi
    done
    if ((skip)); then
        prev="${COMP_WORDS[COMP_CWORD-1]}"
        if [[ -n ${_contentd_choices["$node $prev"]+set} ]]; then
            COMPREPLY=($(compgen -W "${_contentd_choices["$node $prev"]}" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_contentd_opts[$node]}" -- "$cur"))
    elif [[ -n ${_contentd_cmds[$node]} ]]; then
        COMPREPLY=($(compgen -W "${_contentd_cmds[$node]}" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    return 0
}
complete -o default -F _contentd contentd"""
    )
    return "\n".join(lines) + "\n"


def zsh_script(parser: argparse.ArgumentParser) -> str:
    nodes = tree(parser)
    lines = [
        "#compdef contentd",
        "# zsh completion for contentd; load with: source <(contentd completion zsh)",
        "typeset -gA _contentd_cmds _contentd_opts _contentd_vals _contentd_choices",
    ]
    for node in nodes:
        key = _quote(node.path)
        lines.append(f"_contentd_cmds[{key}]={_quote(_words(node.commands))}")
        lines.append(f"_contentd_opts[{key}]={_quote(_words(node.options))}")
        lines.append(f"_contentd_vals[{key}]={_quote(' ' + _words(node.takes_value) + ' ')}")
        for option, choices in node.choices.items():
            lines.append(
                f"_contentd_choices[{_quote(node.path + ' ' + option)}]={_quote(_words(choices))}"
            )
    lines.append(
        r"""_contentd() {
    local node="contentd" word prev i skip=0
    for ((i = 2; i < CURRENT; i++)); do
        word="${words[i]}"
        if ((skip)); then skip=0; continue; fi
        if [[ $word == -* ]]; then
            [[ ${_contentd_vals[$node]} == *" $word "* ]] && skip=1
            continue
        fi
        if (( ${+_contentd_opts[$node $word]} )); then
            node="$node $word"
        fi
    done
    if ((skip)); then
        prev="${words[CURRENT-1]}"
        if (( ${+_contentd_choices[$node $prev]} )); then
            compadd -- ${=_contentd_choices[$node $prev]}
        else
            _files
        fi
        return
    fi
    if [[ $PREFIX == -* ]]; then
        compadd -- ${=_contentd_opts[$node]}
    elif [[ -n ${_contentd_cmds[$node]} ]]; then
        compadd -- ${=_contentd_cmds[$node]}
    else
        _files
    fi
}
if (( $+functions[compdef] )); then
    compdef _contentd contentd
fi"""
    )
    return "\n".join(lines) + "\n"
