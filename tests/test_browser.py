"""The web page and the evaluation report in headless Chromium (Debian's, driven by Playwright).

The service runs in this process under uvicorn on a free port; each test writes a screenshot of each
step to ``test-artifacts/browser/`` (or ``$SHELFWISE_ARTIFACTS/browser``).
"""

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from shelfwise.engine import Engine
from shelfwise.service import create_app
from shelfwise.settings import load_settings

CHROMIUM = os.environ.get("SHELFWISE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("SHELFWISE_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts")) / "browser"
KEY = "browser-key-0123456789abcdef"
# Chromium as root in a closed network: no sandbox, no background connections (../.library/env).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (as .ci/run does)", allow_module_level=True
    )
expect = playwright_api.expect


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory, trained_model_dir):
    for url, _engine in _site(tmp_path_factory.mktemp("site"), trained_model_dir):
        yield url


def _site(folder: Path, trained_model_dir: Path, **settings: object):
    """The service on a free port of 127.0.0.1 in this process (`settings`: beside the defaults):
    yields its URL and engine once, and stops it when resumed."""
    import uvicorn

    model_dir = shutil.copytree(trained_model_dir, folder / "model")
    engine = Engine(model_dir, f"sqlite:///{folder / 'store.db'}")
    app = create_app(engine, load_settings(**settings), api_key=KEY)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", engine
    server.should_exit = True
    thread.join(timeout=10)
    engine.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


#: The sizes the page fixes are checked at: a desktop window and a phone.
SIZES = {"desktop": ({"width": 1280, "height": 900}, False), "phone": ({"width": 375, "height": 740}, True)}


@pytest.fixture
def page(browser, site, request):
    yield from _tab(browser, site, request, "desktop")


@pytest.fixture(params=sorted(SIZES))
def sized_page(browser, site, request):
    """The page at desktop and at phone size (the tab's `size` says which)."""
    yield from _tab(browser, site, request, request.param)


def _tab(browser, site, request, size: str):
    viewport, mobile = SIZES[size]
    context = browser.new_context(viewport=viewport, is_mobile=mobile)
    context.add_init_script(f"localStorage.setItem('shelfwise.apiKey', '{KEY}')")
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.site = site
    tab.size = size
    folder = ARTIFACTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    steps = iter(range(1, 100))
    tab.shot = lambda name: tab.screenshot(path=str(folder / f"{next(steps):02d}-{name}.png"), full_page=True)
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _card_ids(tab, section: str) -> list[str]:
    return tab.locator(f"#{section} .cards > li").evaluate_all("nodes => nodes.map(n => n.dataset.itemId)")


def _choose(tab, shopper: str) -> None:
    tab.fill("#shopper", shopper)
    tab.press("#shopper", "Enter")
    expect(tab.locator("#recommendations .cards > li").first).to_be_visible()
    expect(tab.locator("#profile .profile-body dl")).to_be_visible()


def _short_history_shopper(dataset) -> str:
    import numpy as np

    counts = np.bincount(dataset.interactions["user"].to_numpy(), minlength=dataset.n_users)
    return str(dataset.user_ids[int(np.argsort(counts, kind="stable")[0])])


