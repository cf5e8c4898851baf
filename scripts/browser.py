"""Drive the demo page in a real, headless Chromium (Debian's `chromium` and `chromium-driver`).

`python scripts/browser.py [CLIP] [--screenshot FILE.png]` starts the server, uploads CLIP on
the page, waits for the label and saves a screenshot; without CLIP it uploads an 18 s recording
of three sentences of test actor 08 (neutral, happy, sad) in room noise, which gives the
README's picture with the timeline. tests/test_serve.py runs the same function against the
API's answer.

`python scripts/browser.py --live [CLIP]` plays CLIP (default: angry, happy and sad sentences
of actor 08) as Chromium's fake microphone into the Live tab and saves docs/live.png;
tests/test_serve.py checks its labels against the streaming engine's for the same file.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from scripts.load_test import running_server
from scripts.recordings import live_sentences, three_sentences
from speech_emotion_recognition.emotions import EMOTIONS

INSTALL = "apt-get install chromium chromium-driver"


def chromium(*arguments: str) -> webdriver.Chrome:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        raise FileNotFoundError(f"Chromium or its driver is missing: {INSTALL}")
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", *arguments):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1200")
    options.binary_location = binary
    return webdriver.Chrome(service=Service(driver), options=options)


def label_in_page(url: str, clip: Path, screenshot: Path | None, timeout: float = 90.0) -> str:
    """Upload `clip` on the page at `url`, press Predict and return the label it shows."""
    browser = chromium()
    try:
        browser.get(url)
        wait = WebDriverWait(browser, timeout)
        upload = wait.until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]"))
        )
        upload.send_keys(str(Path(clip).resolve()))
        # the player shows the clip's length once the upload has reached the server
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "audio"))
        wait.until(expected_conditions.element_to_be_clickable((By.ID, "predict"))).click()
        shown = (By.CSS_SELECTOR, "#label [data-testid=label-output-value]")
        wait.until(lambda b: b.find_elements(*shown) and b.find_element(*shown).text in EMOTIONS)
        label = browser.find_element(*shown).text
        if screenshot:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(screenshot))
        return label
    finally:
        browser.quit()


def live_labels(url: str, wav: Path, seconds: float, screenshot: Path | None) -> list[str]:
    """Play `wav` as Chromium's microphone into the Live tab for `seconds`, press Stop and
    return the labels of the windows the page lists, in order."""
    browser = chromium(
        "--use-fake-ui-for-media-stream",  # allow the microphone without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={Path(wav).resolve()}%noloop",
        "--autoplay-policy=no-user-gesture-required",
    )
    try:
        browser.get(url)
        wait = WebDriverWait(browser, 90)
        tab = (By.XPATH, "//button[@role='tab'][contains(., 'Live')]")
        wait.until(expected_conditions.element_to_be_clickable(tab)).click()
        wait.until(expected_conditions.element_to_be_clickable((By.ID, "live-start"))).click()
        wait.until(lambda b: b.find_element(By.ID, "live-status").text == "Listening…")
        time.sleep(seconds)
        browser.find_element(By.ID, "live-start").click()  # Stop: the server settles the rest
        wait.until(lambda b: b.find_element(By.ID, "live-status").text.startswith("Stopped"))
        status = browser.find_element(By.ID, "live-status").text
        if status != "Stopped.":
            raise RuntimeError(f"the Live tab says: {status}")
        if screenshot:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(screenshot))
        shown = browser.find_elements(By.CSS_SELECTOR, "#live-windows li")
        return [item.get_attribute("data-label") for item in reversed(shown)]
    finally:
        browser.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--live", action="store_true", help="the Live tab, the clip as microphone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, running_server() as server:
        if args.live:
            clip, seconds = live_sentences(Path(folder) / "live.wav")
            screenshot = args.screenshot or Path("docs/live.png")
            print(live_labels(server.url, args.clip or clip, seconds + 1, screenshot))
            return
        clip = args.clip or three_sentences(Path(folder) / "three_sentences.wav")
        print(label_in_page(server.url, clip, args.screenshot or Path("docs/demo.png")))


if __name__ == "__main__":
    main()
