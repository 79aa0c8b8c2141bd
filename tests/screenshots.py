"""Screenshots of the chat for the README, taken from the real app, so they stay current.

    make screenshots        # writes docs/screenshots/*.png

It starts the simulator and daphne on loopback with a fresh SQLite database, signs up,
has one conversation (a reply with reasoning, markdown and code), and photographs it in
Chromium: light and dark at 1280×800, and dark on a phone (390×844).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.live import ROOT, daphne, e2e_database, migrate, server_env, simulator_process

OUT = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="parley-shots-"))
    with (
        e2e_database(tmp) as database_url,
        simulator_process(400, tmp / "simulator.log") as simulator_url,
    ):
        env = server_env(database_url, DEMO_UPSTREAM_URL=simulator_url)
        env["DEMO_TOKENS_PER_SECOND"] = "400"
        migrate(env)
        with daphne(env, tmp / "daphne.log") as base_url, sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            context = chromium.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto(f"{base_url}/signup/")
            page.get_by_label("Username").fill("ada")
            page.get_by_label("Password", exact=True).fill("a-long-passphrase-9")
            page.get_by_label("Confirm password").fill("a-long-passphrase-9")
            page.get_by_role("button", name="Sign up").click()
            page.wait_for_url(f"{base_url}/")
            page.get_by_label("Persona").select_option(label="No persona")
            page.get_by_role("button", name="New chat").click()
            page.wait_for_url("**/c/*/")
            page.wait_for_function("document.querySelector('[ws-connect]') && htmx")
            page.wait_for_timeout(300)
            composer = page.get_by_label("Message", exact=True)
            composer.fill("How do I read a CSV file in Python, keeping the header?")
            composer.press("Enter")
            page.locator(".message.assistant.status-complete").last.wait_for(timeout=60_000)
            url = page.url
            for scheme, viewport, name in (
                ("light", {"width": 1280, "height": 800}, "chat-light.png"),
                ("dark", {"width": 1280, "height": 800}, "chat-dark.png"),
                ("dark", {"width": 390, "height": 844}, "chat-phone-dark.png"),
            ):
                shot = chromium.new_context(
                    viewport=viewport,
                    color_scheme=scheme,
                    storage_state=context.storage_state(),
                    device_scale_factor=1,
                )
                view = shot.new_page()
                view.goto(url)
                view.locator(".message.assistant.status-complete").last.wait_for()
                view.wait_for_timeout(300)
                view.screenshot(path=str(OUT / name))
                shot.close()
                print(f"wrote {(OUT / name).relative_to(ROOT)}")
            chromium.close()


if __name__ == "__main__":
    main()