def test_pick_a_shopper_click_a_product_and_the_list_changes(page, shop_dataset):
    shopper = _short_history_shopper(shop_dataset)  # one view shows most on a short history
    page.goto(page.site + "/")
    expect(page.locator("h1")).to_have_text("shelfwise")
    expect(page.locator("#model")).to_contain_text("items")
    page.shot("start")
    _choose(page, shopper)
    expect(page.locator("#recommendations-title")).to_have_text(f"Recommended for {shopper}")
    before = _card_ids(page, "recommendations")
    assert len(before) == 12
    assert all(page.locator("#recommendations .reason").all_inner_texts())  # every card says why
    page.shot("shopper-chosen")

    loaded = page.locator("#recommendations").get_attribute("data-loaded")
    clicked = page.locator("#recommendations .card-open").nth(5)
    title = clicked.locator(".title").inner_text()
    own = clicked.locator(".category").inner_text()
    clicked.click()
    expect(page.locator("#notice")).to_contain_text(f"viewed “{title}”")
    expect(page.locator("#recommendations")).not_to_have_attribute("data-loaded", loaded)
    after = _card_ids(page, "recommendations")
    assert len(after) == 12 and after != before  # the view was recorded and the list re-ranked at once
    expect(page.locator("#similar")).to_be_visible()
    expect(page.locator("#similar-title")).to_have_text(f"Similar to {title}")
    assert len(_card_ids(page, "similar")) > 0
    expect(page.locator("#goes-with .cards > li").first).to_be_visible()
    goes_with = page.locator("#goes-with .category").all_inner_texts()
    assert goes_with and own not in goes_with  # other categories only
    page.shot("after-click")
    events = page.request.get(f"{page.site}/v1/users/{shopper}/profile").json()["recent_intent"]["items"]
    assert events[0]["title"] == title and events[0]["event_type"] == "view"


def test_keyboard_alone_opens_a_product(page, shop_dataset):
    page.goto(page.site + "/")
    _choose(page, str(shop_dataset.user_ids[4]))
    page.locator("#recommendations .card-open").first.focus()
    title = page.locator("#recommendations .card-open .title").first.inner_text()
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text(f"viewed “{title}”")
    page.keyboard.press("Tab")
    expect(page.locator("#recommendations")).not_to_have_attribute("aria-busy", "true")  # redrawn after the view
    focused = page.evaluate("document.activeElement.className")
    assert focused == "card-open"  # the next card takes the focus, also across the redraw
    page.shot("keyboard")


def test_search_finds_products_by_other_words_and_typos(page, shop_dataset):
    page.goto(page.site + "/")
    page.fill("#q", "headset")
    page.press("#q", "Enter")
    expect(page.locator("#search .cards > li").first).to_be_visible()
    expect(page.locator("#search-title")).to_have_text("Search results for “headset”")
    titles = page.locator("#search .title").all_inner_texts()
    assert "Headphones" in titles[0]  # no product says "headset": the language model knows
    page.shot("search-synonym")

    page.fill("#q", "campnig tnet")
    page.press("#q", "Enter")
    expect(page.locator("#search-title")).to_have_text("Search results for “campnig tnet”")
    expect(page.locator("#search .title").first).to_contain_text("Camping Tent")
    page.shot("search-typo")

    _choose(page, str(shop_dataset.user_ids[3]))
    expect(page.locator("#search-title")).to_contain_text("personalised")
    expect(page.locator("#search .cards > li").first).to_be_visible()
    page.shot("search-personalised")

    page.fill("#q", "zzqxv nonsenseword")  # matches nothing: the page says so, personalised or not
    page.press("#q", "Enter")
    expect(page.locator("#search")).to_contain_text("Nothing matches “zzqxv nonsenseword”.")
    expect(page.locator("#search .cards > li")).to_have_count(0)
    page.shot("search-nothing-matches")

    page.fill("#q", "   ")
    page.press("#q", "Enter")
    expect(page.locator("#notice")).to_have_text("Type a few words to search for.")
    expect(page.locator("#search")).to_be_hidden()


def test_a_product_added_in_the_admin_form_appears(page, shop_dataset):
    shopper = str(shop_dataset.user_ids[5])
    page.goto(page.site + "/")
    _choose(page, shopper)
    page.shot("before")
    page.fill("#item-id", "BROWSER-NEW-1")
    page.fill("#item-title", "Glowberry Lavender Soy Wax Scented Candle")
    page.fill("#item-category", "Home > Decor > Scented Candle")
    page.fill("#item-brand", "Glowberry")
    page.fill("#item-price", "14.50")
    page.fill("#item-description", "A calming lavender candle of soy wax that burns for forty hours.")
    page.fill("#item-tags", "lavender, soy wax, calm")
    page.shot("form-filled")
    page.click("#item-form button[type=submit]")
    expect(page.locator("#admin .state")).to_have_text("Added BROWSER-NEW-1. It is recommendable now.")
    expect(page.locator('#search .cards > li[data-item-id="BROWSER-NEW-1"]')).to_be_visible()
    assert _card_ids(page, "search")[0] == "BROWSER-NEW-1"
    expect(page.locator('#arrivals .cards > li[data-item-id="BROWSER-NEW-1"]')).to_be_visible()
    page.shot("product-added")
    item = page.request.get(f"{page.site}/v1/items/BROWSER-NEW-1").json()
    assert item["brand"] == "Glowberry" and item["price"] == 14.5


