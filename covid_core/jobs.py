"""Training jobs that outlive the app: ``python train.py ...`` started as its own process.

The command is an argument list (never a shell), built from a validated
:class:`covid_core.training.TrainConfig`. Each job gets its own ``runs/<run-id>/`` folder
(created atomically by :func:`covid_core.runs.new_run_id` + ``mkdir``), with stdout and
stderr in ``log.txt`` and the launch facts in ``job.json``. The process runs in a new
session so that reloading the page or stopping the app server does not kill it.
Cancelling sends SIGTERM; train.py then finishes the current step and evaluates cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .datasets import check_training_data
from .errors import ConfigError
from .formatting import code_span, markdown_plain
from .runs import RunDir, check_run_id, default_runs_dir, holds_run_files, list_runs, new_run_id
from .flags import config_argv
from .stored_values import finite, whole
from .training import RUN_FLAGS, TRAIN_FLAGS, TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO_ROOT / "train.py"
TASKS = ("classify", "denoise")
ACTIVE_STATES = ("starting", "preparing", "running", "evaluating")
KNOWN_STATES = (*ACTIVE_STATES, "finished", "failed", "cancelled")  # what train.py writes in status.json

# Popen objects of jobs this process started, so finished children are reaped (no zombies).
_CHILDREN: dict[str, subprocess.Popen] = {}


@dataclass
class Job:
    """A run folder seen as a job.

    state: starting | preparing | running | evaluating | finished | failed | cancelled | stopped
    ("stopped": the status says running but its process is gone, e.g. killed or machine restarted).
    progress: fraction in [0, 1] of the planned steps done.
    """

    run_id: str
    path: Path
    state: str
    task: str = "classify"
    status: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    pid: int | None = None
    started: float | None = None
    progress: float = 0.0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    def settings_text(self) -> str:
        """The run's main settings in one line, e.g. "resnet18 · target 3class · 12 epochs · batch 32 · ..."."""
        c = {k: markdown_plain(v) for k, v in self.config.items()}  # Markdown: the run folder's words as they are
        data = code_span(self.config.get("data"))
        epochs = f"{c.get('epochs')} epoch{'' if c.get('epochs') == '1' else 's'}"
        if self.task == "denoise":
            return (f"denoiser · {epochs} of {c.get('steps_per_epoch')} steps · batch "
                    f"{c.get('batch_size')} · lr {c.get('lr')} · data {data}")
        return (f"{c.get('model', '')} · target {c.get('target', '')} · {epochs} · batch "
                f"{c.get('batch_size')} · lr {c.get('lr')} · data {data}")

    def progress_text(self) -> str:
        """Where an active run is, e.g. "epoch 3/12, step 40/58, loss 0.4123"."""
        s = self.status
        text = f"epoch {s.get('epoch', 0)}/{s.get('epochs', '?')}"
        if s.get("steps"):
            text += f", step {s.get('step', 0)}/{s['steps']}"
        if s.get("loss") is not None:
            text += f", loss {s['loss']:.4f}"
        return text


def build_command(config: TrainConfig, task: str = "classify") -> list[str]:
    """The argument list for train.py (the interpreter running this code): the run's place, then the
    recipe's settings that differ from the defaults. A denoiser run gets only what it shares with the form
    (data, seed, image size, limit); it trains with its own epochs, batch and learning rate (DAETrainConfig)."""
    argv = config_argv(config, RUN_FLAGS, TrainConfig(), always=("data", "layout", "device", "workers", "runs_dir",
                                                                 "run_id"))
    if task == "classify":
        argv += config_argv(config, TRAIN_FLAGS, TrainConfig(), always=("model", "target", "epochs", "batch_size",
                                                                        "lr", "seed"))
    else:
        argv += config_argv(config, tuple(f for f in TRAIN_FLAGS if f.field in ("image_size", "limit", "seed")),
                            TrainConfig(), always=("seed",))
    return [sys.executable, str(TRAIN_SCRIPT), "--task", task, *argv, "--quiet"]


