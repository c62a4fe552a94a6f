// Generate view of the FaceChain tab: give the job a host task id and start the host's progress bar for it,
// exactly as the host's own Generate buttons do (randomId / requestProgress from the host's progressbar.js).
function facechain_generate_submit() {
    var args = Array.from(arguments);
    var id = randomId();
    var results = gradioApp().getElementById("facechain_gen_results");
    var gallery = gradioApp().getElementById("facechain_gen_gallery");
    requestProgress(id, results, gallery, function() {});
    args[0] = "task(" + id + ")";
    return args;
}
