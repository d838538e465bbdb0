"""The documents (README.md and docs/**/*.md) name only what exists.

- every `make <target>` is a target of the Makefile;
- every `switchboard <command> [subcommand] [--option]` is one the command line has (read from
  lib.cli's click objects, not from a list kept here);
- every environment variable is one the code reads (collected from the code: Python string
  literals, and the variables of the Makefile, shell scripts and deploy/ files);
- every repository path and `lib.…` module name in code is there;
- every relative link leads to a file, and every #anchor to a heading of it.

Names are looked for in code (inline `code` and fenced blocks), where the documents write
commands, paths and variables. Shell variables of examples (`$SECRET`) are not environment
variables the code reads, so `$NAME` is left out. The tests the documents cite are checked by
tests/test_readme.py.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from textwrap import dedent

import click

from tests.test_readme import documents

ROOT = Path(__file__).resolve().parent.parent


# --- Reading markdown -----------------------------------------------------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)


@dataclass(frozen=True)
class Document:
    name: str  # relative to the root, e.g. docs/using.md
    path: Path
    text: str

    @classmethod
    def read(cls, path: Path, root: Path) -> Document:
        return cls(path.relative_to(root).as_posix(), path, path.read_text(encoding="utf-8"))

    def prose(self) -> str:
        """The text with every fenced block's lines blanked (so line numbers still count)."""
        lines, fenced = [], False
        for line in self.text.splitlines():
            if FENCE.match(line):
                fenced = not fenced
                lines.append("")
            else:
                lines.append("" if fenced else line)
        return "\n".join(lines)

    def fenced(self) -> Iterator[tuple[int, str]]:
        """Each line of the fenced blocks, with a shell's `\\` continuation lines joined to it."""
        fenced, pending, start = False, "", 0
        for number, line in enumerate(self.text.splitlines(), start=1):
            if FENCE.match(line):
                fenced = not fenced
                continue
            if not fenced:
                continue
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            yield start, pending + line
            pending = ""

    def spans(self) -> Iterator[tuple[int, str]]:
        """Each inline code span outside fenced blocks, on one line."""
        prose = self.prose()
        for match in INLINE_CODE.finditer(prose):
            yield prose.count("\n", 0, match.start()) + 1, " ".join(match.group(2).split())

    def code(self) -> Iterator[tuple[int, str]]:
        """Everything written as code: inline spans and fenced lines."""
        yield from self.spans()
        yield from self.fenced()

    def where(self, line: int) -> str:
        return f"{self.name}:{line}"


def read_documents(root: Path) -> list[Document]:
    return [Document.read(path, root) for path in documents(root)]


# --- make targets ---------------------------------------------------------------------------------

MAKE = re.compile(r"(?<![\w./-])make\s+([a-z][\w-]*)(?![\w=])")
RULE = re.compile(r"^([A-Za-z][\w-]*)\s*:(?!=)", re.MULTILINE)


def make_targets(root: Path) -> set[str]:
    return set(RULE.findall((root / "Makefile").read_text(encoding="utf-8")))


def make_problems(root: Path) -> list[str]:
    targets = make_targets(root)
    return [
        f"{doc.where(line)}: make {target}: no such target in the Makefile"
        for doc in read_documents(root)
        for line, code in doc.code()
        for target in MAKE.findall(code)
        if target not in targets
    ]


# --- switchboard commands -------------------------------------------------------------------------

COMMAND = re.compile(r"(?<![\w@:.-])(?:switchboard|python -m lib)(?=\s)")
NAME = re.compile(r"^[a-z][a-z0-9-]*(?:\|[a-z][a-z0-9-]*)*$")
OPTION = re.compile(r"^-{1,2}[A-Za-z][\w-]*")
STOP = ("#", ">", "2>", ";", "&&", "||")


def _sub(group: click.Command, name: str) -> click.Command | None:
    if not isinstance(group, click.Group):
        return None
    with click.Context(group) as ctx:
        return group.get_command(ctx, name)


def _options(command: click.Command) -> set[str]:
    with click.Context(command) as ctx:
        return {
            opt
            for param in command.get_params(ctx)
            if isinstance(param, click.Option)
            for opt in (*param.opts, *param.secondary_opts)
        }


