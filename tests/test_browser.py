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


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder):
    app = local_app(Settings(home=tmp_path_factory.mktemp("browser-home")), embedder=embedder)
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


def test_upload_ask_and_find_the_conversation_again(server, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    app, url = server
    # the runs and documents views are redrawn every 1.5 s: an element found a moment ago may be gone
    wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(url)
    wait.until(ready.visibility_of_element_located((By.ID, "login-user"))).send_keys("kim")
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
