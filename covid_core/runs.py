"""Run folders: ``runs/<run-id>/`` with config.json, metrics.jsonl, status.json and checkpoints.

Shared by classifier and denoiser training, the CLI and the app's Train page.
Run ids are created with ``mkdir`` (atomic), so two runs started at once never share a folder.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, CovidCoreError
from .outputs import output_file
from .stored_values import section, share

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# What a run folder holds from its first moment (the app's log and launch facts, train.py's config and status); a
# folder with none of them is not a run (a benchmark's work folder, say) and is not listed as one.
RUN_FILES = ("log.txt", "job.json", "config.json", "status.json")


def default_runs_dir() -> Path:
    return Path(os.environ.get("COVID_CORE_RUNS", "runs"))


def new_run_id(prefix: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{prefix}-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id or "") or ".." in run_id:
        raise ConfigError(f"run id {run_id!r} is not allowed; use letters, digits, '-', '_' and '.' only")
    return run_id


@dataclass
class RunDir:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    def started(self) -> float:
        """When the run began, for newest-first lists: job.json (written once when the app starts a job), else
        config.json (written when train.py starts or resumes), else the folder's own time."""
        for name in ("job.json", "config.json", "."):
            try:
                return (self.path / name).stat().st_mtime
            except OSError:
                continue
        return 0.0

    @classmethod
    def create(cls, runs_dir: str | Path, run_id: str) -> "RunDir":
        path = Path(runs_dir) / check_run_id(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            # The app pre-creates the folder to hold the log; accept it only while it holds no run yet.
            if (path / "config.json").exists():
                raise ConfigError(f"run folder {path} already exists; choose another run id") from None
        return cls(path)

    @classmethod
    def for_resume(cls, path: str | Path) -> tuple["RunDir", dict]:
        """(the run folder, its saved config dict) of a run to continue; ConfigError if it is none."""
        run_dir = cls(Path(path))
        saved = run_dir.read_json("config.json")
        if saved is None:
            found = (Path(path) / "config.json").is_file()
            raise ConfigError(f"{path} is not a run folder: " + (
                "its config.json is damaged (not a run's settings)" if found else "it has no config.json"))
        return run_dir, saved

    def write_json(self, name: str, obj) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(obj, indent=2, default=str))
        os.replace(tmp, self.path / name)

    def read_json(self, name: str, default=None):
        """The JSON object in ``name`` as a dict; ``default`` when the file is missing or unreadable, or holds
        anything but an object (every file of a run folder holds one: a list or a number there is damage)."""
        try:
            found = json.loads((self.path / name).read_text())
        except (OSError, ValueError, RecursionError):
            return default
        return found if isinstance(found, dict) else default

    def append_metrics(self, row: dict) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row, default=float) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def metrics(self) -> list[dict]:
        """One dict per line of metrics.jsonl that holds one; a line cut by a kill, or holding anything else, is
        left out."""
        rows = []
        try:
            for line in (self.path / "metrics.jsonl").read_text(errors="replace").splitlines():
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(row, dict):
                    rows.append(row)
        except OSError:
            pass
        return rows

    def keep_metrics_through(self, epoch: int) -> list[dict]:
        """Rewrite metrics.jsonl with one row per epoch 1..epoch (the last copy wins); returns the rows."""
        by_epoch = {r["epoch"]: r for r in self.metrics() if isinstance(r.get("epoch"), int) and r["epoch"] <= epoch}
        rows = [by_epoch[e] for e in sorted(by_epoch)]
        tmp = self.path / ".metrics.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in rows))
        os.replace(tmp, self.path / "metrics.jsonl")
        return rows

    def set_status(self, state: str, **fields) -> None:
        status = self.read_json("status.json", {})
        status.update(fields, state=state, updated=time.time(), pid=os.getpid())
        self.write_json("status.json", status)

    @contextmanager
    def failure_recorded(self, enabled: bool = True):
        """Mark the run "failed", with the error's message, when the block raises (a CovidCoreError such as a
        missing data folder or a malformed CSV, or any crash, named in one sentence), then re-raise it: the Train page then says why, instead of showing a
        "stopped" run and offering to resume one that can never start."""
        try:
            yield
        except CovidCoreError as exc:
            if enabled:
                self.set_status("failed", error=str(exc))
            raise
        except Exception as exc:  # any other crash: its real cause in one sentence, never "stopped, resume it"
            if enabled:
                first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
                self.set_status("failed", error=f"training failed: {type(exc).__name__}: {first[:300]} (the log "
                                                "has the details)")
            raise

    def test_figures(self) -> dict:
        """The finished run's TEST figures from result.json, each a number from 0 to 1 or None: ``accuracy``,
        ``macro_auc`` and the COVID-19 operating point's ``sensitivity`` and ``specificity``. Empty without
        TEST metrics."""
        result = self.read_json("result.json", {})
        test, at = (section(result, key).get("test") for key in ("metrics", "threshold"))
        if not isinstance(test, dict) or not test:
            return {}
        at = at if isinstance(at, dict) else {}
        return {"accuracy": share(test.get("accuracy")), "macro_auc": share(test.get("macro_auc")),
                "sensitivity": share(at.get("sensitivity")), "specificity": share(at.get("specificity"))}

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "last.pt"

    def resume_state(self) -> dict | None:
        """The training state saved after the last finished epoch (``last.pt``), or None if there is none or
        it cannot be read (a kill while it was written leaves the previous one, or nothing)."""
        from .checkpoint import load_checkpoint_dict
        from .errors import CheckpointError

        if not self.last_checkpoint.is_file():
            return None
        try:
            return load_checkpoint_dict(self.last_checkpoint)
        except CheckpointError:
            return None

    def publish(self, out: str | Path | None) -> None:
        """Copy the best checkpoint to ``out`` (e.g. weights/resnet18.pt) atomically; nothing when ``out`` is unset."""
        if not out:
            return
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.copyfile(self.best_checkpoint, tmp)
        os.replace(tmp, out)


