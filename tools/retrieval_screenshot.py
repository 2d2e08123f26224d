"""A screenshot of the search page for the docs: serve an index, upload a query in headless Chromium, save a PNG.

    python -m tools.retrieval_screenshot --index runs/retrieval/m-flat --query some.jpg --out docs/retrieval_page.png

Needs the demo and dev extras and Debian's chromium + chromium-driver.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

from distill.core.cli import script
from distill.core.deps import require
from distill.core.errors import MissingDependencyError
from retrieval_demo.server import create_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(index: str, query: str, out: str, k: int = 10, width: int = 1200, height: int = 900) -> Path:
    uvicorn = require("uvicorn", "demo")
    webdriver = require("selenium.webdriver", "dev")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not (browser and driver_bin):
        raise MissingDependencyError("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(index), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    opts.binary_location = browser
    driver = webdriver.Chrome(service=Service(driver_bin), options=opts)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: "images" in d.find_element(By.ID, "health").text)
        box = driver.find_element(By.ID, "k")
        box.clear()
        box.send_keys(str(k))
        driver.find_element(By.ID, "file").send_keys(str(Path(query).resolve()))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results figure.result img")) == k)
        wait.until(lambda d: d.execute_script(
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(timeout=10)
    return Path(out)


@script("tools.retrieval_screenshot")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.retrieval_screenshot", description=__doc__.splitlines()[0])
    p.add_argument("--index", required=True)
    p.add_argument("--query", required=True)
    p.add_argument("--out", default="docs/retrieval_page.png")
    p.add_argument("-k", type=int, default=10)
    args = p.parse_args(argv)
    print(screenshot(args.index, args.query, args.out, args.k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
