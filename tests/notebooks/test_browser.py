"""The course as a student meets it: JupyterLab in a real (headless) browser.

One JupyterLab server, started from the course's own environment over a temporary copy
of the notebooks, serves every test here (they stay in this one file so that
`--dist loadfile` keeps them on one worker). The tests open the landing page as
`python3 scripts/course.py lab` does, and run lessons 03 and 04 with Run All Cells,
then move each interactive explorer's controls and check that its callback redrew it:
the status line must show the new parameters and the value the package computes for
them, and the figure's pixels must change.

A solution as stored (executed, no widget state) is also converted to HTML and opened
in the browser, and opened in JupyterLab before it runs: both must show the clipping
explorer's picture.

Screenshots of every step go to artifacts/browser/. With UPDATE_README_SCREENSHOT=1
the clipping explorer's screenshots are also written to docs/img/ (live and static).

Bugs these tests catch: an observer that no longer redraws (or redraws with stale
values), a widget that does not render in JupyterLab, an explorer whose stored output
has no picture (a static page shows its repr, JupyterLab an error before it runs), a
lesson that fails under Run All Cells, a landing page that misses a lesson or links it
to a wrong path.
"""

from __future__ import annotations

import os

import pytest
from support import browser as bs

from ppo_lessons.widgets.clipping_explorer import clipping_status
from ppo_lessons.widgets.gae_explorer import gae_status

pytestmark = pytest.mark.browser

