// FaceChain tab helpers. Every global here starts with facechain_ (the host injects all extensions' scripts
// into one page namespace).

function facechain_el(id) {
    return gradioApp().getElementById(id);
}

// Delete button of the Identities view: ask first. A declined confirmation sends no name: the handler then deletes
// nothing and changes nothing else. The other inputs pass through unchanged.
function facechain_confirm_delete(name) {
    var res = Array.from(arguments);
    if (!name) return res;
    var ok = confirm("Delete the FaceChain identity \"" + name + "\" with its prepared photos? Trained LoRA files are kept.");
    res[0] = ok ? name : null;
    return res;
}

// Interrupt / Skip / Interrupting... of a view (ids <prefix>_interrupt, _skip, _interrupting over <prefix>_run), shown
// and hidden the way the host's showSubmitButtons / showSubmitInterruptingPlaceholder do for txt2img (ui.js).
function facechain_stop_buttons(prefix, interrupt, skip, interrupting) {
    var shown = {"_interrupt": interrupt, "_skip": skip, "_interrupting": interrupting};
    Object.keys(shown).forEach(function(suffix) {
        var button = facechain_el(prefix + suffix);
        if (button) button.style.display = shown[suffix] ? "block" : "none";
    });
}

// The task id of the view's running task (set by facechain_submit), for its Interrupt/Skip buttons.
function facechain_task_of(prefix) {
    var box = facechain_el(prefix + "_generate_box");
    return (box && box.dataset.facechainTask) || "";
}

// Interrupt (and Interrupting...) click: show the placeholder, send the view's task id as the first input.
function facechain_stopping(prefix, args) {
    facechain_stop_buttons(prefix, false, !!facechain_el(prefix + "_skip"), true);
    var res = Array.from(args);
    res[0] = facechain_task_of(prefix);
    return res;
}

function facechain_skipping(prefix, args) {
    var res = Array.from(args);
    res[0] = facechain_task_of(prefix);
    return res;
}

// One task id convention for every FaceChain button. The host's randomId() (progressbar.js) already returns
// "task(...)": that exact string is both what the server registers (the first input, read by the host's
// wrap_gradio_gpu_call or FaceChain's job) and what the progress bar polls. The bar goes where the host puts its own:
// above the view's output gallery (<prefix>_gallery_container, as txt2img_gallery_container).
function facechain_submit(prefix, args, atEnd, onProgress) {
    var id = randomId();
    var box = facechain_el(prefix + "_generate_box");
    if (box) box.dataset.facechainTask = id;
    facechain_stop_buttons(prefix, true, true, false);
    requestProgress(id, facechain_el(prefix + "_gallery_container"), facechain_el(prefix + "_gallery"), function() {
        facechain_stop_buttons(prefix, false, false, false);
        if (box && box.dataset.facechainTask === id) box.dataset.facechainTask = "";
        if (atEnd) atEnd();
    }, onProgress);
    var res = Array.from(args);
    res[0] = id;
    return res;
}