def _segments(words: list[str]) -> list[list[str]]:
    """The alternatives of a usage line: words split at each `|` outside brackets."""
    segments: list[list[str]] = [[]]
    depth = 0
    for word in words:
        if word == "|" and depth == 0:
            segments.append([])
            continue
        depth += word.count("[") - word.count("]")
        segments[-1].append(word)
    return segments


def _check_options(words: Iterable[str], command: click.Command, path: str) -> Iterator[str]:
    known = _options(command)
    for word in words:
        for part in word.strip("[]()\"'").split("/"):
            option = OPTION.match(part)
            if option and option.group(0) not in known:
                yield f"`{path}` has no option {option.group(0)}"


def _usage_problems(words: list[str], root: click.Command) -> Iterator[str]:
    """What in one `switchboard …` usage is not in the command line. Its alternatives (`a | b`)
    are sibling subcommands when they start with a name, else more of the same command."""
    parent, leaf, path = root, root, "switchboard"
    for number, segment in enumerate(_segments(words)):
        rest = list(segment)
        if number > 0 and rest and NAME.match(rest[0]):
            leaf, path = parent, path.rsplit(" ", 1)[0]
        while rest and isinstance(leaf, click.Group) and NAME.match(rest[0]):
            names = rest.pop(0).split("|")
            found = [(name, _sub(leaf, name)) for name in names]
            missing = [name for name, command in found if command is None]
            if missing:
                yield f"`{path}` has no command {', '.join(missing)}"
                return
            *others, (name, command) = found  # `disable|enable`: the options are each one's
            for other_name, other in others:
                yield from _check_options(rest, other, f"{path} {other_name}")
            parent, leaf, path = leaf, command, f"{path} {name}"
        yield from _check_options(rest, leaf, path)


def usages(code: str) -> Iterator[list[str]]:
    """The words after each `switchboard` (or `python -m lib`) in a piece of code, up to a
    comment, a redirection or the next command; a `$(…)` in it is the shell's, not ours."""
    for match in COMMAND.finditer(code):
        words = []
        for word in re.sub(r"\$\([^)]*\)", "", code[match.end() :]).split():
            if word.startswith(STOP) or word in ("switchboard", "|switchboard"):
                break
            words.append(word)
        yield words


def command_problems(root: Path, cli: click.Command) -> list[str]:
    return [
        f"{doc.where(line)}: {problem}"
        for doc in read_documents(root)
        for line, code in doc.code()
        for words in usages(code)
        for problem in _usage_problems(words, cli)
    ]


# --- environment variables ------------------------------------------------------------------------

# A variable in the documents: CAPITALS with an underscore (SWITCHBOARD_WORKER, SIM_PORT), a
# prefix with a wildcard (SWITCHBOARD_METRICS_*), or any CAPITALS given a value (PORT=8502, CI=true).
# Not after `$`: `$SECRET` is an example's shell variable.
VARIABLE = re.compile(r"(?<![\w$.{/-])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)(_\*)?(?![\w*])(=)?")
SHELL_VARIABLE = re.compile(
    r"\$\{?([A-Z][A-Z0-9_]*)|\$\(([A-Z][A-Z0-9_]*)\)"
    r"|^\s*(?:export\s+|ENV\s+)?([A-Z][A-Z0-9_]*)\s*[?:]?=(?!=)"
    r"|^\s+([A-Z][A-Z0-9_]*)(?::\s|=)",
    re.MULTILINE,
)
SHELL_FILES = ("Makefile", ".ci/run", "scripts/*.sh", "deploy/**/*")


def variables_named(doc: Document) -> Iterator[tuple[int, str]]:
    """(line, name) of each environment variable the document names; `NAME_*` as `NAME_`."""

    def found(line: int, text: str, assignments_only: bool) -> Iterator[tuple[int, str]]:
        for match in VARIABLE.finditer(text):
            name, wildcard, assigned = match.groups()
            if assigned or (not assignments_only and (wildcard or "_" in name)):
                yield line, name + ("_" if wildcard else "")

    prose = doc.prose()
    for number, line in enumerate(prose.splitlines(), start=1):
        yield from found(number, line, assignments_only=False)
    for number, line in doc.fenced():  # in code blocks only what is given a value
        yield from found(number, line, assignments_only=True)


