"""The lab tests' browser: Debian's chromium driven by Selenium through Debian's
chromedriver (nothing is downloaded: the driver and the browser are given by path,
so Selenium Manager never runs), headless, with the browser's own background
traffic off (the tests reach only the lab). Screenshots go to
build/logs/screenshots/ as test artefacts."""

import contextlib
import os
import pathlib
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "build" / "logs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
QUIET = (
    "--headless=new",
    "--no-sandbox",  # root in CI; the page is the lab's own
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-features=OptimizationHints,Translate,MediaRouter,AutofillServerCommunication",
    "--metrics-recording-only",
    "--password-store=basic",
)


class Page:
    """One browser: go to pages, fill forms, wait for text, keep screenshots."""

    def __init__(self, driver, base):
        self.driver, self.base = driver, base.rstrip("/")

    def go(self, path):
        self.driver.get(self.base + path)

    def fill(self, name, value):
        """The visible field `name` (forms also carry hidden inputs of the same name)."""
        fields = [f for f in self.driver.find_elements(By.NAME, name) if f.is_displayed()]
        assert fields, f"no visible field {name!r} on {self.driver.current_url}"
        if fields[0].get_attribute("type") != "file":
            fields[0].clear()
        fields[0].send_keys(value)

    def click(self, text):
        """The button (or link) whose text is `text`."""
        for by, what in ((By.XPATH, f"//button[normalize-space()='{text}']"), (By.LINK_TEXT, text)):
            found = self.driver.find_elements(by, what)
            if found:
                found[0].click()
                return
        raise AssertionError(f"no button or link {text!r} on {self.driver.current_url}")

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait_for(self, text, timeout=30):
        WebDriverWait(self.driver, timeout).until(
            expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "body"), text),
            f"{text!r} never showed on {self.driver.current_url}",
        )

    def screenshot(self, name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"no screenshot {path}"
        return path


@contextlib.contextmanager
def browser(base):
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), (
            f"{path} is missing: scripts/bootstrap.sh installs chromium and chromium-driver"
        )
    os.environ.setdefault("SE_AVOID_STATS", "true")
    with tempfile.TemporaryDirectory(prefix="monoscape-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in (*QUIET, f"--user-data-dir={profile}"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        try:
            driver.set_page_load_timeout(60)
            yield Page(driver, base)
        finally:
            driver.quit()
