"""Atomic, complete checkpoints: one directory per save, refused on load unless whole.

Layout of ``<run>/checkpoints/step-000123456/``::

    model.keras        the policy network (loads with keras.saving.load_model), for people and programs
    online.npz         online network weights, in get_weights() order (what resuming reads)
    target.npz         target network weights, same order
    average.npz        the moving average of the online weights, same order, only when the
                       agent keeps one (agent.policy_average_steps); it is then the policy
    optimizer.npz      Adam variables (iteration count and moments), in optimizer.variables order
    state.json         counters, every RNG state, per-env episode states, running accumulators;
                       under "agent" the agent's own counters (updates, exploration RNG)
    config.json        the resolved config
    replay/            the replay memory (latest checkpoint only, when enabled)
    COMPLETE           written last: its presence is the promise that everything above is whole

Beside them: ``checkpoints/latest`` (a text file naming the newest) and
``checkpoints/best/`` (the best model by evaluation score, without replay).

Playing and evaluating need less: :func:`load_policy` reads only ``model.keras`` (or
``average.npz``, else ``online.npz``), ``state.json``, ``config.json`` and the marker, so a shipped agent
(``save/pretrained/``) carries no target network or optimizer state (most of a
checkpoint's bytes besides the replay).

The arrays and the "agent" counters are the agent's :class:`TrainingState`, which this
module stores part by part without knowing the agent's attributes. Checkpoints written
before ``online.npz`` existed are read from ``model.keras`` instead.

Writing goes into a temporary sibling, every file is fsynced, the directory renamed,
then the marker written and fsynced (Dopamine's sentinel files are the model). A crash
at any moment leaves either a complete checkpoint or one without a marker, which
loading refuses and the next save cleans up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import config as C
from mario_dqn.training_state import StateMismatch, TrainingState

MARKER = "COMPLETE"
PREFIX = "step-"
REQUIRED = ("model.keras", "target.npz", "optimizer.npz", "state.json", "config.json")
"""Files every checkpoint has (``online.npz`` too since it exists; see the module docstring)."""
PART_FILES = {"online": "online.npz", "target": "target.npz", "optimizer": "optimizer.npz",
              "average": "average.npz"}
"""Where each array part of a :class:`TrainingState` is stored (an empty part is not written)."""
POLICY_FILES = ("model.keras", "state.json", "config.json")
"""What :func:`load_policy` needs (``average.npz``, else ``online.npz``, is read instead of the
model when present)."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, partial, corrupt or does not match the config."""


class CheckpointWriteError(OSError):
    """Saving failed (disk full, unwritable directory...); the message is one line that
    names the checkpoint and the cause. By the time it is raised the half-written
    temporary directory is gone and every earlier complete checkpoint is untouched."""


