// FaceChain Train view: show the host's own progress bar for the training job (the pattern of the host's
// textual-inversion tab). The job registers this task id with modules.progress and keeps shared.state current.
function facechain_train_start() {
    var args = Array.from(arguments);
    var id = randomId();
    var live = gradioApp().getElementById("facechain_train_live");
    requestProgress(
        id,
        gradioApp().getElementById("facechain_train_progress"),
        gradioApp().getElementById("facechain_train_gallery"),
        function() {
            // the job ended (done, failed, cancelled or interrupted): show its record, unless the request was
            // refused up front (the status then holds that error and there is no new job to show)
            if (live) live.textContent = "";
            setTimeout(function() {
                var status = gradioApp().getElementById("facechain_train_status");
                var refused = status && status.querySelector(".facechain-error");
                var refresh = gradioApp().getElementById("facechain_train_refresh");
                if (refresh && !refused) refresh.click();
            }, 500);
        },
        function(progress) {
            if (live && progress.textinfo) live.textContent = progress.textinfo;
        }
    );
    args[0] = id;
    return args;
}
