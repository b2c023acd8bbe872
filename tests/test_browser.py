"""The web page in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium):
log in, upload a Korean PDF, wait for its run to succeed, ask, see the answer stream in with a
citation naming the file and page, open the passage, reload and find the conversation again.
A screenshot is left in tests/artifacts/ (not committed) for a person to look at."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from pipeline.adapters.local.accounts import ScryptCost, SqliteAccounts
from pipeline.adapters.local.database import Database
from pipeline.config import Settings
from pipeline.serve import local_app
from tests.conftest import FINTECH, SAMPLES

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(autouse=True)
def browser_installed():
    """A missing browser fails the test (in CI too), never skips it."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("needs Debian's chromium and chromium-driver (`make dev` installs them when run as root)",
                    pytrace=False)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
RUN_SECONDS = 600  # upper bound for ingesting one PDF on a busy 2-core machine; not a speed assertion
QUESTION = "핀테크 혁신펀드 2호 펀드는 얼마 규모로 조성되나요?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PASSWORD = "김의 비밀번호 2024"


class GatedEmbedder:
    """The real model behind a gate the stage test closes, so a file stays in its embed stage
    until the page has been seen showing it."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.gate = threading.Event()
        self.gate.set()
        self.dim, self.name = embedder.dim, embedder.name

    def embed_passages(self, texts):
        assert self.gate.wait(RUN_SECONDS)
        return self._embedder.embed_passages(texts)

    def embed_query(self, text):
        return self._embedder.embed_query(text)


@pytest.fixture(scope="module")
def gated(embedder):
    return GatedEmbedder(embedder)


@pytest.fixture(scope="module")
def server(tmp_path_factory, gated):
    home = tmp_path_factory.mktemp("browser-home")
    SqliteAccounts(Database(home / "hanrag.db"), ScryptCost(n=2**12)).add("kim", PASSWORD)
    app = local_app(Settings(home=home), embedder=gated)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


class GatedLLM:
    """Writes one token, then waits until the test has seen it on the page."""

    def __init__(self) -> None:
        self.seen = threading.Event()

    def complete(self, system: str, prompt: str) -> str:
        return QUESTION

    def stream(self, system: str, prompt: str) -> Iterator[str]:
        yield "2호 펀드는"
        assert self.seen.wait(60)
        yield " 5,000억원 규모로 조성됩니다 [1]"


def test_logged_out_only_the_login_shows_and_a_wrong_password_is_told_in_korean(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    _, url = server
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    wait.until(ready.visibility_of_element_located((By.ID, "login-password")))
    assert not browser.find_element(By.ID, "app").is_displayed()  # `main { display: grid }` once beat `hidden`
    visible = browser.execute_script("return document.body.innerText")
    assert "로그인" in visible and "문서 올리기" not in visible and "대화" not in visible
    browser.find_element(By.ID, "login-user").send_keys("kim")
    browser.find_element(By.ID, "login-password").send_keys("not the password")
    browser.find_element(By.ID, "login-button").click()
    wait.until(lambda d: "비밀번호가 맞지 않습니다" in d.find_element(By.ID, "login-error").text)
    assert not browser.find_element(By.ID, "app").is_displayed()
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "logged-out.png"))


def test_upload_ask_and_find_the_conversation_again(server, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    app, url = server
    # the runs and documents views are redrawn every 1.5 s: an element found a moment ago may be gone
    wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(url)
    user = wait.until(ready.visibility_of_element_located((By.ID, "login-user")))
    user.clear()
    user.send_keys("kim")
    browser.find_element(By.ID, "login-password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-button").click()
    wait.until(ready.visibility_of_element_located((By.ID, "drop-zone")))

    browser.find_element(By.ID, "file-input").send_keys(str(SAMPLES / FINTECH))
    row = f'#runs-body tr[data-source="{FINTECH}"]'
    status = f"const r = document.querySelector('{row}'); return r && [r.dataset.status, r.innerText];"
    WebDriverWait(browser, RUN_SECONDS).until(
        lambda d: (d.execute_script(status) or [None])[0] in ("succeeded", "failed"))
    final_status, row_text = browser.execute_script(status)
    assert final_status == "succeeded", row_text
    assert "완료" in row_text
    wait.until(lambda d: FINTECH in d.find_element(By.ID, "documents-list").text)
    assert "6쪽" in browser.execute_script("return document.getElementById('documents-list').innerText")

    browser.find_element(By.ID, "chat-input").send_keys(QUESTION)
    browser.find_element(By.ID, "chat-send").click()
    answer = wait.until(lambda d: _last_answer_with_citations(d))
    assert "5,000억원" in answer.text
    citation = answer.find_element(By.CSS_SELECTOR, ".citation summary")
    assert citation.text == f"[1] {FINTECH}, 2쪽"
    citation.click()
    passage = answer.find_element(By.CSS_SELECTOR, ".citation blockquote")
    wait.until(lambda d: passage.is_displayed())
    assert "5,000억원" in passage.text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "chat.png"))

    # Streaming, seen on the page: the first token shows while the model is still writing.
    gated = GatedLLM()
    app.state.chat.llm = gated
    try:
        browser.find_element(By.ID, "chat-input").send_keys("그럼 규모는?")
        browser.find_element(By.ID, "chat-send").click()
        partial = wait.until(lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, ".message.assistant.streaming")),
                                            None))
        wait.until(lambda d: "2호 펀드는" in partial.text)
        assert "5,000억원" not in partial.text
        gated.seen.set()
        wait.until(lambda d: "5,000억원 규모로 조성됩니다" in partial.text and partial.find_elements(By.CSS_SELECTOR,
                                                                                                     ".citation"))
    finally:
        app.state.chat.llm = None

    browser.refresh()  # history comes back from the server
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".message.assistant")) == 2)
    restored = browser.find_elements(By.CSS_SELECTOR, ".message.assistant")[0]
    assert "5,000억원" in restored.text
    assert restored.find_element(By.CSS_SELECTOR, ".citation summary").text == f"[1] {FINTECH}, 2쪽"
    assert [m.text for m in browser.find_elements(By.CSS_SELECTOR, ".message.user")] == [QUESTION, "그럼 규모는?"]

    browser.find_element(By.ID, "clear-chat").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".message"))
    browser.refresh()
    wait.until(lambda d: d.find_element(By.ID, "app").is_displayed())
    time.sleep(0.5)  # let the page ask for the history it would restore
    assert browser.find_elements(By.CSS_SELECTOR, ".message") == []


def _last_answer_with_citations(driver):
    from selenium.webdriver.common.by import By

    answers = driver.find_elements(By.CSS_SELECTOR, ".message.assistant")
    if answers and answers[-1].find_elements(By.CSS_SELECTOR, ".citation"):
        return answers[-1]
    return None


ATTACK = """<!doctype html><title>보통 페이지</title><script>
const form = new FormData();
form.append("files", new Blob(["공격자가 넣은 문서입니다. 이 문장이 색인되면 안 됩니다."]), "attack.txt");
Promise.allSettled([
  fetch("TARGET/api/documents", { method: "POST", mode: "no-cors", credentials: "include", body: form }),
  fetch("TARGET/api/logout", { method: "POST", mode: "no-cors", credentials: "include" }),
]).then(() => { document.title = "done"; });
</script>"""


@pytest.fixture
def second_port_site(server, tmp_path):
    """A page on another port of this machine: the same "site" to SameSite, another origin to us."""
    import functools
    import http.server

    _, url = server
    (tmp_path / "attack.html").write_text(ATTACK.replace("TARGET", url.rstrip("/")), encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{site.server_address[1]}/attack.html"
    site.shutdown()


def logged_in(browser, url: str) -> None:
    """The page, logged in as kim (through the form if the session has not been)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "app").is_displayed()
                                     or d.find_element(By.ID, "login-password").is_displayed())
    if not browser.find_element(By.ID, "app").is_displayed():
        browser.find_element(By.ID, "login-user").clear()
        browser.find_element(By.ID, "login-user").send_keys("kim")
        browser.find_element(By.ID, "login-password").send_keys(PASSWORD)
        browser.find_element(By.ID, "login-button").click()
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "app").is_displayed())


