"""The tuner's study folder (runs/tune-NAME): its lock, its files and the checks on its study.db.

A study folder is the user's, and anything may have been put in it: every file is opened without
following a symbolic link (O_NOFOLLOW), so a link planted in the folder cannot make the tuner
truncate, overwrite or append to a file elsewhere; a link is refused with one line. Nothing is
half-written: study.json and a new study.db are written under a temporary name in the folder and
renamed into place, and a record is one append of one whole line. A study.db that is not this
study's (empty, another program's SQLite file, a damaged one) is refused before Optuna opens it:
Optuna would silently start a new study in it (writing its tables into somebody's database).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import sqlite3
import stat
import sys
import tempfile
from pathlib import Path

STUDY_FILE = "study.db"
RECORDS_FILE = "trials.jsonl"
LOCK_FILE = "tune.lock"
DESCRIPTION_FILE = "study.json"
TEMPORARY = ".tune-"  # the prefix of a file being written; a killed run's are removed by the next
OWN_FILES = (STUDY_FILE, RECORDS_FILE, LOCK_FILE, DESCRIPTION_FILE)
# Each trial's run folder: its log, and its bundle once it has trained (numbers are the study's, so
# workers of one study never share a name).
TRIAL_FOLDER = re.compile(r"trial-\d{4,}")
TRIAL_LOG, TRIAL_BUNDLE = "trial.log", "bundle"
SQLITE_HEADER = b"SQLite format 3\x00"


class StudyFileError(OSError):
    """A study folder or file the tuner refuses (main prints it as one `error:` line)."""


def open_file(path: Path, flags: int, mode: int = 0o644) -> int:
    """os.open that never follows a symbolic link at `path`; a link is refused with one line."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise StudyFileError(f"{path} is a symbolic link; the tuner writes only its own files") from None
        raise


def check_output_folder(output: Path, shared: bool = False) -> None:
    """A study's folder: new, empty, or a study's; never a bundle or somebody's other folder. A shared
    study's worker folder holds its records and no study.db (the study is in the storage)."""
    if output.is_symlink() and not output.exists():
        raise StudyFileError(f"{output} is a symbolic link to {os.readlink(output)}, which does not exist")
    if output.exists() and not output.is_dir():
        raise StudyFileError(f"{output} exists and is not a folder")
    if not output.exists():
        return
    if (output / "manifest.json").exists():
        raise StudyFileError(f"{output} is a model bundle; give a new folder for the study (runs/tune-NAME)")
    if shared and os.path.lexists(output / STUDY_FILE):
        raise StudyFileError(f"{output} holds a study of its own ({STUDY_FILE}); give another --output with --storage")
    others = [path.name for path in output.iterdir() if not is_own(path)]
    if others and not os.path.lexists(output / STUDY_FILE):
        raise StudyFileError(f"{output} holds other files and no study; give a new folder (runs/tune-NAME)")


def is_temporary(path: Path) -> bool:
    return path.name.startswith(TEMPORARY)


def is_own(path: Path) -> bool:
    """A file or folder the tuner writes in a study's folder."""
    return path.name in OWN_FILES or is_temporary(path) or bool(TRIAL_FOLDER.fullmatch(path.name))


def trial_folder_name(number: int) -> str:
    return f"trial-{number:04d}"


def make_trial_folder(output: Path, number: int) -> Path:
    """A new run folder for trial `number`; one already there (another study's, in a reused --output)
    is refused, never written into."""
    folder = output / trial_folder_name(number)
    try:
        folder.mkdir()
    except FileExistsError:
        raise StudyFileError(
            f"{folder} exists: the folder holds another study's trial; give each study its own --output"
        ) from None
    return folder


class Tee:
    """A text stream writing to a console stream and to a log file (both flushed at once)."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.log.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.log.flush()
        self.stream.flush()

    def isatty(self) -> bool:
        return False  # Keras then writes one line an epoch, not a redrawn progress bar

    def __getattr__(self, name):
        return getattr(self.stream, name)  # encoding, fileno, ...: the console's


@contextlib.contextmanager
def trial_log(folder: Path):
    """Everything the trial prints (the tuner's lines, Keras' epoch lines) also goes to folder/trial.log."""
    descriptor = open_file(folder / TRIAL_LOG, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(descriptor, "w", encoding="utf-8") as log:
        out, err = Tee(sys.stdout, log), Tee(sys.stderr, log)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield


def make_folder(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file or a dangling link appeared since check_output_folder
        raise StudyFileError(f"{output} exists and is not a folder") from None


@contextlib.contextmanager
def study_lock(output: Path):
    """One tuner at a time on a folder: a trial left running is then known to be dead. The lock file
    is opened, never truncated (its content is nothing), and the files a killed run was writing go."""
    descriptor = open_file(output / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StudyFileError(f"another training.tune is running on {output}") from None
        for name in OWN_FILES:
            if (output / name).is_symlink():  # refused before anything is written, not at the first record
                raise StudyFileError(f"{output / name} is a symbolic link; the tuner writes only its own files")
        for leftover in output.glob(TEMPORARY + "*"):
            leftover.unlink(missing_ok=True)  # removes a link itself, never its target
        yield
    finally:
        os.close(descriptor)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temporary file in its folder, synced, renamed over it (a
    link at `path` is replaced, never written through)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=TEMPORARY + path.name + ".")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_description(output: Path, description: dict) -> None:
    write_atomically(output / DESCRIPTION_FILE, (json.dumps(description, indent=1) + "\n").encode())


def append_line(output: Path, line: str) -> None:
    """Append one record to trials.jsonl in one write. A last line left without its newline (a power
    cut mid-write) is ended first, so the new record stays a line of its own."""
    descriptor = open_file(output / RECORDS_FILE, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        size = os.fstat(descriptor).st_size
        torn = size > 0 and os.pread(descriptor, 1, size - 1) != b"\n"
        os.write(descriptor, (("\n" if torn else "") + line + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_records(output: Path) -> list[dict]:
    """The records of trials.jsonl; a torn line (cut by a power cut) is skipped."""
    path = output / RECORDS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def check_study_db(path: Path, study_name: str) -> None:
    """Refuse a study.db that is not a training.tune study, before Optuna opens it (Optuna would
    start a new study in an empty or foreign file, and a damaged one ends in a SQLAlchemy traceback)."""
    descriptor = open_file(path, os.O_RDONLY)  # refuses a link
    not_ours = f"{path} is not this tuner's study ({{}}); move it away, or give another --output"
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise StudyFileError(not_ours.format("not a file"))
    with os.fdopen(descriptor, "rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise StudyFileError(not_ours.format("empty" if not header else "not a SQLite database"))
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise StudyFileError(not_ours.format(f"damaged: {problems[0]}"))
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            names = (
                {row[0] for row in connection.execute("SELECT study_name FROM studies")} if "studies" in tables else ()
            )
    except sqlite3.DatabaseError as error:
        raise StudyFileError(not_ours.format(f"damaged: {error}")) from None
    if study_name not in names:
        raise StudyFileError(not_ours.format("another program's SQLite database, holding no tuner study"))


def create_study_db(output: Path, create) -> None:
    """A new study.db, whole or not at all: `create(url)` makes the study in a temporary file, which
    is then renamed into place (a study.db cut short would refuse the command run again)."""
    descriptor, temporary = tempfile.mkstemp(dir=output, prefix=TEMPORARY + STUDY_FILE + ".")
    os.close(descriptor)
    try:
        create(sqlite_url(Path(temporary)))
        os.replace(temporary, output / STUDY_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"
