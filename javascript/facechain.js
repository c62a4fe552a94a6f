// FaceChain tab helpers. Every global here starts with facechain_ (the host injects all extensions' scripts
// into one page namespace).

// Delete button of the Identities view: ask first. Returning null as the name makes the handler delete nothing.
function facechain_confirm_delete(name) {
    if (!name) return [name];
    var ok = confirm("Delete the FaceChain identity \"" + name + "\" with its prepared photos? Trained LoRA files are kept.");
    return [ok ? name : null];
}