def test_a_page_on_another_local_port_cannot_upload_or_log_out(server, browser, second_port_site):
    from selenium.webdriver.support.ui import WebDriverWait

    app, url = server
    logged_in(browser, url)
    before = {r.run_id for r in app.state.worker.pipeline.registry.recent_runs(500, "kim")}
    browser.get(second_port_site)
    WebDriverWait(browser, 30).until(lambda d: d.title == "done")
    time.sleep(1)
    after = app.state.worker.pipeline.registry.recent_runs(500, "kim")
    assert {r.run_id for r in after} == before and not app.state.worker.pending("kim")
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_element("id", "app").is_displayed())  # still logged in


def test_a_running_file_shows_its_stage(server, browser, gated, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, url = server
    logged_in(browser, url)
    note = tmp_path / "회의 안내.txt"
    note.write_text("정기 회의는 매주 목요일 오후 세 시에 본관 3층 회의실에서 열립니다.\n" * 40, encoding="utf-8")
    row = f"const r = document.querySelector('#runs-body tr[data-source=\"{note.name}\"]'); " \
          "return r && [r.dataset.status, r.querySelector('.status').innerText];"
    gated.gate.clear()
    try:
        browser.find_element(By.ID, "file-input").send_keys(str(note))
        status, text = WebDriverWait(browser, RUN_SECONDS).until(
            lambda d: (found := d.execute_script(row)) and "임베딩 중" in found[1] and found)
        assert status == "running" and "처리 중" in text and "청크" in text
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "running.png"))
    finally:
        gated.gate.set()
    WebDriverWait(browser, RUN_SECONDS).until(lambda d: (d.execute_script(row) or [None])[0] == "succeeded")


GOVERNMENT_CHARACTERS = "｢｣ᆞㆍ①㉠※"  # in Korean public documents, missing from most system fonts


def test_the_characters_of_government_documents_are_drawn_not_boxes(server, browser):
    """Each character, drawn in the page's own font stack, differs from the box a font draws for a
    character it lacks (a private-use code point no font has): the page ships a font for them."""
    _, url = server
    browser.get(url)
    drawn = browser.execute_async_script("""
        const [characters, done] = arguments;
        const family = getComputedStyle(document.documentElement).fontFamily;
        document.fonts.load('32px ' + family, characters).then(faces => {
            const draw = text => {
                const canvas = document.createElement('canvas');
                canvas.width = canvas.height = 48;
                const context = canvas.getContext('2d');
                context.font = '32px ' + family;
                context.fillText(text, 4, 36);
                return canvas.toDataURL();
            };
            const box = draw('\\u{10FFFD}');
            done({family, faces: faces.map(f => f.family),
                  boxes: [...characters].filter(ch => draw(ch) === box)});
        });""", GOVERNMENT_CHARACTERS)
    assert drawn["family"].startswith('"Hanrag Symbols"')
    assert "Hanrag Symbols" in drawn["faces"]
    assert drawn["boxes"] == []