STATE_FORMAT_VERSION = 1
"""``state.json`` carries this as ``format_version``; a checkpoint of another version is
refused instead of half-restored. It is the state file's own (it used to borrow the
config's, which was 1 too, so every checkpoint written so far reads as version 1)."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read back; :func:`restore_agent` applies ``training``."""

    path: Path
    config: C.Config
    state: dict[str, Any]
    training: TrainingState

    @property
    def has_replay(self) -> bool:
        return (self.path / "replay").is_dir()


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def step_name(step: int) -> str:
    return f"{PREFIX}{step:012d}"


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file()


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and is_complete(p)]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(directory: Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def save_checkpoint(directory: Path, step: int, agent: Any, state: dict[str, Any], config: C.Config,
                    replay: Any = None, name: str | None = None) -> Path:
    """Write one checkpoint atomically and return its final path.

    ``agent`` provides ``training_state()`` and ``save_model(path)``; ``state`` is the
    runner's own JSON-ready state (counters, env episodes).

    ``name`` overrides the default ``step-<step>`` directory name (used for ``best``,
    which is replaced in place: the new one is complete before the old one goes).
    """
    final = directory / (name or step_name(step))
    tmp = directory / f".tmp-{final.name}-{os.getpid()}"
    old = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        training = agent.training_state()
        agent.save_model(tmp / "model.keras")
        for part, file in PART_FILES.items():
            if getattr(training, part):
                np.savez(tmp / file, *getattr(training, part))
        (tmp / "state.json").write_text(json.dumps({"format_version": STATE_FORMAT_VERSION, "step": step, **state,
                                                    "agent": training.counters}))
        (tmp / "config.json").write_text(C.to_json(config))
        if replay is not None:
            replay.save(tmp / "replay")
        _fsync_tree(tmp)
        if final.exists():  # only for a named checkpoint like `best`
            old = directory / f".old-{final.name}-{os.getpid()}"
            final.rename(old)
        tmp.rename(final)
        (final / MARKER).write_text("ok\n")
        _fsync_tree(final)
        _fsync_dir(directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        # Free the space the half-written copy took (a full disk is the usual cause), and
        # never leave a directory that looks like a checkpoint without being whole.
        shutil.rmtree(tmp, ignore_errors=True)
        if final.is_dir() and not is_complete(final):
            shutil.rmtree(final, ignore_errors=True)
        if old is not None and not final.exists():
            with contextlib.suppress(OSError):
                old.rename(final)  # a replaced `best` comes back as it was
        if isinstance(err, OSError):
            failure = CheckpointWriteError(f"cannot write checkpoint {final}: {_describe(err)}")
            failure.errno = err.errno
            raise failure from err
        raise
    return final


def save_policy(directory: Path, agent: Any, state: dict[str, Any], config: C.Config) -> Path:
    """Write a shipped agent into ``directory`` (created; it must not exist): what
    :func:`load_policy` reads (the policy network as ``model.keras``, ``state.json`` with
    ``state``'s counters, ``config.json``) and the marker, nothing a resume would need.

    For agents that come from a kept model (``<run>/models/``) rather than a complete
    checkpoint: its state has no exploration RNG or update count to give, so ``"agent"``
    is empty, and :func:`load_checkpoint` refuses it for want of ``target.npz``.
    Written into a temporary sibling and renamed, like a checkpoint.
    """
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"{directory} exists")
    tmp = directory.with_name(f".tmp-{directory.name}-{os.getpid()}")
    try:
        tmp.mkdir(parents=True)
        agent.save_model(tmp / "model.keras")
        (tmp / "state.json").write_text(json.dumps({"format_version": STATE_FORMAT_VERSION, **state, "agent": {}}))
        (tmp / "config.json").write_text(C.to_json(config))
        _fsync_tree(tmp)
        tmp.rename(directory)
        (directory / MARKER).write_text("ok\n")
        _fsync_tree(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _describe(err: OSError) -> str:
    """``strerror`` and the file when the OS gave them, else the message (numpy and zipfile
    raise OSErrors like '7056000 requested and 3755904 written' on a full disk)."""
    text = err.strerror or str(err) or type(err).__name__
    if err.filename is not None:
        text = f"{text} ({err.filename})"
    return text


def write_latest_pointer(directory: Path, path: Path) -> None:
    """``checkpoints/latest`` names the newest complete checkpoint, for people and scripts
    (loading does not trust it: it scans for the newest directory with a marker)."""
    tmp = directory / ".latest.tmp"
    tmp.write_text(path.name + "\n")
    os.replace(tmp, directory / "latest")


MODELS_DIR = "models"
"""``<run>/models/``: each checkpoint's policy weights (the online network's, or the weight
average's when the agent keeps one), kept when older checkpoints are
pruned (``runner.keep_models``), as ``step-<step>.weights.h5`` beside a
``step-<step>.json`` with the run's wall seconds, episodes and flags at that step. They
hold no optimizer, target or replay: enough to evaluate, not to resume."""


def keep_model(directory: Path, step: int, agent: Any, info: dict[str, Any]) -> Path:
    """Write the policy weights and ``info`` for ``step`` into ``directory`` (each file
    written under a temporary name, then renamed: a kill leaves no half file)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{step_name(step)}.weights.h5"
    tmp = directory / f".partial-{final.name}"  # Keras wants the .weights.h5 ending
    try:
        agent.save_weights(tmp)
        os.replace(tmp, final)
        meta = directory / f".partial-{step_name(step)}.json"
        meta.write_text(json.dumps({"step": step, **info}))
        os.replace(meta, directory / f"{step_name(step)}.json")
    except OSError as err:
        tmp.unlink(missing_ok=True)
        failure = CheckpointWriteError(f"cannot write {final}: {_describe(err)}")
        failure.errno = err.errno
        raise failure from err
    return final


KEPT_SUFFIX = ".weights.h5"


def kept_model_run(path: Path) -> Path | None:
    """The run directory when ``path`` is one of its kept models
    (``<run>/models/step-<N>.weights.h5``, which ``play`` and ``evaluate`` accept as they
    accept a checkpoint), else None."""
    path = Path(path).absolute()  # a bare file name given from inside models/ has a parent too
    if (path.name.startswith(PREFIX) and path.name.endswith(KEPT_SUFFIX)
            and path.parent.name == MODELS_DIR and path.is_file()):
        return path.parent.parent
    return None


def kept_models(run_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The run's kept models, oldest first, as (weights file, its info with ``step``)."""
    found = []
    for meta in sorted((Path(run_dir) / MODELS_DIR).glob(f"{PREFIX}*.json")):
        weights = meta.with_name(meta.name[: -len(".json")] + KEPT_SUFFIX)
        if weights.is_file():
            found.append((weights, json.loads(meta.read_text())))
    return found


def prune(directory: Path, keep: int) -> None:
    """Keep the ``keep`` newest complete checkpoints, the replay only in the newest,
    and remove leftovers of interrupted saves."""
    for leftover in directory.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for aside in directory.glob(".old-*"):
        # A `best` set aside by a save killed before its replacement was whole: it comes
        # back unless a complete replacement took its place.
        home = directory / aside.name[len(".old-"):].rsplit("-", 1)[0]
        if is_complete(aside) and not is_complete(home):
            shutil.rmtree(home, ignore_errors=True)
            aside.rename(home)
        else:
            shutil.rmtree(aside, ignore_errors=True)
    for partial in directory.glob(f"{PREFIX}*"):
        if partial.is_dir() and not is_complete(partial):
            shutil.rmtree(partial, ignore_errors=True)
    complete = list_checkpoints(directory)
    for old in complete[:-keep]:
        # The marker goes first: a deletion cut short must not leave a directory
        # that still claims to be complete.
        (old / MARKER).unlink(missing_ok=True)
        shutil.rmtree(old, ignore_errors=True)
    for older in complete[-keep:-1]:
        shutil.rmtree(older / "replay", ignore_errors=True)


def resolve(path: Path) -> Path:
    """A checkpoint directory from a run dir, a ``checkpoints`` dir or a checkpoint itself."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    if (path / "state.json").exists() or (path / MARKER).exists():
        return path
    for candidate in (path / "checkpoints", path):
        latest = latest_checkpoint(candidate)
        if latest is not None:
            return latest
    raise CheckpointError(f"{path} holds no complete checkpoint")


def read_run_config(run_dir: Path) -> C.Config:
    """The resolved config a run was started with (``<run>/config.json``), or a
    CheckpointError naming the file."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {run_dir} is not a mario-dqn run")
    try:
        return C.from_json(path.read_text())
    except C.ConfigError as err:
        raise CheckpointError(f"{path}: {err}") from None
    except (OSError, UnicodeDecodeError) as err:  # binary garbage, a directory, no permission
        raise CheckpointError(f"{path} is unreadable ({type(err).__name__})") from None


def load_arrays(file: Path) -> list[np.ndarray]:
    """The arrays ``np.savez(file, *arrays)`` wrote, in their order; :class:`CheckpointError`
    when the file cannot be read."""
    try:
        with np.load(file, allow_pickle=False) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CheckpointError(f"{file} is unreadable ({type(err).__name__})") from None


@dataclass
class Policy:
    """What :func:`load_policy` read back: enough to act, not to continue training."""

    path: Path
    config: C.Config
    state: dict[str, Any]
    online: list[np.ndarray]
    """The weights to act with (the policy's: the average when the checkpoint has one)."""


def _read_complete(path: Path, required: tuple[str, ...]) -> tuple[Path, C.Config, dict[str, Any], list[np.ndarray]]:
    """(checkpoint dir, config, state, online weights) of a complete checkpoint holding
    ``required``; CheckpointError naming the first thing wrong."""
    path = resolve(path)
    if not is_complete(path):
        raise CheckpointError(f"{path} is incomplete (no {MARKER} marker): it was interrupted while saving")
    for name in required:
        if not (path / name).is_file():
            raise CheckpointError(f"{path / name} is missing")
    try:
        config = C.from_json((path / "config.json").read_text())
    except C.ConfigError as err:
        raise CheckpointError(f"{path / 'config.json'}: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path / 'config.json'} is unreadable ({type(err).__name__})") from None
    state = read_state(path / "state.json")
    if (path / "average.npz").is_file() and not (path / "online.npz").is_file():
        # model.keras is the average here, not the online network it stands in for below
        raise CheckpointError(f"{path / 'online.npz'} is missing")
    if (path / "online.npz").is_file():
        _check_zip(path / "model.keras")  # not read here, but it is the file people use
        online = load_arrays(path / "online.npz")
    else:
        online = _weights_of_keras_file(path)
    return path, config, state, online


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a complete checkpoint to continue training from; raise CheckpointError
    naming the first thing wrong."""
    path, config, state, online = _read_complete(path, REQUIRED)
    average = load_arrays(path / "average.npz") if (path / "average.npz").is_file() else []
    if config.agent.policy_average_steps > 0 and not average:
        raise CheckpointError(f"{path / 'average.npz'} is missing")
    training = TrainingState(online=online, target=load_arrays(path / "target.npz"),
                             optimizer=load_arrays(path / "optimizer.npz"), counters=state["agent"], average=average)
    return Checkpoint(path, config, state, training)


def load_policy(path: Path) -> Policy:
    """Read what acting needs from a complete checkpoint or a shipped agent (no target
    network, no optimizer); raise CheckpointError naming the first thing wrong. The
    policy is the weight average when the checkpoint holds one, else the online weights."""
    path, config, state, online = _read_complete(path, POLICY_FILES)
    if (path / "average.npz").is_file():
        online = load_arrays(path / "average.npz")
    return Policy(path, config, state, online)


def _check_zip(file: Path) -> None:
    """Refuse a damaged ``.keras`` file (a zip archive) by its checksums, without Keras."""
    try:
        with zipfile.ZipFile(file) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(f"{file} is unreadable ({type(err).__name__})") from None
    if bad is not None:
        raise CheckpointError(f"{file} is unreadable (bad checksum in {bad})")


def _weights_of_keras_file(path: Path) -> list[np.ndarray]:
    """The online weights of a checkpoint written before ``online.npz`` existed (such a
    checkpoint has no weight average, so its ``model.keras`` is the online network)."""
    # Keras (and TensorFlow) load here, not at import: the CLI refuses a wrong path or a
    # broken config.json in a fraction of a second instead of after TensorFlow starts.
    from mario_dqn.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    try:
        import mario_dqn.network  # noqa: F401 - registers the custom layers
        model = keras.saving.load_model(path / "model.keras", compile=False)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path / 'model.keras'} is unreadable ({type(err).__name__})") from None
    return model.get_weights()


def read_state(file: Path) -> dict[str, Any]:
    """``state.json`` as a dict of this format version, or a CheckpointError naming it."""
    try:
        state = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{file} is not valid JSON") from None
    except OSError as err:
        raise CheckpointError(f"{file} is unreadable ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file} is not a JSON object")
    version = state.get("format_version")
    if version != STATE_FORMAT_VERSION:
        raise CheckpointError(f"{file} has format_version {version!r}; this version of mario-dqn reads "
                              f"{STATE_FORMAT_VERSION}")
    for key in ("step", "agent"):
        if key not in state:
            raise CheckpointError(f"{file} is missing {key!r}")
    step = state["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{file} has a bad step {step!r}")
    return state


def restore_agent(checkpoint: Checkpoint, agent: Any) -> None:
    """Put the checkpoint's training state into ``agent``; CheckpointError naming the file
    whose arrays do not fit the agent's networks (then the agent is unchanged)."""
    try:
        agent.restore(checkpoint.training)
    except StateMismatch as err:
        file = checkpoint.path / PART_FILES[err.part]
        if not file.is_file():  # online weights of a checkpoint from before online.npz
            file = checkpoint.path / "model.keras"
        if err.part == "average" and getattr(agent, "average", None) is None:
            raise CheckpointError(f"{file} holds a weight average but its config has "
                                  f"agent.policy_average_steps = 0") from None
        what = "optimizer variables" if err.part == "optimizer" else f"{err.part} weights"
        raise CheckpointError(f"{file} does not match the model built from its config ({what})") from None


def restore_policy(policy: Policy, agent: Any) -> None:
    """Give ``agent`` the policy's weights (every network of it alike); CheckpointError
    naming the file when it does not fit the agent's network (then the agent is unchanged)."""
    try:
        agent.load_policy(policy.online)
    except StateMismatch:
        file = next((policy.path / name for name in ("average.npz", "online.npz") if (policy.path / name).is_file()),
                    policy.path / "model.keras")
        raise CheckpointError(f"{file} does not match the model built from its config (policy weights)") from None


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes (hashlib reads it in chunks)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def model_source(path: Path, shown: str | None = None) -> dict[str, Any]:
    """What a policy is and where it came from, for the record of what was made from it
    (a distilled student's teachers, an ``--init-from`` start): its model
    file's sha256 (``model.keras``, the policy :func:`load_policy` acts with),
    its step, and its run and checkpoint: a shipped agent's from its ``training.json``
    (package_pretrained writes them), a run's checkpoint (``RUN/checkpoints/NAME``) from
    its place. ``path`` is what the user named (a run, a checkpoint or an agent);
    ``shown`` the path to record instead, if any.

    Why: a path alone is no record. ``save/pretrained/world-1`` named
    ``save/pretrained/world-1-2`` as its 1-2 teacher, and that directory later held another
    agent, so its "how it was made" command made a different student; the checksum says
    which file taught, the run and step where to get it again.
    """
    directory = resolve(Path(path))
    state = read_state(directory / "state.json")
    source: dict[str, Any] = {"path": shown if shown is not None else str(path),
                              "model_sha256": sha256_file(directory / "model.keras"),
                              "run": None, "checkpoint": None, "step": state["step"]}
    training = directory / "training.json"
    if training.is_file():  # a shipped agent: where package_pretrained took it from
        info = json.loads(training.read_text())
        source.update(run=info.get("run"), checkpoint=info.get("checkpoint"))
        if info.get("training_wall_hours") is not None:
            source["training_wall_hours"] = info["training_wall_hours"]
    elif directory.parent.name == "checkpoints":
        source.update(run=directory.parent.parent.name, checkpoint=f"checkpoints/{directory.name}")
    return source
