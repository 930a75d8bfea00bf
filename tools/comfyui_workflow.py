"""Write the UI-format twin of an API-format ComfyUI workflow with ComfyUI's own front end, and check it.

    python tools/comfyui_workflow.py examples/comfyui/talker_api.json examples/comfyui/talker.json \
        [--url http://127.0.0.1:8188] [--run shot.png]

Opens the running ComfyUI in headless Chromium (Debian's, through Playwright), loads the API
workflow (``app.loadApiJson``), saves the graph the front end builds (``app.graph.serialize()``:
the file "Workflow > Open" and drag-and-drop take), then loads that file back and checks that the
prompt the front end makes of it (``app.graphToPrompt()``) has the API workflow's nodes and inputs.
With ``--run`` it also queues the workflow from the page, waits for it, and saves a screenshot of
the graph (the clip on Make, the report on Score).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


LAYOUT = """() => {
  // columns by depth from the loaders, nodes stacked in each, room left below for pictures and clips
  const graph = window.app.graph, depth = new Map();
  const depthOf = (node) => {
    if (!depth.has(node.id)) {
      depth.set(node.id, 0);
      const ups = (node.inputs ?? []).filter((i) => i.link != null)
        .map((i) => graph.getNodeById(graph.links[i.link].origin_id));
      depth.set(node.id, ups.length ? 1 + Math.max(...ups.map(depthOf)) : 0);
    }
    return depth.get(node.id);
  };
  const tops = {};
  for (const node of [...graph._nodes].sort((a, b) => a.id - b.id)) {
    const column = depthOf(node);
    const top = tops[column] ?? 60;
    node.pos = [40 + column * 440, top];
    tops[column] = top + node.size[1] + 360;
  }
  graph.setDirtyCanvas(true, true);
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("api", type=Path, help="the API-format workflow (what POST /prompt takes)")
    parser.add_argument("ui", type=Path, help="the UI-format workflow to write")
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    parser.add_argument("--run", type=Path, help="also run it from the page and save a screenshot here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    api = json.loads(args.api.read_text())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1900, "height": 1300})
        page.goto(args.url)
        page.wait_for_function("() => window.app && window.app.graph && window.app.vueAppReady !== false",
                               timeout=120_000)
        page.wait_for_timeout(3000)
        page.evaluate("async ([api, name]) => { await window.app.loadApiJson(api, name) }", [api, args.ui.stem])
        page.evaluate(LAYOUT)
        # serialized in the page: JSON.stringify drops the undefined fields the front end's schema rejects as null
        ui = json.loads(page.evaluate("() => JSON.stringify(window.app.graph.serialize())"))
        args.ui.write_text(json.dumps(ui, indent=1) + "\n")

        page.evaluate("async (ui) => { await window.app.loadGraphData(ui) }", ui)
        prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
        for key, node in api.items():
            made = prompt[key]
            assert made["class_type"] == node["class_type"], (key, made["class_type"])
            assert made["inputs"] == node["inputs"], (key, made["inputs"], node["inputs"])
        assert set(prompt) == set(api), (set(prompt), set(api))
        print(f"{args.ui}: {len(ui['nodes'])} nodes, {len(ui['links'])} links; loaded back, its prompt is {args.api}")

        if args.run:
            page.evaluate("async () => { await window.app.queuePrompt(0, 1) }")
            page.wait_for_function("() => [...document.querySelectorAll('textarea')]"
                                   ".some((t) => /^(PASS|WARN|FAIL):/.test(t.value))", timeout=600_000)
            page.wait_for_timeout(2000)
            alerts = page.locator("text=Invalid workflow").count()
            assert not alerts, "the front end rejected the workflow file"
            page.screenshot(path=str(args.run))
            print(f"ran from the page; screenshot {args.run}")
        browser.close()


if __name__ == "__main__":
    main()