def _python_files(root: Path) -> Iterator[Path]:
    for pattern in ("lib/**/*.py", "scripts/**/*.py", "bench/**/*.py", "tests/**/*.py", "*.py"):
        yield from (
            path for path in root.glob(pattern) if "node_modules" not in path.parts and path.name != Path(__file__).name
        )


def variables_read(root: Path) -> set[str]:
    """Every name the code could read from the environment: each string literal in Python
    that is a name in capitals, and each variable the Makefile, the shell scripts and the
    deploy/ files use or set (outside comments)."""
    names: set[str] = set()
    for path in _python_files(root):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"[A-Z][A-Z0-9_]*", node.value)
        }
    for pattern in SHELL_FILES:
        for path in root.glob(pattern):
            if not path.is_file():
                continue
            text = "\n".join(
                line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")
            )
            names |= {name for groups in SHELL_VARIABLE.findall(text) for name in groups if name}
    return names


def variable_problems(root: Path) -> list[str]:
    read = variables_read(root)
    problems = []
    for doc in read_documents(root):
        for line, name in variables_named(doc):
            known = any(r.startswith(name) for r in read) if name.endswith("_") else name in read
            if not known:
                problems.append(
                    f"{doc.where(line)}: {name}{'*' if name.endswith('_') else ''}: "
                    "no code reads this environment variable"
                )
    return problems


# --- paths and module names -----------------------------------------------------------------------

PLACES = ("lib/", "tests/", "scripts/", "bench/", "deploy/", "migrations/", "pages/", "docs/", ".ci/")
FILES = (
    "app.py",
    "serve.py",
    "Makefile",
    "pyproject.toml",
    "requirements.txt",
    "requirements-dev.txt",
    "constraints.txt",
)
MODULE = re.compile(r"^lib(?:\.\w+)+")


@cache
def _top_level_names(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return frozenset(names)


def module_problem(root: Path, dotted: str) -> str | None:
    """Why `lib.a.b[.Name]` names nothing: the longest module prefix, then one name in it."""
    parts = dotted.split(".")
    for size in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:size])
        module = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
        if module is None:
            continue
        rest = parts[size:]
        if rest and rest[0] not in _top_level_names(module):
            return f"{dotted}: {'.'.join(parts[:size])} has no {rest[0]}"
        return None
    return f"{dotted}: no such module"


def path_problem(root: Path, word: str) -> str | None:
    path = word.split("::")[0].strip("()[],;:`\"'").rstrip(".")
    if not (path.startswith(PLACES) or path in FILES):
        return None
    return None if (root / path).exists() else f"{path}: no such file or folder"


def path_problems(root: Path) -> list[str]:
    problems = []
    for doc in read_documents(root):
        for line, code in doc.code():
            for word in code.split():
                module = MODULE.match(word.strip("()[],;:`\"'"))
                problem = module_problem(root, module.group(0)) if module else path_problem(root, word)
                if problem:
                    problems.append(f"{doc.where(line)}: {problem}")
    return problems


# --- links and anchors ----------------------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text in lower case, punctuation dropped, spaces as -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in Document.read(path, path.parent).prose().splitlines():
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problems(root: Path) -> list[str]:
    problems = []
    for doc in read_documents(root):
        prose = INLINE_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), doc.prose())
        for match in LINK.finditer(prose):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: …
                continue
            where = doc.where(prose.count("\n", 0, match.start()) + 1)
            file_part, _, anchor = target.partition("#")
            path = (doc.path.parent / file_part).resolve() if file_part else doc.path
            if not path.is_relative_to(root.resolve()) or not path.exists():
                problems.append(f"{where}: {target}: no such file")
            elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
                problems.append(f"{where}: {target}: no such heading")
    return problems


# --- The project's documents ----------------------------------------------------------------------


def _cli() -> click.Command:
    from lib.cli import cli

    return cli


def test_every_make_target_the_docs_name_exists() -> None:
    assert not make_problems(ROOT), "\n".join(make_problems(ROOT))


def test_every_switchboard_command_and_option_the_docs_name_exists() -> None:
    found = command_problems(ROOT, _cli())
    assert not found, "\n".join(found)