def test_errors_and_empty_states_are_shown(page):
    page.goto(page.site + "/")
    expect(page.locator("#recommendations .state")).to_have_text("Choose a shopper to see their recommendations.")
    page.fill("#shopper", "nobody-at-all")
    page.press("#shopper", "Enter")
    # a shopper with no events gets what every newcomer gets, and the page says so
    expect(page.locator("#recommendations .state")).to_contain_text("No events of nobody-at-all yet")
    expect(page.locator("#recommendations .cards > li")).to_have_count(12)
    expect(page.locator("#profile .state")).to_contain_text("Unknown shopper")
    page.shot("unknown-shopper")
    page.click("#shopper-clear")
    page.evaluate("localStorage.setItem('shelfwise.apiKey', 'wrong-key-0123456789')")
    page.fill("#item-id", "NOPE")
    page.fill("#item-title", "Not allowed")
    page.click("#item-form button[type=submit]")
    expect(page.locator("#admin .state")).to_contain_text("invalid API key")
    page.shot("wrong-key")


def test_the_page_fits_a_phone_screen(browser, site, shop_dataset):
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(site + f"/?user={shop_dataset.user_ids[3]}")  # a link to a shopper opens them
    expect(tab.locator("#recommendations .cards > li").first).to_be_visible()
    assert tab.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than the screen
    boxes = [tab.locator("#recommendations .cards > li").nth(i).bounding_box() for i in range(2)]
    assert boxes[1]["y"] > boxes[0]["y"]  # one card a row
    folder = ARTIFACTS / "test_the_page_fits_a_phone_screen"
    folder.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(folder / "01-phone.png"), full_page=True)
    context.close()


def test_every_plot_of_the_evaluation_report_renders(browser, tmp_path, shop_dataset):
    from shelfwise.cli import main

    shop_dataset.save(tmp_path / "shop")
    report = tmp_path / "report.html"
    arguments = ["evaluate", "--data", str(tmp_path / "shop"), "--protocol", "p1", "--models", "popularity,ease"]
    assert main([*arguments, "--no-tune", "--quiet", "--report", str(report)]) == 0
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    tab = context.new_page()
    tab.goto(report.as_uri())
    figures = tab.locator("figure.plot")
    assert figures.count() == 4
    for index in range(4):
        figure = figures.nth(index)
        svg = figure.locator("svg")
        box = svg.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100, figure.get_attribute("data-plot")
        drawn = svg.locator("path, rect, use, line, polyline")
        assert drawn.count() > 5, f"plot {figure.get_attribute('data-plot')} has nothing drawn"
        assert re.search(r"\S", figure.locator("figcaption").inner_text())
    assert tab.locator("table tbody tr").count() == 2
    folder = ARTIFACTS / "test_every_plot_of_the_evaluation_report_renders"
    folder.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(folder / "01-report.png"), full_page=True)

    trained = tmp_path / "mf"
    arguments = ["train", "--data", str(tmp_path / "shop"), "--model", "mf", "--param", "epochs=3"]
    assert main([*arguments, "--out", str(trained)]) == 0
    tab.goto((trained / "train.html").as_uri())
    curve = tab.locator('figure[data-plot="training"] svg')
    assert curve.bounding_box()["width"] > 200 and curve.locator("path, use, line").count() > 5
    tab.screenshot(path=str(folder / "02-training-summary.png"), full_page=True)
    context.close()


