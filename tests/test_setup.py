"""The two-command set-up: Python 3.13 discovery by scripts/find-python.sh, the Makefile,
and the project installed into the venv (pyproject.toml, editable).

On these machines 3.13 is installed through pyenv but not active, so a bare
``python3.13`` fails; these tests rebuild that situation with a fake pyenv root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIND = ROOT / "scripts" / "find-python.sh"
THIS_PYTHON = Path(os.path.realpath(sys.executable))  # the venv's Python 3.13


def bare_env(tmp_path: Path, pyenv_root: Path | None) -> dict[str, str]:
    """An environment where `python3.13` is not on PATH and pyenv lives at ``pyenv_root``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYENV") and k != "VIRTUAL_ENV"}
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    env["HOME"] = str(tmp_path / "home")
    if pyenv_root is not None:
        env["PYENV_ROOT"] = str(pyenv_root)
    return env


def fake_pyenv(tmp_path: Path, versions: list[str]) -> Path:
    """A pyenv root whose versions/<v>/bin/python3.13 all point at a real 3.13."""
    root = tmp_path / "pyenv"
    for version in versions:
        bin_dir = root / "versions" / version / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python3.13").symlink_to(THIS_PYTHON)
    return root


def run_find(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(FIND), *args], env=env, capture_output=True, text=True, timeout=60)


def test_explicit_python_is_used(tmp_path):
    result = run_find(bare_env(tmp_path, None), str(THIS_PYTHON))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(THIS_PYTHON)


def test_explicit_python_that_is_not_313_is_refused(tmp_path):
    old = tmp_path / "bin" / "python-old"
    (tmp_path / "bin").mkdir()
    old.write_text("#!/bin/sh\nexit 1\n")
    old.chmod(0o755)
    result = run_find(bare_env(tmp_path, None), str(old))
    assert result.returncode == 1
    assert "not a runnable Python >= 3.13" in result.stderr
    assert result.stdout == ""


def test_newest_pyenv_313_is_found_when_none_is_active(tmp_path):
    root = fake_pyenv(tmp_path, ["3.11.7", "3.13.0", "3.13.10", "3.13.9"])
    result = run_find(bare_env(tmp_path, root))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(root / "versions" / "3.13.10" / "bin" / "python3.13")


def test_python313_on_path_wins_over_pyenv(tmp_path):
    root = fake_pyenv(tmp_path, ["3.13.0"])
    env = bare_env(tmp_path, root)
    (tmp_path / "bin" / "python3.13").symlink_to(THIS_PYTHON)
    result = run_find(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() != str(root / "versions" / "3.13.0" / "bin" / "python3.13")


def test_no_python_gives_one_clear_line(tmp_path):
    root = fake_pyenv(tmp_path, ["3.11.7"])
    result = run_find(bare_env(tmp_path, root))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "install" in result.stderr and "3.13" in result.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_creates_a_313_venv_in_a_fresh_copy(tmp_path):
    """What `make train`/`make test` do first, on a copy of the repo with no .venv."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    root = fake_pyenv(tmp_path, ["3.13.0"])
    result = subprocess.run(["make", ".venv/bin/python"], cwd=repo, env=bare_env(tmp_path, root),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    version = subprocess.run([str(repo / ".venv" / "bin" / "python"), "-c",
                              "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert version.stdout.strip() == "(3, 13)"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_without_python_stops_with_one_line(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    root = fake_pyenv(tmp_path, [])
    result = subprocess.run(["make", "train"], cwd=repo, env=bare_env(tmp_path, root),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Python 3.13 not found" in result.stderr
    assert not (repo / ".venv").exists()


# --------------------------------------------------------------------------- installed project

NOT_SOURCES = {ROOT / "build", ROOT / "save" / "runs"}
"""Setuptools' scratch and training output; hidden folders (.venv, .git) and byte code are skipped too."""


def help_text(command: list[str]) -> str:
    """``--help`` of a CLI without its first line (``Usage: <program name> ...`` differs)."""
    out = subprocess.run([*command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr
    first, _, rest = out.stdout.partition("\n")
    assert first.startswith("Usage: "), out.stdout
    return rest


def test_console_script_runs_the_same_cli_as_main_py():
    """`make` installs the project editable; .venv/bin/mario-dqn is main.py's click group."""
    script = Path(sys.prefix) / "bin" / "mario-dqn"
    assert script.is_file() and os.access(script, os.X_OK), f"{script} missing: run `make venv`"
    installed, direct = help_text([str(script)]), help_text([sys.executable, "main.py"])
    assert installed == direct
    commands = re.findall(r"^  (\w+) ", installed.split("Commands:", 1)[1], flags=re.M)
    assert {"train", "evaluate", "play", "distill", "config"} <= set(commands), installed


def test_the_project_imports_from_this_tree_without_path_edits():
    """A fresh interpreter outside the repository finds the package, the config (with its
    presets) and main.py in this working tree: the editable install, not the current directory."""
    code = ("import config, config.presets, main, mario_dqn; "
            "print(main.__file__); print(mario_dqn.__path__[0]); print(config.presets.PRESET_DIR)")
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(ROOT / "main.py"), str(ROOT / "mario_dqn"), str(ROOT / "config" / "presets")]


def test_no_source_file_edits_sys_path():
    """The install makes the project importable; a path edit would hide a broken install."""
    edit = re.compile(r"sys\.path\.(insert|append)\b")
    offenders = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs
                   if not d.startswith(".") and d != "__pycache__" and Path(folder) / d not in NOT_SOURCES]
        for name in files:
            if name.endswith((".py", ".ipynb")):
                path = Path(folder) / name
                offenders += [f"{path.relative_to(ROOT)}:{number}"
                              for number, line in enumerate(path.read_text().splitlines(), 1) if edit.search(line)]
    assert not offenders, offenders


def test_the_command_line_starts_without_the_emulator_tensorflow_or_ray():
    """``main.py --help``, ``config`` and the option defaults load none of the heavy
    libraries: each command imports what it needs when it runs (distill's defaults come
    from the leaf mario_dqn.distill_settings, not from the distillation module)."""
    heavy = ("gymnasium", "nes_py", "tensorflow", "keras", "ray", "cv2")
    code = f"import sys, main; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
