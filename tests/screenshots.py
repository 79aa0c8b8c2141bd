"""Screenshots of the chat for the README, taken from the real app, so they stay current.

    make screenshots        # writes docs/screenshots/*.png

It starts the simulator and daphne on loopback with a fresh SQLite database, signs up,
has one conversation (a reply with reasoning, markdown and code), and photographs it in
Chromium: light and dark at 1280×800, and dark on a phone (390×844).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.live import ROOT, browser_site, new_chat

OUT = ROOT / "docs" / "screenshots"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="parley-shots-"))
    with browser_site(tmp, viewport={"width": 1280, "height": 800}) as site:
        page = site.page
        new_chat(page, site.base_url, persona="No persona")
        composer = page.get_by_label("Message", exact=True)
        composer.fill("How do I read a CSV file in Python, keeping the header?")
        composer.press("Enter")
        page.locator(".message.assistant.status-complete").last.wait_for(timeout=60_000)
        for scheme, viewport, name in (
            ("light", {"width": 1280, "height": 800}, "chat-light.png"),
            ("dark", {"width": 1280, "height": 800}, "chat-dark.png"),
            ("dark", {"width": 390, "height": 844}, "chat-phone-dark.png"),
        ):
            shot = site.chromium.new_context(
                viewport=viewport,
                color_scheme=scheme,
                storage_state=site.context.storage_state(),
                device_scale_factor=1,
            )
            view = shot.new_page()
            view.goto(page.url)
            view.locator(".message.assistant.status-complete").last.wait_for()
            view.wait_for_timeout(300)
            view.screenshot(path=str(OUT / name))
            shot.close()
            print(f"wrote {(OUT / name).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