def open_run(config, resume: str | None, from_dict, prefix: str, create: bool = True) -> tuple[RunDir, object]:
    """(run folder, config) of a training run, shared by the classifier and denoiser trainers.

    With ``resume`` the folder's saved config replaces ``config`` (read back with ``from_dict``); otherwise
    ``config.runs_dir`` and ``config.run_id`` get their defaults and the folder is created (``create=False``:
    another process, rank 0 under torchrun, creates it).
    """
    if resume:
        run_dir, saved = RunDir.for_resume(resume)
        config = from_dict(saved)
        try:
            config.validate(resumed=True)
        except (ConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"{resume}: its saved settings are damaged ({exc}); start a new run") from exc
        return run_dir, config
    config.runs_dir = config.runs_dir or str(default_runs_dir())
    config.run_id = config.run_id or new_run_id(prefix)
    if create:
        return RunDir.create(config.runs_dir, config.run_id), config
    return RunDir(Path(config.runs_dir) / config.run_id), config


def hardware_description(device=None) -> str:
    """The GPU's name, or the CPU count, torch threads and host, for a checkpoint's ``hardware``."""
    import socket

    import torch

    if device is not None and getattr(device, "type", device) == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU x{os.cpu_count()} ({torch.get_num_threads()} threads) on {socket.gethostname()}"


def list_runs(runs_dir: str | Path | None = None) -> list[RunDir]:
    root = Path(runs_dir or default_runs_dir())
    if not root.is_dir():
        return []
    return sorted((RunDir(p) for p in root.iterdir() if p.is_dir() and RUN_ID_PATTERN.match(p.name)
                   and holds_run_files(p)), key=lambda r: (r.started(), r.id), reverse=True)


def holds_run_files(folder: Path) -> bool:
    """Whether ``folder`` holds any of RUN_FILES, as every run's folder does."""
    return any((Path(folder) / name).is_file() for name in RUN_FILES)


def stop_on_sigterm():
    """A should_stop callable for a training loop that turns true on SIGTERM (the app's cancel button): the run
    finishes its current step and evaluates what it has."""
    import signal

    stopped = {"flag": False}

    def handler(signum, frame):
        stopped["flag"] = True

    signal.signal(signal.SIGTERM, handler)
    return lambda: stopped["flag"]


def run_from_command_line(train, config, args, describe, check_data) -> int:
    """A trainer (``run`` or ``run_dae``) started by train.py: unless resuming, the config validated and the data
    checked (``check_data()``) before a run folder is made, so a wrong folder leaves no failed run behind; one line
    per epoch (``describe(row)``), a clean stop on SIGTERM, the best checkpoint's path at the end."""
    if not args.resume:
        config.validate()
        if config.out:
            output_file(config.out)  # a copy the run could not write would be found out only after training
        # The Train page makes a run's folder (its log, its launch facts) before the run starts: that folder is
        # told why the run could not start. From the command line, no folder is made for such a run.
        made = Path(config.runs_dir or default_runs_dir()) / check_run_id(config.run_id) if config.run_id else None
        with RunDir(made).failure_recorded() if made and made.is_dir() else nullcontext():
            check_data()
    best = train(config, on_epoch=lambda row: print(describe(row), flush=True), should_stop=stop_on_sigterm(),
                 progress=not args.quiet, resume=args.resume)
    print(f"best checkpoint: {best}")
    return 0