LESSONS = sorted((bs.ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="session")
def chromium_path() -> str:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    path, reason = bs.chromium_or_reason()
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = bs.copy_course(tmp_path_factory.mktemp("course"))
    server = bs.start_lab(root, tmp_path_factory.mktemp("jupyter"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path, args=bs.BROWSER_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, lab, request):
    context = browser.new_context(
        viewport={"width": 1600, "height": 1000}, device_scale_factor=1
    )
    page = context.new_page()
    page.set_default_timeout(60_000)
    failed_before = request.session.testsfailed
    try:
        yield page
    finally:
        if request.session.testsfailed > failed_before:
            bs.save_screenshot(page, f"FAILED_{request.node.name}")
        context.close()


def test_landing_page_opens_rendered_without_a_kernel_and_links_every_lesson(page, lab):
    from playwright.sync_api import expect

    kernels_before = {k["id"] for k in lab.api("/api/kernels")}
    markdown = bs.open_landing(page, lab)
    assert LESSONS, "no lessons found in solutions/"
    for lesson in LESSONS:
        links = markdown.locator(f'a[href*="{lesson.name}"]')
        expect(links, f"the landing page must link {lesson.name} twice").to_have_count(
            2
        )
        hrefs = links.evaluate_all("els => els.map(e => e.href)")
        assert any(f"/notebooks/{lesson.name}" in h for h in hrefs), (
            f"the landing page does not link the student notebook {lesson.name}: {hrefs}"
        )
        assert any(f"/solutions/{lesson.name}" in h for h in hrefs), (
            f"the landing page does not link solutions/{lesson.name}: {hrefs}"
        )
    page.wait_for_timeout(3000)  # time for a kernel or a dirty mark to show up
    sessions = [s for s in lab.api("/api/sessions") if s.get("path") == bs.LANDING]
    assert not sessions, f"opening the landing page started a session: {sessions}"
    kernels = {k["id"] for k in lab.api("/api/kernels")}
    assert kernels == kernels_before, "opening the landing page started a kernel"
    expect(page.locator(".jp-FileEditor"), "opened as source text").to_have_count(0)
    landing_tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="index")
    expect(landing_tab).to_have_count(1)
    expect(landing_tab, "the landing page is marked unsaved").not_to_have_class(
        bs.re.compile(r"\bjp-mod-dirty\b")
    )
    bs.save_screenshot(page, "index")

    # each link opens its notebook inside JupyterLab, resolved relative to notebooks/;
    # a lesson and its solution share a tab label, their tooltips name the folder
    first = LESSONS[0].name
    for folder in ("notebooks", "solutions"):
        landing_tab.click()
        markdown.locator(f'a[href*="/{folder}/{first}"]').click()
        tab = page.locator(f'.lm-TabBar-tab[title*="Path: {folder}/{first}"]')
        expect(tab).to_have_count(1)
        expect(tab.locator(".lm-TabBar-tabLabel")).to_have_text(first)
        expect(page.locator(f"{bs.VISIBLE_NOTEBOOK} .jp-Cell").first).to_be_visible()
    bs.save_screenshot(page, "index_lesson_and_solution_tabs")


def test_clipping_explorer_redraws_when_eps_and_sign_change(page, lab):
    from playwright.sync_api import expect

    nb = bs.Notebook.open(page, lab, "solutions/03_clipping.ipynb", "clipping")
    nb.run_all_cells()
    explorer = page.locator(f"{bs.VISIBLE_NOTEBOOK} .ppo-clip-explorer")
    expect(explorer).to_have_count(1)
    explorer.scroll_into_view_if_needed()
    eps, magnitude = bs.slider(explorer, "ε"), bs.slider(explorer, "|A|")
    positive = explorer.get_by_role("button", name="A > 0", exact=True)
    expect(positive).to_have_class(bs.re.compile(r"\bmod-active\b"))
    eps_0, size = bs.readout(eps), bs.readout(magnitude)
    status = ".ppo-clip-status"
    expect(explorer.locator(status)).to_have_text(clipping_status(eps_0, size))
    expect(explorer.locator(".widget-output img")).to_be_visible()
    figure = explorer.locator(".widget-output")
    bs.save_screenshot(page, "03_clipping_1_before")
    before = figure.screenshot()

    # ε up by ten steps of 0.01, with the keyboard on the focused handle
    old = bs.figure_src(explorer)
    bs.press_on_slider(eps, "ArrowRight", 10)
    eps_1 = round(eps_0 + 0.10, 2)
    expect(eps.locator(".widget-readout")).to_have_text(f"{eps_1:.2f}")
    nb.wait_for_redraw(explorer, status, clipping_status(eps_1, size), old)
    bs.save_screenshot(page, "03_clipping_2_eps_up")
    after_eps = figure.screenshot()
    assert after_eps != before, "the figure did not change when ε moved"
    if os.environ.get("UPDATE_README_SCREENSHOT") == "1":
        bs.save_readme_screenshot(page, explorer)

    # flip the advantage's sign
    old = bs.figure_src(explorer)
    explorer.get_by_role("button", name="A < 0", exact=True).click()
    nb.wait_for_redraw(explorer, status, clipping_status(eps_1, -size), old)
    bs.save_screenshot(page, "03_clipping_3_negative_advantage")
    after_sign = figure.screenshot()
    assert after_sign != after_eps, "the figure did not change when A's sign flipped"


def test_gae_explorer_redraws_when_lambda_and_gamma_change(page, lab):
    from playwright.sync_api import expect

    nb = bs.Notebook.open(page, lab, "solutions/04_gae.ipynb", "gae")
    nb.run_all_cells()
    explorer = page.locator(f"{bs.VISIBLE_NOTEBOOK} .ppo-gae-explorer")
    expect(explorer).to_have_count(1)
    explorer.scroll_into_view_if_needed()
    gamma, lam = bs.slider(explorer, "γ"), bs.slider(explorer, "λ")
    step = int(bs.readout(bs.slider(explorer, "step t")))
    gamma_0, lam_0 = bs.readout(gamma), bs.readout(lam)
    status = ".ppo-gae-status"
    expect(explorer.locator(status)).to_have_text(gae_status(gamma_0, lam_0, step))
    expect(explorer.locator(".widget-output img")).to_be_visible()
    figure = explorer.locator(".widget-output")
    bs.save_screenshot(page, "04_gae_1_before")
    before = figure.screenshot()

    # λ down by fifteen steps of 0.01
    old = bs.figure_src(explorer)
    bs.press_on_slider(lam, "ArrowLeft", 15)
    lam_1 = round(lam_0 - 0.15, 2)
    expect(lam.locator(".widget-readout")).to_have_text(f"{lam_1:.2f}")
    nb.wait_for_redraw(explorer, status, gae_status(gamma_0, lam_1, step), old)
    bs.save_screenshot(page, "04_gae_2_lambda_down")
    after_lam = figure.screenshot()
    assert after_lam != before, "the figure did not change when λ moved"

    # γ down by nine steps of 0.01
    old = bs.figure_src(explorer)
    bs.press_on_slider(gamma, "ArrowLeft", 9)
    gamma_1 = round(gamma_0 - 0.09, 2)
    expect(gamma.locator(".widget-readout")).to_have_text(f"{gamma_1:.2f}")
    nb.wait_for_redraw(explorer, status, gae_status(gamma_1, lam_1, step), old)
    bs.save_screenshot(page, "04_gae_3_gamma_down")
    after_gamma = figure.screenshot()
    assert after_gamma != after_lam, "the figure did not change when γ moved"


def test_stored_explorer_shows_its_picture_on_a_static_page_and_before_it_runs(
    page, lab, tmp_path
):
    """A solution as stored (executed, no widget state): its HTML export shows the
    clipping explorer's picture and no widget repr; JupyterLab, before the notebook
    runs (no widget model, untrusted outputs), shows the same picture, not an error."""
    from nbconvert import HTMLExporter
    from playwright.sync_api import expect

    stored = lab.root / "stored" / "03_clipping.ipynb"
    nb = bs.execute_stored(bs.ROOT / "solutions" / "03_clipping.ipynb", stored)
    cell = next(
        c for c in nb.cells if c.source.rstrip().endswith("clipping_explorer()")
    )
    body, _ = HTMLExporter().from_notebook_node(nb)
    (tmp_path / "03_clipping.html").write_text(body)
    page.goto((tmp_path / "03_clipping.html").as_uri())
    shown = page.locator(f'[id="cell-id={cell.id}"] .jp-OutputArea-output img')
    expect(shown).to_have_count(1)
    assert shown.evaluate("img => img.complete && img.naturalWidth") > 400
    assert "Box(children=" not in page.locator("body").inner_text()
    bs.save_screenshot(page, "03_clipping_static_html")
    if os.environ.get("UPDATE_README_SCREENSHOT") == "1":
        page.locator(f'[id="cell-id={cell.id}"]').screenshot(
            path=bs.README_STATIC_SCREENSHOT
        )

    bs.Notebook.open(page, lab, "stored/03_clipping.ipynb", "stored")
    first = page.locator(f"{bs.VISIBLE_NOTEBOOK} .jp-Cell").nth(nb.cells.index(cell))
    first.scroll_into_view_if_needed()
    expect(
        first.locator('.jp-OutputArea-output[data-mime-type="image/png"] img')
    ).to_be_visible()
    expect(first).not_to_contain_text("Error displaying widget")
    bs.save_screenshot(page, "03_clipping_stored_in_lab")