def test_every_environment_variable_the_docs_name_is_read_by_the_code() -> None:
    found = variable_problems(ROOT)
    assert not found, "\n".join(found)


def test_every_path_and_module_the_docs_name_exists() -> None:
    found = path_problems(ROOT)
    assert not found, "\n".join(found)


def test_every_link_and_anchor_in_the_docs_resolves() -> None:
    found = link_problems(ROOT)
    assert not found, "\n".join(found)


def test_the_docs_name_enough_for_these_checks_to_mean_something() -> None:
    """Guards the patterns themselves: documents in which they found nothing would pass."""
    docs = read_documents(ROOT)
    assert sum(1 for doc in docs for _, code in doc.code() for _ in MAKE.findall(code)) >= 10
    assert sum(1 for doc in docs for _, code in doc.code() for _ in usages(code)) >= 50
    assert {name for doc in docs for _, name in variables_named(doc)} >= {
        "SWITCHBOARD_DATABASE_URL",
        "SWITCHBOARD_WORKER",
        "SIM_PORT",
        "PORT",
        "CI",
        "SWITCHBOARD_METRICS_",
    }
    assert sum(1 for doc in docs for match in LINK.finditer(doc.prose()) if "#" in match.group(1)) >= 20
    assert {doc.name for doc in docs} >= {"README.md", "docs/using.md", "docs/operating.md", "docs/developing.md"}


# --- Each check finds a planted mistake -----------------------------------------------------------


def _project(root: Path, readme: str, docs: dict[str, str] | None = None) -> Path:
    (root / "README.md").write_text(dedent(readme), encoding="utf-8")
    for name, text in (docs or {}).items():
        (root / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / name).write_text(dedent(text), encoding="utf-8")
    return root