def start_training(config: TrainConfig, task: str = "classify", runs_dir: str | Path | None = None) -> Job:
    """Validate ``config`` and start train.py in the background; returns the new Job.

    Raises ConfigError (nothing is started) for an unknown task, invalid values or a
    missing data folder.
    """
    _check_task(task)
    config.validate()
    return _launch(config, task, runs_dir)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")


def _launch(config: TrainConfig, task: str, runs_dir: str | Path | None) -> Job:
    """Start a run of a validated ``config``."""
    try:
        return _start(config, task, runs_dir)
    except OSError as exc:  # a path the file system refuses (too long, unreadable...): a message, not a traceback
        raise ConfigError(f"could not start the run: {exc.strerror or exc}; check the data folder and the runs "
                          "folder") from None


def start_from_form(config: TrainConfig, data: str, task: str = "classify") -> Job:
    """The Train form's start: the data folder (which must lie under an allowed data root) becomes
    ``config.data``, then the run starts as :func:`start_training` starts it. Every problem of the folder and the
    values is raised at once, in one ConfigError, so a form is fixed in one go; nothing is started then."""
    from .data_roots import check_data_folder
    from .errors import CovidCoreError

    _check_task(task)
    problems = []
    try:
        config.data = str(check_data_folder(data))
    except CovidCoreError as exc:
        config.data = ""
        problems.append(str(exc))
    try:
        config.validate()
    except ConfigError as exc:
        problems.insert(0, str(exc))
    if problems:
        raise ConfigError("; ".join(problems))
    return _launch(config, task, None)


def max_active_jobs() -> int:
    """How many training jobs may run at once: $COVID_XRAY_MAX_JOBS, default 1 (2 CPU cores are
    saturated by one run; two torch processes on them thrash each other), or one per GPU."""
    value = os.environ.get("COVID_XRAY_MAX_JOBS")
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise ConfigError(f"COVID_XRAY_MAX_JOBS={value!r} is not a whole number") from None
    import torch

    return max(1, torch.cuda.device_count())


def _start(config: TrainConfig, task: str, runs_dir) -> Job:
    if not config.data or not Path(config.data).expanduser().is_dir():
        raise ConfigError(f"data folder {config.data!r} does not exist; give the folder that holds the data set")
    config.data = str(Path(config.data).expanduser().resolve())
    check_training_data(config.data, config.layout, config.target if task == "classify" else None,
                        config.holdout_source if task == "classify" else "")
    root = Path(runs_dir or config.runs_dir or default_runs_dir()).resolve()
    limit = max_active_jobs()
    active = [j.run_id for j in list_jobs(root) if j.active] if root.is_dir() else []
    if len(active) >= limit:
        raise ConfigError(f"{len(active)} training run{'s are' if len(active) > 1 else ' is'} already running "
                          f"({', '.join(active[:3])}); at most {limit} at once on this machine. Wait for it to "
                          "finish or cancel it")
    root.mkdir(parents=True, exist_ok=True)
    prefix = "dae" if task == "denoise" else config.model
    run_id = config.run_id and check_run_id(config.run_id)
    # mkdir is atomic: two jobs started in the same second still get different folders.
    for _ in range(20):
        run_id = run_id or new_run_id(prefix)
        try:
            (root / run_id).mkdir()
            break
        except FileExistsError:
            if config.run_id:
                raise ConfigError(f"run folder {root / run_id} already exists; choose another run id") from None
            run_id = None
    else:
        raise ConfigError(f"could not create a new run folder in {root}")
    config.run_id, config.runs_dir = run_id, str(root)
    path = root / run_id
    cmd = build_command(config, task)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(path / "log.txt", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(REPO_ROOT), env=env, start_new_session=True, close_fds=True)
    _CHILDREN[run_id] = proc
    started = time.time()
    (path / "job.json").write_text(json.dumps({"pid": proc.pid, "task": task, "command": cmd, "started": started},
                                              indent=2))
    return read_job(path)


