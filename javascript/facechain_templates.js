// Templates view of the FaceChain tab.

// "Send to FaceChain" under the host's galleries: after the host copied the image into the template field it calls
// switch_to_<tabname> (modules/infotext_utils.py connect_paste_params_buttons); show the FaceChain tab, Templates view.
function switch_to_facechain_template() {
    var nav = gradioApp().querySelectorAll("#tabs > .tab-nav > button, #tabs > div > button");
    for (var i = 0; i < nav.length; i++) {
        if (nav[i].textContent.trim() === "FaceChain") { nav[i].click(); break; }
    }
    var views = gradioApp().querySelectorAll("#facechain_views > .tab-nav > button, #facechain_views > div > button");
    for (var j = 0; j < views.length; j++) {
        if (views[j].textContent.trim() === "Templates") { views[j].click(); break; }
    }
    return Array.from(arguments);
}

// Run button: a host task id and the host's progress bar for the job (as facechain_generate_submit).
function facechain_template_submit() {
    var args = Array.from(arguments);
    var id = randomId();
    requestProgress(id, gradioApp().getElementById("facechain_tpl_results"),
                    gradioApp().getElementById("facechain_tpl_gallery"), function() {});
    args[0] = "task(" + id + ")";
    return args;
}
