// Train view of the FaceChain tab: the host's progress bar (step, percentage, ETA) and Interrupt for the training
// job, which registers the task id with the host's modules.progress and keeps shared.state current (facechain.js).
// When the bar ends (done, failed, cancelled) the view reads the job record again, unless the request was refused
// up front (the status then holds that message and there is no job to show).
function facechain_train_start() {
    return facechain_submit("facechain_train", arguments, function() {
        setTimeout(function() {
            var status = facechain_el("facechain_train_status");
            var refused = status && status.querySelector(".facechain-error");
            var refresh = facechain_el("facechain_train_refresh");
            if (refresh && !refused) refresh.click();
        }, 500);
    });
}
