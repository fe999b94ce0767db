"""The documentation: the MkDocs site builds in strict mode, and the README stays a short,
unbroken entry point to it."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Markdown links and images, ``[text](target)`` / ``![alt](target)``, without a title.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
#: Links that leave the repository.
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def test_docs_build_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds: a broken link or anchor, a page missing from the nav,
    a snippet or an API reference that does not resolve all fail the build."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(site)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    # the API reference was generated from the docstrings
    core = (site / "reference" / "core" / "index.html").read_text(encoding="utf-8")
    assert "open_sequence" in core and "TrackingResult" in core
    # the install command is included from the README, and the picture scripts are not pages
    install = re.search(r"\[start:install\] -->\n```bash\n(.+)\n```",
                        README.read_text(encoding="utf-8")).group(1)
    page = (site / "install" / "index.html").read_text(encoding="utf-8")
    assert install in html.unescape(re.sub(r"<[^>]+>", "", page))
    assert not list(site.rglob("make_*"))
    assert (site / "movie.gif").is_file() and (site / "report.html").is_file()


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/"


def _anchors(page: Path) -> set[str]:
    """The anchors MkDocs gives the headings of a Markdown page."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE)
    return {slugify(heading.replace("`", ""), "-") for heading in headings}


def test_readme_links_exist() -> None:
    """Every relative link or image in README.md names a file of the repository (and, for a
    Markdown page, one of its headings when it gives an anchor)."""
    targets = LINK.findall(README.read_text(encoding="utf-8"))
    relative = [t for t in targets if not EXTERNAL.match(t) and not t.startswith("#")]
    assert relative, "README.md links to no documentation page"
    broken = []
    for target in relative:
        path, _, anchor = target.partition("#")
        file = ROOT / path
        heading_missing = bool(anchor) and file.suffix == ".md" and file.is_file() and (
            anchor not in _anchors(file))
        if not file.exists() or heading_missing:
            broken.append(target)
    assert not broken, f"README.md links to missing files or headings: {broken}"