def test_a_make_target_that_is_not_in_the_makefile_is_named(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("PORT ?= 1\n.PHONY: run\nrun: $(VENV)/.x\n\tstart\n", encoding="utf-8")
    _project(
        tmp_path,
        """\
        `make run PORT=2`, then `make chek`.
        ```sh
        make  run
        make tset  # typo
        ```
        Ordinary words: make sure, make it.
        """,
    )
    assert make_problems(tmp_path) == [
        "README.md:1: make chek: no such target in the Makefile",
        "README.md:4: make tset: no such target in the Makefile",
    ]


def test_a_command_subcommand_or_option_that_is_not_in_the_cli_is_named(tmp_path: Path) -> None:
    @click.group()
    def root() -> None: ...

    @root.group()
    def keys() -> None: ...

    @keys.command()
    def status() -> None: ...

    @keys.command()
    @click.option("--json", is_flag=True)
    def add(json: bool) -> None: ...

    @root.command()
    @click.argument("names", nargs=-1)
    @click.option("--all", "everything", is_flag=True)
    @click.option("-o", "--output")
    def check(names: tuple[str, ...], everything: bool, output: str) -> None: ...

    _project(
        tmp_path,
        r"""
        Fine: `switchboard keys status | add [--json]`, `switchboard check NAME | --all -o F`,
        `switchboard --help`, `.venv/bin/python -m lib …`, `switchboard check --all -o $(date -u).json`.
        ```sh
        printf x | switchboard keys add \
            --json   # a comment --nope
        ```
        Wrong: `switchboard chek`, `switchboard keys status | rotat`, `switchboard keys add --jsn`,
        `switchboard check NAME | --al`, `switchboard keys status|ad`, `switchboard --verbose`.
        """,
    )
    assert command_problems(tmp_path, root) == [
        "README.md:8: `switchboard` has no command chek",
        "README.md:8: `switchboard keys` has no command rotat",
        "README.md:8: `switchboard keys add` has no option --jsn",
        "README.md:9: `switchboard check` has no option --al",
        "README.md:9: `switchboard keys` has no command ad",
        "README.md:9: `switchboard` has no option --verbose",
    ]


def test_an_environment_variable_no_code_reads_is_named(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "config.py").write_text(
        dedent('''\
        """Reads SWITCHBOARD_IN_A_DOCSTRING."""
        import os
        def load(env=os.environ):
            return env.get("SWITCHBOARD_REAL"), env["SWITCHBOARD_METRICS_ALLOW"]
        '''),
        encoding="utf-8",
    )
    (tmp_path / "Makefile").write_text(
        "PORT ?= 8501\n# DOCUMENTED_ONLY_IN_A_COMMENT=1\nrun:\n\techo $(PORT)\n", encoding="utf-8"
    )
    _project(
        tmp_path,
        """\
        Fine: `SWITCHBOARD_REAL`, `SWITCHBOARD_METRICS_*`, `make run PORT=2`,
        ```sh
        printf '%s' "$NEW_SECRET" | x   # ${SWITCHBOARD_REAL}, NOT_CHECKED_IN_A_COMMENT
        ```
        Wrong: SWITCHBOARD_TYPO, `SWITCHBOARD_IN_A_DOCSTRING`, `SWITCHBOARD_NOTHING_*`,
        """,
        {
            "deep/page.md": """\
        ```sh
        export SWITCHBOARD_UNREAD=1
        CI=true make test
        ```
        `DOCUMENTED_ONLY_IN_A_COMMENT`
        """
        },
    )
    assert variable_problems(tmp_path) == [
        "README.md:5: SWITCHBOARD_TYPO: no code reads this environment variable",
        "README.md:5: SWITCHBOARD_IN_A_DOCSTRING: no code reads this environment variable",
        "README.md:5: SWITCHBOARD_NOTHING_*: no code reads this environment variable",
        "docs/deep/page.md:5: DOCUMENTED_ONLY_IN_A_COMMENT: no code reads this environment variable",
        "docs/deep/page.md:2: SWITCHBOARD_UNREAD: no code reads this environment variable",
        "docs/deep/page.md:3: CI: no code reads this environment variable",
    ]


def test_a_path_or_module_that_is_not_there_is_named(tmp_path: Path) -> None:
    (tmp_path / "lib" / "services").mkdir(parents=True)
    (tmp_path / "lib" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "lib" / "services" / "__init__.py").write_text("from x import y as z\n", encoding="utf-8")
    (tmp_path / "lib" / "services" / "status.py").write_text("class Verdict: ...\nMARKS = ()\n", encoding="utf-8")
    _project(
        tmp_path,
        """\
        Fine: `lib/services/status.py`, (`lib/services/`), `lib.services.status.Verdict`,
        `lib.services.z`, `data/demo/`, `lib.services.status.MARKS`.
        ```
        faces    lib/services/, lib/services/status.py:
        ```
        Wrong: `lib/status.py`, `lib.status`, `lib.services.status.Verdicts`, `lib.services.x`.
        ```
          (lib/gone/)
        ```
        """,
    )
    assert path_problems(tmp_path) == [
        "README.md:6: lib/status.py: no such file or folder",
        "README.md:6: lib.status: lib has no status",
        "README.md:6: lib.services.status.Verdicts: lib.services.status has no Verdicts",
        "README.md:6: lib.services.x: lib.services has no x",
        "README.md:8: lib/gone/: no such file or folder",
    ]


def test_a_link_or_anchor_that_leads_nowhere_is_named(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (tmp_path / "outside.md").touch()
    _project(
        root,
        """\
        # Title
        ## What is optional, and what `each` part needs?
        ## Again
        ## Again
        [a](docs/guide.md) [b](docs/guide.md#the-first-admin) [c](#what-is-optional-and-what-each-part-needs)
        [d](#again-1) ![e](docs/guide.md) [f](https://example.com/#x) `[g](nowhere.md)` [l](README.md#title)
        [h](docs/gone.md) [i](docs/guide.md#gone) [j](#again-2) [k](../outside.md)
        """,
        {
            "guide.md": """\
        ## The first admin
        ```
        ## not a heading
        ```
        [m](../README.md#title) [n](guide.md#not-a-heading)
        """
        },
    )
    assert link_problems(root) == [
        "README.md:7: docs/gone.md: no such file",
        "README.md:7: docs/guide.md#gone: no such heading",
        "README.md:7: #again-2: no such heading",
        "README.md:7: ../outside.md: no such file",
        "docs/guide.md:5: guide.md#not-a-heading: no such heading",
    ]
