"""javascript/*.js run in node against stand-ins of the host page helpers they call, and what they send is fed to the
Python side: the task id the server registers must be the very id the page's progress bar polls.

Host facts the stand-ins follow (AUTOMATIC1111 1.10 javascript/progressbar.js and ui.js): `randomId()` returns a
complete id "task(<random>)"; `requestProgress(id, container, gallery, atEnd, onProgress)` polls /internal/progress with
that id and inserts the bar before `container`; `submit()` passes the same id as the first input of the event.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import gradio as gr
import pytest
from training_helpers import IDENTITY, ctx_with_identity

from facechain_ext.webui import tab_generate
from facechain_ext.webui.tab_common import interrupt_task, skip_task
from facechain_ext.webui.tab_train import TrainHandlers

ROOT = Path(__file__).resolve().parents[1]
NODE = shutil.which("node")

HARNESS = r"""
const vm = require("vm");
const fs = require("fs");
const path = require("path");
const calls = {progress: []};
const elements = {};
function element(id) {
    if (!elements[id]) elements[id] = {id: id, style: {}, dataset: {}, querySelector: () => null, click: () => {}};
    return elements[id];
}
let counter = 0;
const page = {
    gradioApp: () => ({getElementById: element}),
    // the host's randomId: already the complete "task(...)" string
    randomId: () => "task(" + (++counter).toString(36).padStart(5, "0") + "abcde)",
    requestProgress: (id, container, gallery, atEnd, onProgress) => {
        calls.progress.push({id: id, container: container.id, gallery: gallery && gallery.id});
        calls.atEnd = atEnd;
    },
    confirm: (text) => { calls.confirmed = text; return false; },
    setTimeout: (fn) => fn(),
};
vm.createContext(page);
for (const file of fs.readdirSync(process.argv[2]).filter((f) => f.endsWith(".js")).sort()) {
    vm.runInContext(fs.readFileSync(path.join(process.argv[2], file), "utf8"), page, {filename: file});
}
const out = {};
out.generate = vm.runInContext('facechain_generate_submit("", "alice", ["wedding"])', page);
out.generate_progress = calls.progress[0];
out.generate_buttons = ["interrupt", "skip", "interrupting"].map((k) => element("facechain_gen_" + k).style.display);
out.interrupt = vm.runInContext('facechain_stopping("facechain_gen", [""])', page);
out.skip = vm.runInContext('facechain_skipping("facechain_gen", [""])', page);
out.interrupting = ["interrupt", "skip", "interrupting"].map((k) => element("facechain_gen_" + k).style.display);
calls.atEnd();
out.after_end = ["interrupt", "skip", "interrupting"].map((k) => element("facechain_gen_" + k).style.display);
out.task_after_end = vm.runInContext('facechain_task_of("facechain_gen")', page);
out.train = vm.runInContext('facechain_train_start("", "alice", "fast")', page);
out.train_progress = calls.progress[1];
out.template = vm.runInContext('facechain_template_submit("", null, "alice")', page);
out.template_progress = calls.progress[2];
out.declined = vm.runInContext('facechain_confirm_delete("alice", "alice")', page);
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> dict:
    if NODE is None:
        pytest.skip("node is not installed: the page scripts cannot be run (apt-get install nodejs)")
    harness = tmp_path_factory.mktemp("js") / "harness.js"
    harness.write_text(HARNESS, encoding="utf-8")
    done = subprocess.run([NODE, str(harness), str(ROOT / "javascript")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_generate_sends_the_id_its_progress_bar_polls(page, fake_host, monkeypatch):
    """The id reaches the host's GPU wrapper unchanged, so /internal/progress answers "active" for the polled id
    while the portraits are made (a doubled task(task(...)) left the bar on "Waiting..." until its 40 s timeout)."""
    from modules import progress

    sent, polled = page["generate"][0], page["generate_progress"]["id"]
    assert sent == polled and sent.startswith("task(") and sent.count("task(") == 1
    # the bar sits above the output gallery, like txt2img's (txt2img_gallery_container / txt2img_gallery)
    assert page["generate_progress"]["container"] == "facechain_gen_gallery_container"
    assert page["generate_progress"]["gallery"] == "facechain_gen_gallery"
    seen = {}

    def fake_generate(ctx, options):
        seen["progress"] = progress.progressapi(progress.ProgressRequest(id_task=polled))
        return [], ""

    monkeypatch.setattr(tab_generate, "generate_portraits", fake_generate)
    tab_generate._wrapped_handler(object())(sent, "alice", ["wedding"], 1, 512, 512, 20, 7.0, "Euler", -1, True, True,
                                            0.7, True, 0, 0.0, False, "", "")
    assert seen["progress"]["active"] is True and seen["progress"]["textinfo"] != "Waiting..."
    answer = progress.progressapi(progress.ProgressRequest(id_task=polled))
    assert answer["completed"] is True and answer["active"] is False  # the bar ends with the results


def test_interrupt_and_skip_buttons_follow_the_host_and_stop_only_this_task(page, fake_host):
    from modules import progress, shared

    polled = page["generate_progress"]["id"]
    assert page["generate_buttons"] == ["block", "block", "none"]  # shown while it runs (host: showSubmitButtons)
    assert page["interrupting"] == ["none", "block", "block"]  # host: showSubmitInterruptingPlaceholder
    assert page["after_end"] == ["none", "none", "none"] and page["task_after_end"] == ""
    assert page["interrupt"][0] == polled and page["skip"][0] == polled
    progress.start_task("task(someone-else)")
    interrupt_task(polled)
    skip_task(polled)
    assert shared.state.interrupted is False and shared.state.skipped is False  # not our task: left alone
    progress.start_task(polled)
    skip_task(polled)
    assert shared.state.skipped is True and shared.state.interrupted is False
    interrupt_task(polled)
    assert shared.state.interrupted is True


def test_train_registers_the_polled_id_with_its_job(page, fake_host, tmp_path, prepared):
    from modules import progress

    sent, polled = page["train"][0], page["train_progress"]["id"]
    assert sent == polled and sent.count("task(") == 1 and polled != page["generate"][0]
    assert page["train_progress"]["container"] == "facechain_train_gallery_container"
    ctx = ctx_with_identity(tmp_path, prepared)
    gate = threading.Event()
    blocker = ctx.jobs.submit("other", lambda handle: gate.wait(30) and {})  # the training waits in FaceChain's queue
    job_id, _ = TrainHandlers(ctx).start(sent, IDENTITY, "fast", 4, 4, 0, 0, "64", 42, "", False, 1)
    assert ctx.jobs.get(job_id).extra["host_task_id"] == polled
    answer = progress.progressapi(progress.ProgressRequest(id_task=polled))
    assert answer["queued"] is True and answer["textinfo"].startswith("In queue")
    gate.set()
    ctx.jobs.wait(blocker.id, 10)
    ctx.jobs.wait(job_id, 30)
    assert polled in progress.finished_tasks
    ctx.jobs.shutdown(5)


def test_templates_send_the_id_their_progress_bar_polls(page):
    sent, polled = page["template"][0], page["template_progress"]["id"]
    assert sent == polled and sent.count("task(") == 1  # was task(task(...)) as in the Generate view
    assert page["template_progress"]["container"] == "facechain_tpl_gallery_container"


def test_a_declined_delete_sends_no_name_and_changes_nothing(page, tmp_path):
    """The Identities view's confirmation: declining sends no name; the handler then leaves the view as it is,
    with a neutral line instead of a red error."""
    from facechain_ext.config import Settings
    from facechain_ext.context import FaceChainContext
    from facechain_ext.webui.tab_identities import IdentityHandlers

    assert page["declined"] == [None, "alice"]
    details, *rest = IdentityHandlers(FaceChainContext(Settings(models_dir=tmp_path))).delete(*page["declined"])
    assert "Nothing was deleted." in details and "facechain-error" not in details
    assert all(value == gr.update() for value in rest)
