"""Starting a process from its settings: its command line, and one-line errors at start.

`SettingsParser` lists the settings a process reads in `--help`, each with its environment
variable and default. Anything wrong at start (a value, a file a setting names, a store that will
not open) is a `StartupError`; `exit_on_error` turns it into one line on stderr and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from crm.errors import InvalidInput, PersistenceError
from crm.setting import Setting, SettingError, StartupError
from crm.settings import Settings, resolve, used


class SettingsParser(argparse.ArgumentParser):
    """A command line of the settings a process reads (plus its own arguments, if any).

    Usage errors are one line on stderr and exit status 2, like a wrong setting.
    """

    def __init__(self, prog: str, description: str | None, uses: Sequence[Setting[Any]]) -> None:
        super().__init__(
            prog=prog,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="Each flag wins over its environment variable, which wins over the default.\n"
            "A wrong value stops the process at start with one line on stderr, exit status 2.",
        )
        self.uses = used(uses)
        group = self.add_argument_group("settings (flag, environment variable, default)")
        for setting in self.uses:
            shown = setting.default or "none"
            group.add_argument(
                setting.flag,
                dest=setting.name,
                metavar=setting.metavar,
                default=None,
                help=f"{setting.help} [{setting.env}; default: {shown}]".replace("%", "%%"),
            )

    def settings(
        self, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> tuple[Settings, argparse.Namespace]:
        """The settings (a wrong one raises SettingError) and the parsed command line."""
        args = self.parse_args(argv)
        flags = {s.name: getattr(args, s.name) for s in self.uses}
        flags = {name: text for name, text in flags.items() if text is not None}
        return resolve(self.uses, flags, os.environ if environ is None else environ), args

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


@contextmanager
def attributed_to(setting: Setting[Any] | str, subject: object = None) -> Iterator[None]:
    """Errors from using a setting's value (opening its store, reading its file) as its error.

    A string names an option that is not a setting (a tool's own argument).
    """
    try:
        yield
    except (InvalidInput, PersistenceError, OSError) as exc:
        problem = str(exc)
        if isinstance(exc, InvalidInput) and isinstance(setting, Setting):
            problem = problem.removeprefix(f"{setting.name}: ")
        if isinstance(exc, OSError) and exc.strerror:
            problem = exc.strerror if exc.filename is None else f"{exc.strerror}: {exc.filename}"
        if subject is not None and str(subject) not in problem:
            problem = f"{subject}: {problem}"
        if isinstance(setting, Setting):
            raise SettingError(setting, problem) from None
        raise StartupError(f"{setting}: {problem}") from None


@contextmanager
def exit_on_error(prog: str) -> Iterator[None]:
    """A StartupError in the block ends the process: one line on stderr, exit status 2."""
    try:
        yield
    except StartupError as exc:
        line = " ".join(str(exc).splitlines())
        sys.stderr.write(f"{prog}: {line}\n")
        raise SystemExit(2) from None
