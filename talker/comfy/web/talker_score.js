// ComfyUI front-end extension of the talker nodes: Score Talking Video (talker) shows the verdict and
// the table of checks it returns as ui.text in a read-only text box on the node, as core
// "Preview as Text" shows its text.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

app.registerExtension({
  name: "talker.ScoreReport",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== "TalkerScore") return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      onNodeCreated?.apply(this, []);
      const box = ComfyWidgets.STRING(this, "report_text", ["STRING", { multiline: true }], app).widget;
      box.options.read_only = true;
      box.element.readOnly = true;
      box.serialize = false;  // shown, never saved in the workflow
      box.options.serialize = false;  // nor sent in the prompt
      const [width, height] = this.computeSize();
      this.setSize([Math.max(width, 560), height + 200]);  // room for the table's 15 lines
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, [message]);
      const box = this.widgets?.find((w) => w.name === "report_text");
      if (box) box.value = (message?.text ?? []).join("\n");
    };
  },
});