def _reap() -> None:
    for run_id, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[run_id]


def _alive(pid: int | None, run_id: str) -> bool:
    """True if ``pid`` is a live (non-zombie) process whose command line names ``run_id``."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return False
        return run_id.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        pass
    try:  # no /proc (macOS): fall back to a signal-0 probe
        os.kill(pid, 0)
        return True
    except (OSError, ProcessLookupError):
        return False


def read_job(path: str | Path) -> Job:
    """The job in run folder ``path`` with its current state. A file of the folder that is damaged, or holds values
    of the wrong kind, counts as missing (its state then "unknown" or "failed"), so one such folder never hides the
    other runs."""
    _reap()
    run = RunDir(Path(path))
    status = run.read_json("status.json", {})
    launch = run.read_json("job.json", {})
    config = run.read_json("config.json", {})
    for key in ("epoch", "epochs", "step", "steps"):
        if key in status:
            status[key] = whole(status[key])
    if "loss" in status:
        status["loss"] = finite(status["loss"])
    launch_pid = whole(launch.get("pid"))
    pid = whole(status.get("pid")) or launch_pid
    state = status.get("state")
    if state is None:
        state = "starting" if _alive(launch_pid, run.id) else ("failed" if launch else "unknown")
    elif state not in KNOWN_STATES:
        state = "unknown"
    elif state in ACTIVE_STATES and not (_alive(pid, run.id) or _alive(launch_pid, run.id)):
        state = "stopped"
    task = launch.get("task") if launch.get("task") in TASKS else (
        "denoise" if status.get("kind") in ("dae", "denoiser") else "classify")
    progress = 0.0
    epochs, epoch = status.get("epochs") or whole(config.get("epochs")), status.get("epoch") or 0
    if state == "finished":
        progress = 1.0
    elif epochs:
        steps, step = status.get("steps") or 0, status.get("step") or 0
        done_epochs = max(epoch - 1, 0) + (step / steps if steps else (1 if epoch else 0))
        progress = float(min(max(done_epochs / epochs, 0.0), 1.0))
    started = finite(launch.get("started"))
    return Job(run_id=run.id, path=run.path, state=state, task=task, status=status, config=config,
               pid=pid, started=started, progress=progress)


def list_jobs(runs_dir: str | Path | None = None) -> list[Job]:
    """Every run folder as a Job, newest first."""
    return [read_job(r.path) for r in list_runs(runs_dir or default_runs_dir())]


def tail_log(job: Job, lines: int = 40, max_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of the job's log (progress-bar carriage returns folded)."""
    try:
        with open(job.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    rows = [ln.rsplit("\r", 1)[-1] for ln in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(rows[-lines:]).strip("\n")


def cancel(job: Job) -> bool:
    """Ask the job to stop (SIGTERM); returns False if its process is not running."""
    pids = {p for p in (job.pid, whole(RunDir(job.path).read_json("job.json", {}).get("pid"))) if p}
    sent = False
    for pid in pids:
        if _alive(pid, job.run_id):
            try:
                os.kill(pid, signal.SIGTERM)
                sent = True
            except ProcessLookupError:
                pass
    return sent


def delete(job: Job) -> None:
    """Delete a run's folder for good: its checkpoints, log, figures and any site file beside its model. Refuses
    (ConfigError) a run that is still going, which must be cancelled first, and a folder that is not a run's."""
    current = read_job(job.path)
    if current.active:
        raise ConfigError(f"run {job.run_id} is still {current.state}; cancel it, then delete it")
    if not holds_run_files(job.path):
        raise ConfigError(f"{job.path} holds none of a run's files; it was not deleted")
    shutil.rmtree(job.path)


def wait(job: Job, timeout_s: float = 600, poll_s: float = 0.5) -> Job:
    """Block until the job is no longer active (for tests and scripts); returns its final state."""
    deadline = time.time() + timeout_s
    while True:
        job = read_job(job.path)
        if not job.active or time.time() > deadline:
            return job
        time.sleep(poll_s)
