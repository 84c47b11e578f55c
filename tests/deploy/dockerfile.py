"""Reads deploy/docker/Dockerfile into stages and instructions, for the deploy
tests (there may be no Docker engine where they run, so they read the file)."""

import json
import shlex


class Stage:
    def __init__(self, base, name, line):
        self.base = base
        self.name = name
        self.line = line
        self.instructions = []  # (INSTRUCTION, argument text, line number)

    def all(self, instruction):
        return [(args, line) for (ins, args, line) in self.instructions if ins == instruction]

    def last(self, instruction):
        found = self.all(instruction)
        return found[-1] if found else (None, None)


def parse(path):
    """[Stage] in file order. Continuation lines are joined; comments dropped."""
    stages = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        start = i
        text = lines[i]
        i += 1
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        while text.rstrip().endswith("\\") and i < len(lines):
            nxt = lines[i]
            i += 1
            if nxt.lstrip().startswith("#"):
                continue
            text = text.rstrip()[:-1] + " " + nxt.strip()
        instruction, _, args = text.strip().partition(" ")
        instruction = instruction.upper()
        args = args.strip()
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, start + 1))
        elif not stages:
            if instruction != "ARG":
                raise ValueError(f"{path}:{start + 1}: {instruction} before the first FROM")
        else:
            stages[-1].instructions.append((instruction, args, start + 1))
    return stages


def exec_form(args):
    """["a", "b"] for JSON (exec) form, or None for shell form."""
    if args.startswith("["):
        value = json.loads(args)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return None


def run_commands(args):
    """The simple commands of a RUN in shell form, split at && ; and |, each as argv."""
    commands, current = [], []
    lexer = shlex.shlex(args, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    for token in lexer:
        if token in ("&&", ";", "||", "|", "&"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


def user_id(stage):
    """The numeric uid of the stage's last USER, or None."""
    args, _ = stage.last("USER")
    if args is None:
        return None
    user = args.split(":")[0]
    return int(user) if user.isdigit() else user