# ---------------------------------------------------------------------------- page fixes, both sizes
def _page_height(tab) -> int:
    return tab.evaluate("document.documentElement.scrollHeight")


def test_the_item_just_viewed_does_not_come_back_as_a_recommendation(sized_page, shop_dataset):
    tab = sized_page
    tab.goto(tab.site + "/")
    _choose(tab, str(shop_dataset.user_ids[6]))
    tab.shot("shopper")
    loaded = tab.locator("#recommendations").get_attribute("data-loaded")
    first = tab.locator("#recommendations .card-open").first
    viewed = first.get_attribute("data-item-id")
    first.click()
    expect(tab.locator("#recommendations")).not_to_have_attribute("data-loaded", loaded)
    expect(tab.locator("#recommendations .cards > li").first).to_be_visible()
    assert viewed not in _card_ids(tab, "recommendations")  # it is under "Similar to …" instead
    expect(tab.locator("#similar-title")).to_contain_text("Similar to")
    tab.shot("after-view")


def test_goes_with_says_why_it_is_empty_for_an_item_without_a_category(sized_page):
    tab = sized_page
    item_id = f"NO-CATEGORY-{tab.size}"
    body = {"title": f"Plain enamel camping mug {tab.size}", "description": "a mug without a category"}
    reply = tab.request.put(f"{tab.site}/v1/items/{item_id}", data=body, headers={"Authorization": f"Bearer {KEY}"})
    assert reply.ok, reply.text()
    tab.goto(tab.site + "/")
    tab.fill("#q", body["title"])
    tab.press("#q", "Enter")
    card = tab.locator(f'#search .card-open[data-item-id="{item_id}"]')
    card.click()
    expect(tab.locator("#goes-with .state")).to_have_text(
        f"“{body['title']}” has no category, so there are no other categories to suggest from."
    )
    expect(tab.locator("#goes-with .cards > li")).to_have_count(0)
    expect(tab.locator("#similar .cards > li").first).to_be_visible()
    tab.shot("no-category")


def test_the_key_panel_opens_over_the_page_and_closes_once_saved(sized_page):
    tab = sized_page
    tab.goto(tab.site + "/")
    header = tab.locator("header.top").bounding_box()["height"]
    tab.click("details.key summary")
    expect(tab.locator("#api-key")).to_be_visible()
    assert tab.locator("header.top").bounding_box()["height"] == pytest.approx(header, abs=2)  # over, not in
    assert tab.evaluate("document.documentElement.scrollWidth") <= SIZES[tab.size][0]["width"]
    tab.shot("key-open")
    tab.fill("#api-key", KEY)
    tab.click("#key-form button[type=submit]")
    expect(tab.locator("#notice")).to_have_text("API key saved in this browser.")
    expect(tab.locator("#api-key")).to_be_hidden()
    assert tab.evaluate("document.querySelector('details.key').open") is False
    tab.shot("key-saved")


def test_the_add_product_form_is_cleared_once_the_product_is_added(sized_page):
    tab = sized_page
    tab.goto(tab.site + "/")
    fold = tab.locator("#admin .fold")
    if tab.size == "phone":  # folded on a phone until opened
        expect(fold).to_have_attribute("aria-expanded", "false")
        expect(tab.locator("#item-id")).to_be_hidden()
        fold.click()
    expect(tab.locator("#item-id")).to_be_visible()
    item_id = f"CLEARED-{tab.size}"
    tab.fill("#item-id", item_id)
    tab.fill("#item-title", "Stoneware pour-over coffee dripper")
    tab.fill("#item-category", "Home > Kitchen > Mug")
    tab.fill("#item-price", "21")
    tab.shot("filled")
    tab.click("#item-form button[type=submit]")
    expect(tab.locator("#admin .state")).to_have_text(f"Added {item_id}. It is recommendable now.")
    for field in ("#item-id", "#item-title", "#item-category", "#item-price", "#item-description", "#item-tags"):
        expect(tab.locator(field)).to_have_value("")
    expect(tab.locator("#item-stock")).to_be_checked()
    tab.shot("cleared")


