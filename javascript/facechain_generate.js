// Generate view of the FaceChain tab: the host's progress bar and Interrupt/Skip for its task (facechain.js).
function facechain_generate_submit() {
    return facechain_submit("facechain_gen", arguments);
}
