"""README.md and docs/*.md name only files that exist, and README stays a page for users.

A path a reader copies from the docs (`mario_dqn/runner.py` in backticks, a relative
link, an image) that points nowhere is a broken promise, and it is the kind that goes
stale silently when code moves. README is capped in length so that experiment history
goes to docs/ (issue 37). Fast: text only, no TensorFlow.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MAX_LINES = 300

FENCE = re.compile(r"^```.*?^```", re.S | re.M)          # code blocks: commands, not references
CODE_SPAN = re.compile(r"`([^`]+)`")
# a repository path with a folder and a file extension: `config/presets/any-stage.json`;
# placeholders (`save/runs/<name>/`, `logs/TRIAL.log`: three capitals in a row, the rule of
# the before-stop hook) and commands (anything with a space) are not paths
FILE_PATH = re.compile(r"[A-Za-z0-9_.\-]*/[A-Za-z0-9_.\-/]*\.[A-Za-z0-9]+")
PLACEHOLDER = re.compile(r"[A-Z]{3,}")
MD_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_LINK = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def _is_external(target: str) -> bool:
    """Web addresses and in-page anchors are not files of this repository."""
    return "://" in target or target.startswith(("#", "mailto:"))


def git_ignored(paths: list[Path]) -> set[Path]:
    """Those of ``paths`` that git ignores (run directories under `save/runs/`, videos):
    they exist only on the machine that made them, never in the clean clone CI and a new
    user start from, so a page naming one is broken there even where the file is here."""
    if not paths:
        return set()
    try:
        result = subprocess.run(["git", "check-ignore", "--stdin"], cwd=ROOT, capture_output=True,
                                text=True, input="\n".join(str(path) for path in paths), check=False)
    except OSError:                                         # no git: only existence is checked
        return set()
    return {Path(line) for line in result.stdout.splitlines() if line}


def missing_paths(text: str, folder: Path) -> list[str]:
    """The paths ``text`` names that a clean clone lacks: backticked repository paths
    (relative to the repository root, as commands are run from there) and relative links
    (relative to ``folder``, the markdown file's own folder, as a forge resolves them).
    A file git ignores counts as missing even where it exists (`git_ignored`)."""
    prose = FENCE.sub("", text)
    named: dict[str, Path] = {}
    for span in CODE_SPAN.findall(prose):
        if FILE_PATH.fullmatch(span) and not PLACEHOLDER.search(span):
            named[span] = ROOT / span
    for target in MD_LINK.findall(prose) + HTML_LINK.findall(prose):
        if _is_external(target):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if path:
            named[target] = folder / path
    ignored = git_ignored([path for path in named.values() if path.exists()])
    return sorted(name for name, path in named.items() if not path.exists() or path in ignored)


def test_the_checker_reports_made_up_paths():
    text = ("See `mario_dqn/no_such_module.py`, [notes](docs/no-such-page.md#why), "
            '<img src="save/pretrained/nowhere.gif"> and `config/settings.py`.\n'
            "Placeholders `save/runs/<name>/config.json`, `logs/TRIAL.log`, a command `python main.py train`,\n"
            "[the web](https://example.org/a.md), [a section](#layout).\n"
            "```bash\ncat `x/not-a-reference.py`\n```\n")
    assert missing_paths(text, ROOT) == ["docs/no-such-page.md#why", "mario_dqn/no_such_module.py",
                                         "save/pretrained/nowhere.gif"]
    # the same link resolves from the folder of the file that holds it
    assert missing_paths("[back](../README.md)", ROOT / "docs") == []
    assert missing_paths("[back](../README.md)", ROOT) == ["../README.md"]


def test_a_file_only_this_machine_has_counts_as_missing(tmp_path):
    """A run's files exist where it ran and nowhere else: CI's clean clone failed on a page
    naming `save/runs/w14d-wide-s1.partial` that the suite passed here."""
    run = ROOT / "save" / "runs" / f"docs-check-{tmp_path.name}.partial"
    run.mkdir(parents=True)
    try:
        name = str(run.relative_to(ROOT))
        assert set(missing_paths(f"kept in `{name}` and [here]({name})", ROOT)) == {name}
        assert missing_paths("`mario_dqn/runner.py`", ROOT) == []       # tracked files still exist
    finally:
        run.rmdir()


def test_readme_and_docs_name_only_existing_files():
    assert DOCS, "docs/ holds the experiment history README links to"
    for page in [README, *DOCS]:
        assert missing_paths(page.read_text(), page.parent) == [], page.relative_to(ROOT)


def test_readme_is_short_and_links_every_page_of_docs():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    linked = {target.split("#", 1)[0] for target in MD_LINK.findall(FENCE.sub("", text))}
    assert {f"docs/{page.name}" for page in DOCS} <= linked
    for command in ("make train", "make test"):   # the whole set-up on a fresh machine
        assert command in text


def test_readme_layout_lists_only_modules_the_package_has():
    """The package list in README's Layout names modules without backticks, so the path
    check above does not see them; a module moved or removed must leave the list too."""
    text = README.read_text()
    layout = text[text.index("The package `mario_dqn/`"):]
    listed = set(re.findall(r"\b([a-z_]+\.py)\b", layout.split("\n## ", 1)[0]))
    assert len(listed) > 10
    assert sorted(name for name in listed if not (ROOT / "mario_dqn" / name).exists()) == []