def test_panels_fold_to_their_title_and_stay_folded(sized_page, shop_dataset):
    tab = sized_page
    tab.goto(tab.site + f"/?user={shop_dataset.user_ids[2]}")
    expect(tab.locator("#profile .profile-body dl")).to_be_visible()
    expect(tab.locator("#arrivals .cards > li").first).to_be_visible()
    for panel in ("admin", "profile", "arrivals"):  # open every one first (a phone folds the form)
        if tab.locator(f"#{panel} .fold").get_attribute("aria-expanded") == "false":
            tab.click(f"#{panel} .fold")
    tall = _page_height(tab)
    tab.shot("unfolded")
    for panel in ("profile", "arrivals", "admin"):
        tab.click(f"#{panel} .fold")
        expect(tab.locator(f"#{panel} .fold")).to_have_attribute("aria-expanded", "false")
    expect(tab.locator("#profile .profile-body")).to_be_hidden()
    expect(tab.locator("#profile-title")).to_be_visible()  # the title stays, to open it again
    short = _page_height(tab)
    assert short < tall - 300, (tall, short)
    tab.shot("folded")
    tab.reload()
    expect(tab.locator("#recommendations .cards > li").first).to_be_visible()
    expect(tab.locator("#profile .fold")).to_have_attribute("aria-expanded", "false")  # remembered
    expect(tab.locator("#item-id")).to_be_hidden()
    tab.click("#profile .fold")
    expect(tab.locator("#profile .profile-body dl")).to_be_visible()
    tab.shot("reopened")


def test_the_api_docs_render_with_no_network(page):
    """/docs and /redoc draw from the service's own copies of their assets: every request that leaves
    the service's own address is refused, and the pages render all the same."""
    outside: list[str] = []

    def only_local(route) -> None:
        if route.request.url.startswith(page.site):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{page.site}/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert page.locator(".swagger-ui .opblock").count() >= 20  # every route of the API
    expect(
        page.locator(".swagger-ui .opblock-summary-path", has_text="/v1/users/{user_id}/recommendations").first
    ).to_be_visible()
    page.shot("docs")
    page.goto(f"{page.site}/redoc")
    expect(page.get_by_text("Get User Recommendations").first).to_be_attached(timeout=20_000)
    page.shot("redoc")
    # the one request that leaves: ReDoc's bundle links its "API docs by Redocly" logo from its CDN
    # (an image in the sidebar's footer); refused here, the page renders without it
    assert all(url.startswith("https://cdn.redoc.ly/redoc/logo") for url in outside), outside


EVENTS_KEY = "storefront-events-key-0123456789abcdefghij"


def test_a_storefront_page_without_the_admin_key_records_clicks_with_the_events_key(
    browser, tmp_path, trained_model_dir
):
    """A shop's page holds the events key only (from /v1/page-config): a shopper's click is recorded
    with it, and the admin key is nowhere in the browser."""
    served = _site(tmp_path, trained_model_dir, events_key=EVENTS_KEY, currency="GBP")
    site, engine = next(served)
    context = browser.new_context()  # no admin key in this browser's storage
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    try:
        tab.goto(site + "/")
        _choose(tab, "u00003")
        before = len(engine.store.user_events("u00003", limit=10_000))
        expect(tab.locator("#recommendations .price").first).to_contain_text("£")  # the shop's currency
        clicked = tab.locator("#recommendations .card-open").first
        title = clicked.locator(".title").inner_text()
        clicked.click()
        expect(tab.locator("#notice")).to_contain_text(f"viewed “{title}”")
        assert len(engine.store.user_events("u00003", limit=10_000)) == before + 1
        assert tab.evaluate("localStorage.getItem('shelfwise.apiKey')") is None
        folder = ARTIFACTS / "test_a_storefront_page_records_clicks_with_the_events_key"
        folder.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(folder / "01-click-recorded.png"), full_page=True)
    finally:
        context.close()
        next(served, None)
